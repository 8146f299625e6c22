"""Label one image at its original resolution: whole-image (fit + pad) or sliding-window scoring.

A *scorer* is any `score_fn(images [B, 3, S, S] CLIP-normalised) -> scores [B, C, h, w]` (≥ 0, e.g.
`segmenter.segment_scores` bound to a model and a vocabulary) with S / h = S / w = f an integer output
stride (4 for OpenSeg). Both protocols end in `scoring.label_map`, which upsamples in class chunks (bounded
memory for 847 classes), crops the valid region and resizes to the original (H, W): detectron2's
`sem_seg_postprocess` order, so the labels are compared with the original-resolution ground truth.

- whole (default, the released model's protocol): resize the long side to S (aspect kept), pad
  bottom/right to S × S, one forward pass.
- sliding: resize the *short* side to S (so every window is filled with image, as in mmseg/detectron2
  sliding inference), pad bottom/right to a multiple of `PAD_QUANTUM` (≥ S), score S × S windows at
  offsets `stride` apart (last window flush with the edge; offsets multiples of the quantum), average the
  low-resolution scores where windows overlap, then `label_map` as above. Averaging before upsampling
  equals upsampling then averaging except within a pixel or two of window edges (bilinear is linear).
Images have different sizes, so each image is its own batch (windows of one image are batched).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from openseg_cli.data.transforms import fit_size, normalise, pad_to, resize_image
from openseg_cli.inference.scoring import label_map

ScoreFn = Callable[[Tensor], Tensor]

# Window offsets and the padded canvas are multiples of this: the backbone's largest stride (32), which
# every output stride (4 for OpenSeg) divides, so windows land exactly on the low-resolution grid.
PAD_QUANTUM = 32


def _prepared(image: Tensor, size: tuple[int, int], canvas: tuple[int, int], device) -> Tensor:
    """uint8 [H, W, 3] → CLIP-normalised float [1, 3, canvas] (resized to `size`, padded bottom/right)."""
    resized = normalise(resize_image(image.permute(2, 0, 1), size).float())
    pad_h, pad_w = canvas[0] - size[0], canvas[1] - size[1]
    padded = torch.nn.functional.pad(resized, (0, pad_w, 0, pad_h), value=0.0)  # 0 = the CLIP mean colour
    return padded[None].to(device)


def whole_image_labels(score_fn: ScoreFn, image: Tensor, size: int, device="cpu") -> Tensor:
    """image uint8 [H, W, 3] → labels long [H, W] (on `device`): fit the long side to `size`, pad to
    size × size, score once, crop the valid region and upsample to (H, W)."""
    height, width = image.shape[:2]
    fit = fit_size(height, width, size)
    canvas = pad_to(_prepared(image, fit, fit, device), size, 0.0)
    scores = score_fn(canvas)  # [1, C, h, w]
    return label_map(scores, out_size=(size, size), valid_size=fit, image_size=(height, width))[0]


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) with the short side resized to `size`, aspect kept (rounded)."""
    scale = size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def window_offsets(length: int, size: int, stride: int, quantum: int = PAD_QUANTUM) -> list[int]:
    """Start offsets of windows of `size` covering `length` (≥ size, length - size a multiple of
    `quantum`) with at most `stride` between starts: first 0, last length - size, all multiples of quantum.
    """
    if length <= size:
        return [0]
    count = math.ceil((length - size) / stride) + 1
    span = length - size
    return sorted({min(span, quantum * round(i * span / (count - 1) / quantum)) for i in range(count)})


def sliding_window_labels(
    score_fn: ScoreFn,
    image: Tensor,
    size: int,
    stride: int | None = None,
    device="cpu",
    window_batch: int = 4,
) -> Tensor:
    """image uint8 [H, W, 3] → labels long [H, W]: short side resized to `size`, size × size windows every
    `stride` pixels (default 2/3 of size), scores averaged over overlaps (module doc).

    Raises ValueError when the scorer's output stride does not divide `size` or the window offsets.
    """
    stride = stride or max(1, round(2 * size / 3))
    height, width = image.shape[:2]
    resized = short_side_size(height, width, size)
    canvas = tuple(size + PAD_QUANTUM * math.ceil(max(0, side - size) / PAD_QUANTUM) for side in resized)
    pixels = _prepared(image, resized, canvas, device)
    windows = [
        (y, x)
        for y in window_offsets(canvas[0], size, stride)
        for x in window_offsets(canvas[1], size, stride)
    ]
    sums = counts = factor = None
    for start in range(0, len(windows), window_batch):
        batch = windows[start : start + window_batch]
        crops = torch.cat([pixels[..., y : y + size, x : x + size] for y, x in batch])
        scores = score_fn(crops).float()  # [b, C, size/f, size/f]
        if sums is None:
            factor = _output_stride(size, scores, windows)
            grid = (canvas[0] // factor, canvas[1] // factor)
            sums = scores.new_zeros(scores.shape[1], *grid)
            counts = scores.new_zeros(1, *grid)
        cell = size // factor
        for (y, x), window_scores in zip(batch, scores, strict=True):
            gy, gx = y // factor, x // factor
            sums[:, gy : gy + cell, gx : gx + cell] += window_scores
            counts[:, gy : gy + cell, gx : gx + cell] += 1
    mean = (sums / counts.clamp_min(1))[None]  # every cell is covered: windows span the canvas
    return label_map(mean, out_size=canvas, valid_size=resized, image_size=(height, width))[0]


def _output_stride(size: int, scores: Tensor, windows: list[tuple[int, int]]) -> int:
    out_h, out_w = scores.shape[-2:]
    if out_h != out_w or size % out_h:
        raise ValueError(f"scorer output {out_h}x{out_w} is not size {size} / an integer stride")
    factor = size // out_h
    if any(y % factor or x % factor for y, x in windows):
        raise ValueError(f"window offsets are not multiples of the output stride {factor}")
    return factor
