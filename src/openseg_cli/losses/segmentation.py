"""Class-agnostic segmentation losses: max-Dice [paper] and a one-to-one Hungarian Dice + BCE [ours].

Targets are soft masks at the mask resolution (see `masks_from_segment_map`). Dice compares whole crops:
void / padding pixels are 0 in every target. Targets that are empty at mask resolution (a segment cropped
away or thinner than a cell) are skipped: no proposal can match them and they would add a constant 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from openseg_cli.config.loader import CHOICES

DICE_EPS = 1e-6


def dice_matrix(pred_probs: Tensor, targets: Tensor, eps: float = DICE_EPS) -> Tensor:
    """Dice(s_i, t_j) = 2 sum_p s_i t_j / (sum_p s_i + sum_p t_j + eps).

    pred_probs [N, P] in [0, 1], targets [M, P] in [0, 1] -> [N, M]. Two empty masks give 0.
    """
    inter = pred_probs @ targets.T  # [N, M]
    total = pred_probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 2 * inter / (total + eps)


def bce_matrix(pred_logits: Tensor, targets: Tensor) -> Tensor:
    """Mean over pixels of BCE(sigmoid(x_i), t_j) for every pair: [N, P], [M, P] -> [N, M].

    Uses BCE(x, t) = softplus(x) - x t, so the pairwise sum is one matrix product.
    """
    num_pixels = pred_logits.shape[-1]
    return (F.softplus(pred_logits).sum(-1)[:, None] - pred_logits @ targets.T) / num_pixels


def _flat_targets(mask_logits: Tensor, targets: list[Tensor]) -> list[Tensor]:
    """Check shapes; return each image's non-empty targets flattened to [M_b', P]."""
    if len(targets) != mask_logits.shape[0]:
        raise ValueError(f"{len(targets)} target lists for a batch of {mask_logits.shape[0]}")
    flat = []
    for tgt in targets:
        if tgt.numel() and tgt.shape[-2:] != mask_logits.shape[-2:]:
            raise ValueError(
                f"targets {tuple(tgt.shape)} are not at the mask resolution {tuple(mask_logits.shape[-2:])}"
            )
        num_pixels = mask_logits.shape[-2] * mask_logits.shape[-1]
        tgt = tgt.reshape(-1, num_pixels).to(mask_logits.dtype)  # [0, ...] -> [0, P] too
        flat.append(tgt[tgt.sum(-1) > 0])
    return flat


def _zero(mask_logits: Tensor) -> Tensor:
    # Keeps the graph connected so that a batch without masks still backpropagates (all-zero grads).
    return 0.0 * mask_logits.sum()


REDUCTIONS = CHOICES[("loss", "segmentation_reduction")]


def _reduce(per_image: list[Tensor], mask_logits: Tensor, reduction: str) -> Tensor:
    """Per-image losses of each labelled mask (list of [M_b], images without masks left out) -> scalar.

    "batch": the mean over every mask of the batch (an image with many masks weighs more); "image": the
    mean within each image, then over images (each image weighs the same). ValueError for another name.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown segmentation loss reduction {reduction!r} ({' | '.join(REDUCTIONS)})")
    if not per_image:
        return _zero(mask_logits)
    if reduction == "image":
        return torch.stack([loss.mean() for loss in per_image]).mean()
    return torch.cat(per_image).mean()


def max_dice_loss(mask_logits: Tensor, targets: list[Tensor], reduction: str = "batch") -> Tensor:
    """L_S = mean over labelled masks j of (1 - max_i Dice(s_i, t_j)) [paper], reduced by `reduction`
    ("batch": over all masks of the batch; "image": within each image, then over images; `_reduce`).

    mask_logits [B, N, h, w]; targets list[B] of [M_b, h, w]. Several targets may pick the same
    proposal. Images without (non-empty) masks contribute nothing; a batch without any gives a zero
    that still has a grad_fn. ValueError on a batch-size or resolution mismatch or an unknown reduction.
    """
    losses = []
    for logits, tgt in zip(mask_logits, _flat_targets(mask_logits, targets), strict=True):
        if tgt.shape[0] == 0:
            continue
        dice = dice_matrix(logits.flatten(1).sigmoid(), tgt)  # [N, M]
        losses.append(1 - dice.max(dim=0).values)
    return _reduce(losses, mask_logits, reduction)


def hungarian_dice_bce_loss(
    mask_logits: Tensor, targets: list[Tensor], bce_weight: float = 1.0, reduction: str = "batch"
) -> Tensor:
    """One-to-one matched Dice + BCE [ours, the `hungarian` option; Mask2Former-like].

    Per image, proposals and targets are matched by `scipy.optimize.linear_sum_assignment` on the cost
    (1 - Dice) + bce_weight * BCE; the loss is the mean over matched pairs of the same quantity. With
    more targets than proposals, the unmatched targets are ignored. Same shapes, reductions, skipping
    rules and failure modes as `max_dice_loss`.
    """
    losses = []
    for logits, tgt in zip(mask_logits, _flat_targets(mask_logits, targets), strict=True):
        if tgt.shape[0] == 0:
            continue
        flat = logits.flatten(1)  # [N, P]
        cost = (1 - dice_matrix(flat.sigmoid(), tgt)) + bce_weight * bce_matrix(flat, tgt)  # [N, M]
        rows, cols = linear_sum_assignment(cost.detach().float().cpu().numpy())
        rows_t = torch.as_tensor(rows, device=cost.device)
        cols_t = torch.as_tensor(cols, device=cost.device)
        losses.append(cost[rows_t, cols_t])
    return _reduce(losses, mask_logits, reduction)
