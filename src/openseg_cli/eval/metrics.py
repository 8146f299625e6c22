"""Semantic-segmentation metrics from one confusion matrix (mIoU, fwIoU, pixel and mean accuracy).

Convention (detectron2's `SemSegEvaluator`, which the open-vocabulary benchmarks report): a class counts in
mIoU, mean accuracy and fwIoU only when it has at least one ground-truth pixel; its per-class IoU is None
otherwise, even when it was predicted (those false positives still lower the IoU of the classes whose
pixels they took). All values are fractions in [0, 1], not percentages.

Predicted "unknown" (-1, from `label_map`'s threshold) is a wrong answer: the pixel counts for its
ground-truth class (lowering that class's IoU and accuracy) and for no predicted class. It is kept in an
extra last column of the confusion matrix, so the matrix is [C, C + 1]: rows = ground truth, columns =
prediction, column C = unknown. Pixels whose target equals `ignore_index` are dropped (counted in an
extra row C that is cut off after the bincount).

Why not torchmetrics' `MulticlassConfusionMatrix` directly (torchmetrics 1.9 read): it drops ignored
*targets* correctly, even a negative ignore_index, but a prediction of -1 is not rejected and lands in the
neighbouring cell (target·C + pred), silently corrupting the matrix; and with deterministic algorithms
enabled (Lightning `deterministic=True`) its `_bincount` builds a [pixels, C²] tensor — terabytes for 847
classes at 640². So this is a torchmetrics `Metric` (states, reset, `sync`, `merge_state`, device moves)
whose update counts on CPU with numpy's `bincount`, which is deterministic (one thread, integer sums).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from openseg_cli.errors import UsageError


def confusion_counts(preds: Tensor, target: Tensor, num_classes: int, ignore_index: int = -1) -> Tensor:
    """preds and target of one shape ([B, H, W] or any) → long [C, C + 1] counts on CPU.

    preds: class indices in [0, C) or -1 = unknown. target: class indices in [0, C) or ignore_index.
    Raises UsageError when a non-ignored target lies outside [0, C) (the benchmark's labels and its class
    list disagree, or the wrong ignore convention), ValueError for float or out-of-range preds or mismatched
    shapes (a bug in the caller). Preds at ignored pixels are not checked (they are not counted).

    Ignored pixels go to an extra row C that is dropped after the bincount (detectron2's way): selecting
    the kept pixels with a boolean mask instead cost ~5 of ~8 ms per 512×683 image. The counting is
    numpy's, single-threaded on purpose: torch's element-wise ops split a 512×683 image over all
    threads, and with a core busy elsewhere (the DataLoader worker, another job) each op then waits for
    a time slice: one update took ~100 ms with 2 threads on a loaded 2-core machine instead of ~2 ms.
    """
    if preds.shape != target.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape")
    if preds.is_floating_point():
        raise ValueError("preds must be class indices (argmax of the scores), not scores")
    side = num_classes + 1
    if preds.numel() == 0:
        return torch.zeros(num_classes, side, dtype=torch.long)
    # numpy does every copy and cast here too: a strided label (a crop) would otherwise be copied by torch.
    rows = np.array(target.detach().cpu().numpy(), dtype=np.int64).reshape(-1)  # a copy, ours to modify
    preds_np = preds.detach().cpu().numpy().astype(np.int64, copy=False).reshape(-1)
    ignored = rows == ignore_index
    _check_targets(rows, ignored, num_classes, ignore_index)
    rows[ignored] = num_classes
    low, high = int(preds_np.min()), int(preds_np.max())
    if low < -1 or high >= num_classes:
        _check_preds(preds_np[~ignored], num_classes)  # the rare path: only counted pixels must be valid
        # What is left out of range sits at ignored pixels (row C): park it in column C, dropped with them.
        preds_np = np.where((preds_np < -1) | (preds_np >= num_classes), num_classes, preds_np)
    rows *= side
    rows += np.where(preds_np < 0, num_classes, preds_np) if low < 0 else preds_np  # -1 → unknown column C
    counts = np.bincount(rows, minlength=side * side).reshape(side, side)[:num_classes]
    return torch.from_numpy(counts)  # the first C rows of a C-contiguous array: contiguous, no copy


def _check_targets(target: np.ndarray, ignored: np.ndarray, num_classes: int, ignore_index: int) -> None:
    """Raise UsageError naming the first non-ignored target id outside [0, C)."""
    if int(target.min()) >= 0 and int(target.max()) < num_classes:
        return  # the common case without ignored pixels: two passes
    bad = ~ignored & ((target < 0) | (target >= num_classes))
    if not bad.any():
        return
    raise UsageError(
        f"ground truth holds class id {int(target[bad.argmax()])}, outside [0, {num_classes}) and not "
        f"ignore_index {ignore_index}: the labels do not match the {num_classes} class names (Pascal "
        "Context-459 ignores 459 in one convention and 65535 in the other; set the ignore index to match)"
    )


def _check_preds(counted: np.ndarray, num_classes: int) -> None:
    """Raise ValueError when a counted prediction lies outside [-1, C)."""
    if counted.size and (int(counted.min()) < -1 or int(counted.max()) >= num_classes):
        raise ValueError(
            f"preds must be in [-1, {num_classes}), got [{int(counted.min())}, {int(counted.max())}]"
        )


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
        # numpy zeros: lazily zeroed pages, no multi-threaded torch fill (see `confusion_counts`).
        zeros = torch.from_numpy(np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64))
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
        confusion = confusion.to(self.confusion.device, torch.long)
        if self.confusion.device.type == "cpu":  # in place, one thread (see `confusion_counts`)
            np.add(self.confusion.numpy(), confusion.numpy(), out=self.confusion.numpy())
        else:
            self.confusion += confusion

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
