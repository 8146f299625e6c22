"""Training samples, crop first: decode, draw the crop, then label only the pixels the crop keeps.

`decode_sample` builds the segment and semantic maps of the whole image; training then scales it by up
to 2x and keeps a crop_size square, so most of those labels were thrown away. Here the panoptic PNG stays
RGB until the crop is known (`plan_crop`), and only the crop's source window is turned into ids and
segments. The result equals `decode_sample` + `train_transform` exactly for the labels (same numbering,
classes, crowd/void handling, skipped samples and error messages) and bit for bit for the image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from openseg_cli.data.decode import check_painted_colours, decode_image, ids_of, open_panoptic, sample_header
from openseg_cli.data.schema import PANOPTIC_MEMBER
from openseg_cli.data.transforms import CropPlan, place_map


@dataclass
class TrainInputs:
    """A sample decoded for training, its labels not built yet."""

    key: str
    url: str | None
    meta: dict[str, Any]
    image: torch.Tensor  # uint8 [H, W, 3]
    panoptic: np.ndarray | None  # uint8 [H, W, 3] RGB of the panoptic PNG, every id listed; None: no PNG


def decode_train_inputs(sample: Mapping[str, Any]) -> TrainInputs:
    """A raw webdataset sample → TrainInputs, with `decode_sample`'s checks and errors, in its order:
    incomplete sample or bad meta, unreadable PNG, unreadable image or size mismatch, unlisted ids
    (checked on the whole PNG, not just the crop, so the same samples are skipped)."""
    key, url, where, name, meta = sample_header(sample)
    png = open_panoptic(sample[PANOPTIC_MEMBER], where) if PANOPTIC_MEMBER in sample else None
    image = decode_image(sample[name], where, None if png is None else (png.height, png.width))
    rgb = None
    if png is not None:
        check_painted_colours(png, meta["segments"], where)
        rgb = np.asarray(png)
    return TrainInputs(key, url, meta, torch.from_numpy(np.ascontiguousarray(image)), rgb)


def label_segments(
    ids: np.ndarray, segments: list[Mapping[str, Any]], class_of: Mapping[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids [h, w] (every non-zero id listed in `segments`, ids unique) → (slot [h, w], lut long [K],
    classes long [M]); segment map = lut[slot]: the non-crowd segments painted here, numbered 1..M in
    `segments` order; crowd, void and id 0 → 0; an unknown category → class -1 (as `build_maps`).

    slot is uint8 when K <= 256 (usual): cheaper to gather than the long map (lut[slot] comes last).
    """
    # ids a PNG can paint (0 <= id < 2^24): int32 like `ids`, so searchsorted makes no widened copy
    paintable = {0} | {int(seg["id"]) for seg in segments if 0 < int(seg["id"]) < 1 << 24}
    keys = np.array(sorted(paintable), np.int32)
    slot = np.searchsorted(keys, ids)  # exact: every pixel's id is a key
    pixels = np.bincount(slot.ravel(), minlength=len(keys))
    index = {int(key): k for k, key in enumerate(keys)}
    lut = np.zeros(len(keys), np.int64)
    classes: list[int] = []
    for seg in segments:
        k = index.get(int(seg["id"]), 0)
        if k == 0 or pixels[k] == 0 or seg.get("iscrowd", 0):
            continue  # void, never painted here, or crowd
        classes.append(class_of.get(int(seg["category_id"]), -1))
        lut[k] = len(classes)
    if len(keys) <= 256:
        slot = slot.astype(np.uint8)
    return slot, lut, np.asarray(classes, np.int64)


def crop_segments(
    rgb: np.ndarray | None, segments: list[Mapping[str, Any]], class_of: Mapping[int, int], plan: CropPlan
) -> tuple[torch.Tensor, torch.Tensor]:
    """The crop `plan` takes of the labels → (segment_map long [S, S], classes long [M']).

    Equal to `build_maps` on the whole image, then `train_transform`'s nearest resize, crop, flip, pad
    and `renumber`. Labels the smaller of the crop's source window (growing crops) and its gathered
    pixels (shrinking ones): labelling costs per pixel.
    """
    if rgb is None:
        return place_map(torch.zeros(plan.out_hw, dtype=torch.long), plan), torch.zeros(0, dtype=torch.long)
    rows, cols = plan.source_rows(), plan.source_cols()  # non-decreasing
    r0, c0 = int(rows[0]), int(cols[0])
    ids = ids_of(rgb[r0 : int(rows[-1]) + 1, c0 : int(cols[-1]) + 1])
    rows, cols = rows - r0, cols - c0
    # Every pixel labelled is picked at least once, so the segments numbered are exactly those in the
    # crop (no renumber): the window is labelled only when it is no larger than the crop, which happens
    # when the image grows (nearest upsampling picks every source row and column in between) or when
    # the picked rows and columns are consecutive; otherwise the picked pixels are labelled.
    if ids.size <= rows.numel() * cols.numel():
        slot, lut, classes = label_segments(ids, segments, class_of)
        slot = _gather(slot, rows, cols)
    else:
        slot, lut, classes = label_segments(_gather(ids, rows, cols), segments, class_of)
    # flip and pad the small slot map: slot 0 is id 0 (void), so the padding is void after the lookup
    seg = np.take(lut, place_map(torch.from_numpy(slot), plan).numpy())
    return torch.from_numpy(seg), torch.from_numpy(classes)


def _gather(a: np.ndarray, rows: torch.Tensor, cols: torch.Tensor) -> np.ndarray:
    """a [h, w] → a[rows][:, cols], columns first on the shorter side (np.take: ~4x torch.index_select
    here, and whole rows copy fast)."""
    if rows.numel() >= a.shape[0]:
        return np.take(np.take(a, cols.numpy(), 1), rows.numpy(), 0)
    return np.take(np.take(a, rows.numpy(), 0), cols.numpy(), 1)
