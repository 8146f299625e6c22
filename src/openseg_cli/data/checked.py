"""Decoding with one more check than `decode.decode_sample`, and the reason a loader counts a skip under.

A panoptic PNG that paints ids its meta does not list (the PNG of another image, a meta that lost
segments) would teach those objects as background: the loaders skip such a sample and count it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from openseg_cli.data.decode import (
    CorruptSampleError,
    DecodedSample,
    build_maps,
    decode_image,
    decode_panoptic,
    parse_meta,
)
from openseg_cli.data.schema import META_MEMBER, PANOPTIC_MEMBER, image_member


class UnlistedIdsError(CorruptSampleError):
    """A panoptic PNG paints ids that no segment of the sample's meta lists (a PNG of another image, or a
    meta that lost segments): training on it would teach those objects as background."""


def decode_checked(sample: Mapping[str, Any], class_of: Mapping[int, int]) -> DecodedSample:
    """`decode.decode_sample`, plus a check that every painted panoptic id is listed in the meta.

    Raises CorruptSampleError (incomplete sample, unreadable bytes, bad meta) or UnlistedIdsError. The
    check costs three pixel counts; the exact id comparison runs only when they disagree.
    """
    key, url = str(sample.get("__key__", "?")), sample.get("__url__")
    where = f"sample {key} ({url})" if url else f"sample {key}"
    name = image_member(sample)
    if name is None or META_MEMBER not in sample:
        have = sorted(k for k in sample if not k.startswith("__"))
        raise CorruptSampleError(f"{where}: incomplete sample (members: {', '.join(have) or 'none'})")
    meta = parse_meta(sample[META_MEMBER], where)
    ids = decode_panoptic(sample[PANOPTIC_MEMBER], where) if PANOPTIC_MEMBER in sample else None
    image = decode_image(sample[name], where, None if ids is None else ids.shape)
    if ids is None:
        ids = np.zeros(image.shape[:2], np.int64)
    segment_map, classes, semantic = build_maps(ids, meta["segments"], class_of)
    _check_listed(ids, segment_map, semantic, meta["segments"], where)
    return DecodedSample(
        key=key,
        url=url,
        meta=meta,
        image=torch.from_numpy(np.ascontiguousarray(image)),
        segment_map=torch.from_numpy(segment_map),
        segment_classes=torch.from_numpy(classes),
        semantic=torch.from_numpy(semantic),
    )


def _check_listed(ids: np.ndarray, segment_map: np.ndarray, semantic: np.ndarray, segments, where) -> None:
    """UnlistedIdsError when a non-zero id of the PNG is not a meta segment's id."""
    labelled = np.count_nonzero((segment_map > 0) | (semantic >= 0))
    if np.count_nonzero(ids) <= labelled:
        return  # every painted pixel got a segment or a class: all its ids are listed
    listed = np.array([int(seg["id"]) for seg in segments], np.int64)
    unlisted = np.unique(ids[(ids != 0) & ~np.isin(ids, listed)])
    if unlisted.size:
        shown = ", ".join(str(int(i)) for i in unlisted[:5]) + (" ..." if unlisted.size > 5 else "")
        raise UnlistedIdsError(
            f"{where}: panoptic PNG paints ids not listed in meta segments ({shown}; "
            f"{int(np.isin(ids, unlisted).sum())} pixels)"
        )


def skip_reason(exn: CorruptSampleError) -> str:
    """The counted reason of a sample that cannot be used (see skips.SHARED_REASONS)."""
    if isinstance(exn, UnlistedIdsError):
        return "unlisted panoptic ids"
    return "unreadable image" if "unreadable image" in str(exn) else "corrupt sample"
