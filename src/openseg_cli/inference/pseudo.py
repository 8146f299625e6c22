"""Teacher masks → non-overlapping pseudo-label segments (METHOD §4, thresholds [ours], flags in the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PseudoLabelThresholds:
    min_confidence: float = 0.5  # mean mask probability over the mask's own (p > 0.5) pixels
    min_area: float = 0.001  # fraction of the image (0.1%)
    max_masks: int = 128


def select_pseudo_masks(mask_probs: Tensor, thresholds: PseudoLabelThresholds) -> tuple[Tensor, list[dict]]:
    """mask_probs [N, H, W] in [0, 1] → (segment id map long [H, W] with 0 = void and 1..M, segments).

    A proposal is kept when its binary mask (p > 0.5) covers at least `min_area` of the image and its mean
    probability there is at least `min_confidence`; the `max_masks` most confident are kept. Overlaps are
    resolved by argmax over the kept masks' probabilities (a pixel stays void when no kept mask has
    p > 0.5 there), then masks that fell under the area threshold are dropped and ids renumbered 1..M in
    order of confidence. `segments[j]` = {"id": j + 1, "area", "bbox": [x, y, w, h], "score"}.
    """
    num, height, width = mask_probs.shape
    min_pixels = thresholds.min_area * height * width
    binary = mask_probs > 0.5
    area = binary.flatten(1).sum(1).float()
    confidence = (mask_probs * binary).flatten(1).sum(1) / area.clamp_min(1)
    keep = (area >= max(min_pixels, 1)) & (confidence >= thresholds.min_confidence)
    order = [int(i) for i in torch.argsort(confidence, descending=True) if keep[i]][: thresholds.max_masks]
    if not order:
        return torch.zeros(height, width, dtype=torch.long), []
    kept = mask_probs[order]  # [K, H, W], most confident first
    best, index = kept.max(0)
    owner = torch.where(best > 0.5, index + 1, torch.zeros_like(index))  # 0 = void
    id_map = torch.zeros(height, width, dtype=torch.long)
    segments = []
    for k, proposal in enumerate(order):
        pixels = owner == k + 1
        count = int(pixels.sum())
        if count < max(min_pixels, 1):
            continue
        seg_id = len(segments) + 1
        id_map[pixels] = seg_id
        segments.append(
            {"id": seg_id, "area": count, "bbox": _bbox(pixels), "score": float(confidence[proposal])}
        )
    return id_map, segments


def _bbox(pixels: Tensor) -> list[int]:
    """COCO [x, y, w, h] of a non-empty boolean mask."""
    ys = pixels.any(1).nonzero().flatten()
    xs = pixels.any(0).nonzero().flatten()
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]
