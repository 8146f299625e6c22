"""Semantic-segmentation metrics from one confusion matrix (mIoU, fwIoU, pixel and mean accuracy).

Convention (detectron2's `SemSegEvaluator`, which the open-vocabulary benchmarks report): a class counts in
mIoU, mean accuracy and fwIoU only when it has at least one ground-truth pixel; its per-class IoU is None
otherwise, even when it was predicted (those false positives still lower the IoU of the classes whose
pixels they took). All values are fractions in [0, 1], not percentages.

Predicted "unknown" (-1, from `label_map`'s threshold) is a wrong answer: the pixel counts for its
ground-truth class (lowering that class's IoU and accuracy) and for no predicted class. It is kept in an
extra last column of the confusion matrix, so the matrix is [C, C + 1]: rows = ground truth, columns =
prediction, column C = unknown. Pixels whose target equals `ignore_index` are dropped.

Why not torchmetrics' `MulticlassConfusionMatrix` directly (torchmetrics 1.9 read): it drops ignored
*targets* correctly, even a negative ignore_index, but a prediction of -1 is not rejected and lands in the
neighbouring cell (target·C + pred), silently corrupting the matrix; and with deterministic algorithms
enabled (Lightning `deterministic=True`) its `_bincount` builds a [pixels, C²] tensor — terabytes for 847
classes at 640². So this is a torchmetrics `Metric` (states, reset, `sync`, `merge_state`, device moves)
whose update counts with `torch.bincount` on CPU, which is deterministic there.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from openseg_cli.errors import UsageError


def confusion_counts(preds: Tensor, target: Tensor, num_classes: int, ignore_index: int = -1) -> Tensor:
    """preds and target of one shape ([B, H, W] or any) → long [C, C + 1] counts on CPU.

    preds: class indices in [0, C) or -1 = unknown. target: class indices in [0, C) or ignore_index.
    Raises UsageError when a non-ignored target lies outside [0, C) (the benchmark's labels and its class
    list disagree, or the wrong ignore convention), ValueError for float or out-of-range preds or mismatched
    shapes (a bug in the caller).
    """
    if preds.shape != target.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape")
    if preds.is_floating_point():
        raise ValueError("preds must be class indices (argmax of the scores), not scores")
    # CPU: torch.bincount is deterministic there (CUDA's is not, and refuses deterministic mode).
    preds = preds.detach().to("cpu", torch.long).flatten()
    target = target.detach().to("cpu", torch.long).flatten()
    keep = target != ignore_index
    preds, target = preds[keep], target[keep]
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        bad = target[(target < 0) | (target >= num_classes)][0].item()
        raise UsageError(
            f"ground truth holds class id {bad}, outside [0, {num_classes}) and not ignore_index "
            f"{ignore_index}: the labels do not match the {num_classes} class names (Pascal Context-459 "
            "ignores 459 in one convention and 65535 in the other; set the ignore index to match)"
        )
    if preds.numel() and (int(preds.min()) < -1 or int(preds.max()) >= num_classes):
        raise ValueError(
            f"preds must be in [-1, {num_classes}), got [{int(preds.min())}, {int(preds.max())}]"
        )
    columns = torch.where(preds < 0, num_classes, preds)  # -1 → the unknown column C
    flat = torch.bincount(target * (num_classes + 1) + columns, minlength=num_classes * (num_classes + 1))
    return flat.reshape(num_classes, num_classes + 1)


def _mean_or_nan(values: Tensor) -> float:
    return float(values.mean()) if values.numel() else math.nan


def _listed(values: Tensor, valid: Tensor) -> list[float | None]:
    return [float(v) if ok else None for v, ok in zip(values.tolist(), valid.tolist(), strict=True)]


def metrics_from_confusion(confusion: Tensor) -> dict[str, Any]:
    """confusion [C, C + 1] (or [C, C] without an unknown column) → the metrics dict.

    Keys: miou, fwiou, pixel_accuracy, mean_accuracy (floats; NaN when no pixel has ground truth),
    per_class_iou and per_class_accuracy (lists of C float | None; None = no ground-truth pixel),
    per_class_gt_pixels (C ints), num_pixels (evaluated ground-truth pixels), unknown_pixels (of those,
    predicted unknown), num_classes, num_classes_evaluated.
    fwIoU = Σ_c (gt_c / Σ gt) · IoU_c over evaluated classes; pixel accuracy = Σ TP / Σ gt.
    """
    num_classes = confusion.shape[0]
    if confusion.ndim != 2 or confusion.shape[1] not in (num_classes, num_classes + 1):
        raise ValueError(f"confusion must be [C, C + 1] or [C, C], got {tuple(confusion.shape)}")
    counts = confusion.detach().cpu().double()
    true_pos = counts[:, :num_classes].diagonal()
    gt_pixels = counts.sum(dim=1)  # includes pixels predicted unknown: they are misses
    pred_pixels = counts[:, :num_classes].sum(dim=0)
    union = gt_pixels + pred_pixels - true_pos
    evaluated = gt_pixels > 0  # union ≥ gt > 0 there, so no division by zero below
    iou = true_pos / union.clamp_min(1)
    accuracy = true_pos / gt_pixels.clamp_min(1)
    total = float(gt_pixels.sum())
    return {
        "miou": _mean_or_nan(iou[evaluated]),
        "fwiou": float((iou * gt_pixels)[evaluated].sum() / total) if total else math.nan,
        "pixel_accuracy": float(true_pos.sum() / total) if total else math.nan,
        "mean_accuracy": _mean_or_nan(accuracy[evaluated]),
        "per_class_iou": _listed(iou, evaluated),
        "per_class_accuracy": _listed(accuracy, evaluated),
        "per_class_gt_pixels": [int(v) for v in gt_pixels.tolist()],
        "num_pixels": int(total),
        "unknown_pixels": int(counts[:, num_classes].sum()) if counts.shape[1] > num_classes else 0,
        "num_classes": num_classes,
        "num_classes_evaluated": int(evaluated.sum()),
    }


class SegmentationMetrics(Metric):
    """Accumulates a [C, C + 1] confusion matrix over batches; `compute()` gives `metrics_from_confusion`.

    Distributed use, two equivalent ways:
    - explicit (the engine): all-reduce (sum) `metric.confusion` yourself, then
      `SegmentationMetrics.from_confusion(summed).compute()`;
    - torchmetrics: construct with `sync_on_compute=True`, and `compute()` sums the states of all ranks
      (every rank must then call it).
    The default is `sync_on_compute=False` because with both ways at once the counts would be summed twice.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True
    confusion: Tensor

    def __init__(self, num_classes: int, ignore_index: int = -1, **kwargs: Any) -> None:
        kwargs.setdefault("sync_on_compute", False)
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        zeros = torch.zeros(self.num_classes, self.num_classes + 1, dtype=torch.long)
        self.add_state("confusion", default=zeros, dist_reduce_fx="sum")

    def update(self, preds: Tensor | None = None, target: Tensor | None = None, *, confusion=None) -> None:
        """Add a batch: preds [B, H, W] (-1 = unknown) and target [B, H, W] (ignore_index = ignored),
        or add ready counts with `confusion=` [C, C + 1] (what `merge` does). Errors: `confusion_counts`."""
        if confusion is None:
            if preds is None or target is None:
                raise ValueError("update needs preds and target, or confusion=")
            confusion = confusion_counts(preds, target, self.num_classes, self.ignore_index)
        elif confusion.shape != self.confusion.shape:
            raise ValueError(f"confusion must be {tuple(self.confusion.shape)}, got {tuple(confusion.shape)}")
        self.confusion += confusion.to(self.confusion.device, torch.long)

    def merge(self, other: SegmentationMetrics | Tensor) -> None:
        """Add another metric's (or a raw [C, C + 1] tensor's) counts, e.g. from another process."""
        self.update(confusion=other.confusion if isinstance(other, SegmentationMetrics) else other)

    @classmethod
    def from_confusion(cls, confusion: Tensor, ignore_index: int = -1) -> SegmentationMetrics:
        """A metric holding the given [C, C + 1] counts (e.g. after an all-reduce)."""
        metric = cls(num_classes=confusion.shape[0], ignore_index=ignore_index)
        metric.merge(confusion)
        return metric

    def compute(self) -> dict[str, Any]:
        """The metrics dict of `metrics_from_confusion` for everything added since the last reset."""
        return metrics_from_confusion(self.confusion)
