"""Decode one shard sample: image bytes → RGB array, panoptic PNG → id map → segment and semantic maps.

The panoptic PNG is decoded here, never by webdataset's generic image handler: that handler returns an
RGB image, and the id (R + 256 G + 256^2 B) would be lost.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from openseg_cli.data.schema import META_MEMBER, PANOPTIC_MEMBER, image_member, normalise_meta
from openseg_cli.errors import InputFileError


class CorruptSampleError(InputFileError):
    """One sample cannot be used (unreadable image, bad meta, size mismatch). Loaders count and skip it."""


@dataclass
class DecodedSample:
    """A decoded sample. M = number of non-crowd segments with at least one pixel."""

    key: str
    url: str | None
    meta: dict[str, Any]
    image: torch.Tensor  # uint8 [H, W, 3]
    segment_map: torch.Tensor  # long [H, W]: 0 = void/crowd, j = j-th non-crowd segment (1..M)
    segment_classes: torch.Tensor  # long [M]: contiguous class index (-1 = unknown, pseudo-labels)
    semantic: torch.Tensor  # long [H, W]: class index of every labelled pixel incl. crowd, -1 = void


def class_lookup(categories: list[Mapping[str, Any]]) -> dict[int, int]:
    """Manifest categories → {dataset category id: contiguous class index}."""
    return {int(c["id"]): int(c["index"]) for c in categories}


def parse_meta(data: bytes | Mapping[str, Any], where: str) -> dict[str, Any]:
    """`meta.json` bytes (or an already parsed dict) → normalised schema-v1 meta; CorruptSampleError."""
    try:
        meta = json.loads(data) if isinstance(data, (bytes, bytearray, str)) else data
        return normalise_meta(meta, where=where)
    except (ValueError, TypeError) as exn:  # JSONDecodeError is a ValueError
        raise CorruptSampleError(f"{where}: bad meta.json ({exn})") from None


def decode_image(data: bytes, where: str, expect_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Image bytes → uint8 [H, W, 3] RGB, EXIF orientation applied.

    When `expect_hw` (the panoptic map's size) is given and only the un-rotated image matches it, the
    EXIF rotation is not applied: the annotation was drawn on the stored pixels. Unreadable or truncated
    bytes, or a size matching neither way → CorruptSampleError.
    """
    try:
        raw = Image.open(io.BytesIO(data))
        raw.load()  # PIL decodes lazily: force it so truncation shows up here
        image = ImageOps.exif_transpose(raw) or raw
    except Exception as exn:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        raise CorruptSampleError(f"{where}: unreadable image ({exn})") from None
    if expect_hw is not None and (image.height, image.width) != expect_hw:
        if (raw.height, raw.width) != expect_hw:
            raise CorruptSampleError(
                f"{where}: image is {raw.width}x{raw.height} "
                f"but its panoptic map is {expect_hw[1]}x{expect_hw[0]}"
            )
        image = raw
    return np.array(image.convert("RGB"), dtype=np.uint8)  # a writable copy for torch.from_numpy


def decode_panoptic(data: bytes, where: str) -> np.ndarray:
    """COCO panoptic PNG bytes → int64 id map [H, W], id = R + 256 G + 256^2 B (0 = void)."""
    try:
        png = Image.open(io.BytesIO(data))
        png.load()
        rgb = np.asarray(png.convert("RGB"), dtype=np.int64)
    except Exception as exn:
        raise CorruptSampleError(f"{where}: unreadable panoptic PNG ({exn})") from None
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def build_maps(
    ids: np.ndarray, segments: list[Mapping[str, Any]], class_of: Mapping[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw id map [H,W] + meta segments → (segment_map [H,W], segment_classes [M], semantic [H,W]).

    Non-crowd segments are numbered 1..M in `segments` order, skipping those with no pixels (so every id
    1..M is present); crowd pixels get segment 0 but keep their class in `semantic`. Pixels whose id is
    not listed are void (0 / -1). Unknown category ids map to class -1.
    """
    # A lookup over the few listed ids (searchsorted) instead of np.unique over every pixel: the unique
    # sort was the loader's largest cost (7.6 of ~25 ms per 640-px image, benchmarks/loader.py).
    listed = [seg for seg in segments if int(seg["id"]) != 0]
    if not listed:
        return np.zeros(ids.shape, np.int64), np.zeros(0, np.int64), np.full(ids.shape, -1, np.int64)
    listed_ids = np.array([int(seg["id"]) for seg in listed], np.int64)
    sorted_ids = np.sort(listed_ids)
    slot = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)  # [H, W] index into sorted
    painted = sorted_ids[slot] == ids  # pixels whose id is listed
    pixels = np.bincount(slot[painted], minlength=len(sorted_ids))  # per sorted listed id
    segment_lut = np.zeros(len(sorted_ids), np.int64)
    semantic_lut = np.full(len(sorted_ids), -1, np.int64)
    classes: list[int] = []
    for seg, seg_id in zip(listed, listed_ids, strict=True):
        k = int(np.searchsorted(sorted_ids, seg_id))
        if pixels[k] == 0:
            continue  # listed but not painted: nothing to learn from it
        cls = class_of.get(int(seg["category_id"]), -1)
        semantic_lut[k] = cls
        if not seg.get("iscrowd", 0):
            classes.append(cls)
            segment_lut[k] = len(classes)
    segment_map = np.where(painted, segment_lut[slot], 0)
    semantic = np.where(painted, semantic_lut[slot], -1)
    return segment_map, np.asarray(classes, np.int64), semantic


def decode_sample(sample: Mapping[str, Any], class_of: Mapping[int, int]) -> DecodedSample:
    """A raw webdataset sample (member name → bytes, plus `__key__`, `__url__`) → DecodedSample.

    A sample without `panoptic.png` (caption-only data) gets an all-void map and M = 0.
    Missing members, unreadable bytes or a bad meta → CorruptSampleError naming key and shard.
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
    return DecodedSample(
        key=key,
        url=url,
        meta=meta,
        image=torch.from_numpy(np.ascontiguousarray(image)),
        segment_map=torch.from_numpy(segment_map),
        segment_classes=torch.from_numpy(classes),
        semantic=torch.from_numpy(semantic),
    )
