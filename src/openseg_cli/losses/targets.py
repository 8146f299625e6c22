"""Soft mask targets from a segment-id map, at the mask resolution of the model."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def masks_from_segment_map(segment_map: Tensor, num_segments: int, size: tuple[int, int]) -> Tensor:
    """segment_map [H, W] long (0 = void, j = j-th segment) -> [M, h, w] float soft targets in [0, 1].

    One-hot of ids 1..M, area-downsampled to `size` (a cell's value = the fraction of it the segment
    covers). Void pixels (id 0: void, crowd, padding) are 0 in every target, so for Dice they are plain
    background: predictions there are penalised like any false positive. Ids outside 1..M are treated
    as void. M = 0 gives an empty [0, h, w] tensor.
    """
    ids = segment_map.long()
    ids = torch.where((ids >= 1) & (ids <= num_segments), ids, torch.zeros_like(ids))
    height, width = ids.shape
    h, w = size
    if height % h == 0 and width % w == 0:
        # Exact area average without a [H, W, M] one-hot (330 MB at 640 px and 100 segments):
        # count each id's pixels per output cell with one scatter-add.
        fy, fx = height // h, width // w
        rows = torch.arange(height, device=ids.device)[:, None] // fy
        cols = torch.arange(width, device=ids.device)[None, :] // fx
        cells = (rows * w + cols).expand(height, width)
        counts = torch.zeros(num_segments + 1, h * w, device=ids.device)
        counts.index_put_((ids.flatten(), cells.flatten()), torch.ones(ids.numel(), device=ids.device), True)
        return (counts[1:] / (fy * fx)).reshape(num_segments, h, w)
    onehot = F.one_hot(ids, num_segments + 1)[..., 1:]  # [H, W, M]
    masks = onehot.permute(2, 0, 1).float()[None]  # [1, M, H, W]
    return F.interpolate(masks, size=(h, w), mode="area")[0]


def masks_from_segment_maps(
    segment_maps: Tensor, num_segments: list[int], size: tuple[int, int]
) -> list[Tensor]:
    """Batch version: segment_maps [B, H, W], num_segments[b] = M_b -> list[B] of [M_b, h, w]."""
    if len(num_segments) != segment_maps.shape[0]:
        raise ValueError(f"{len(num_segments)} segment counts for a batch of {segment_maps.shape[0]}")
    return [masks_from_segment_map(m, n, size) for m, n in zip(segment_maps, num_segments, strict=True)]
