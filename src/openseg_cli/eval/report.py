"""Evaluation reports: a metrics JSON file and rows for the CLI's table.

metrics.json, schema 1 (values are fractions in [0, 1]; null = undefined, see `eval.metrics`):
    {"schema": 1, "convention": "...", "meta": {...benchmark, checkpoint, mask source...},
     "miou", "fwiou", "pixel_accuracy", "mean_accuracy", "num_pixels", "unknown_pixels",
     "num_classes", "num_classes_evaluated",
     "per_class": [{"index", "name", "iou", "accuracy", "gt_pixels"[, "group"]}, ...]
     [, "groups": {group: {"miou", "classes", "classes_evaluated"}}, "hiou"]}
The group keys are there when the metrics dict carries `eval.groups.group_figures` (`--class-groups`);
"hiou" only when the groups `seen` and `unseen` both exist.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openseg_cli.atomic import atomic_write_text

METRICS_SCHEMA = 1
CONVENTION = (
    "mIoU, fwIoU and mean accuracy over classes with at least one ground-truth pixel (detectron2 "
    "SemSegEvaluator); ignored pixels dropped; predicted 'unknown' counts as a miss; fractions in [0, 1]"
)
TABLE_COLUMNS = ("group", "name", "value (%)")
_SUMMARY = (
    ("mIoU", "miou"),
    ("fwIoU", "fwiou"),
    ("pixel accuracy", "pixel_accuracy"),
    ("mean accuracy", "mean_accuracy"),
)


def _finite_or_none(value: Any) -> float | None:
    """NaN / None → None: strict JSON has no NaN, and readers should see "undefined", not a number."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _name(name: str | Sequence[str]) -> str:
    return name if isinstance(name, str) else str(name[0])


def _check_lengths(metrics: dict, class_names: Sequence) -> None:
    if len(metrics["per_class_iou"]) != len(class_names):
        raise ValueError(f"{len(metrics['per_class_iou'])} per-class IoUs but {len(class_names)} class names")


def write_metrics_json(path: str | Path, metrics: dict, class_names: Sequence, meta: dict) -> Path:
    """Write `SegmentationMetrics.compute()` output as metrics.json (format in the module doc), atomically
    (temporary file in the same folder + `os.replace`). class_names: C names or synonym lists (the first
    is shown). Raises ValueError when the class count differs from the metrics', TypeError for a meta
    that JSON cannot hold.
    """
    _check_lengths(metrics, class_names)
    num = len(class_names)
    group_of = metrics.get("per_class_group")
    accuracy = metrics.get("per_class_accuracy", [None] * num)
    gt_pixels = metrics.get("per_class_gt_pixels", [None] * num)
    document = {
        "schema": METRICS_SCHEMA,
        "convention": CONVENTION,
        "meta": meta,
        **{key: _finite_or_none(metrics[key]) for _, key in _SUMMARY},
        **{
            key: metrics[key]
            for key in ("num_pixels", "unknown_pixels", "num_classes", "num_classes_evaluated")
            if key in metrics
        },
        "per_class": [
            {
                "index": i,
                "name": _name(name),
                "iou": _finite_or_none(metrics["per_class_iou"][i]),
                "accuracy": _finite_or_none(accuracy[i]),
                "gt_pixels": gt_pixels[i],
                **({"group": group_of[i]} if group_of else {}),
            }
            for i, name in enumerate(class_names)
        ],
        **_group_entries(metrics),
    }
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    return atomic_write_text(path, text)


def _group_entries(metrics: dict) -> dict[str, Any]:
    """The "groups" (and "hiou") keys of metrics.json, NaN written as null; {} without groups."""
    if "groups" not in metrics:
        return {}
    groups = {
        name: {**figures, "miou": _finite_or_none(figures["miou"])}
        for name, figures in metrics["groups"].items()
    }
    return {"groups": groups, **({"hiou": _finite_or_none(metrics["hiou"])} if "hiou" in metrics else {})}


def _percent(value: Any) -> str:
    value = _finite_or_none(value)
    return "n/a" if value is None else f"{100 * value:.2f}"


def format_table(metrics: dict, class_names: Sequence, top: int = 10) -> list[tuple[str, str, str]]:
    """Rows (group, name, value) for a table with `TABLE_COLUMNS`; values are percentages as text.

    Group "summary": mIoU, fwIoU, pixel and mean accuracy, then "classes evaluated" ("k / C").
    Group "best": the `top` evaluated classes with the highest IoU; group "worst": the `top` lowest
    (a class is listed once: with fewer than 2·top evaluated classes, "worst" holds those not in "best").
    Classes without ground truth (IoU None) are left out. Raises ValueError like `write_metrics_json`.
    """
    _check_lengths(metrics, class_names)
    rows = [("summary", label, _percent(metrics[key])) for label, key in _SUMMARY]
    evaluated = [
        (iou, i) for i, iou in enumerate(metrics["per_class_iou"]) if _finite_or_none(iou) is not None
    ]
    rows.append(("summary", "classes evaluated", f"{len(evaluated)} / {len(class_names)}"))
    # Sort by IoU, then by index so equal IoUs keep a stable, reproducible order.
    ranked = sorted(evaluated, key=lambda item: (-item[0], item[1]))
    best = ranked[: max(0, top)]
    worst = ranked[len(best) :][-max(0, top) :][::-1] if top > 0 else []
    rows += [("best", _name(class_names[i]), _percent(iou)) for iou, i in best]
    rows += [("worst", _name(class_names[i]), _percent(iou)) for iou, i in worst]
    return rows


def benchmark_scalars(metrics: dict, benchmark: str) -> dict[str, float | None]:
    """The summary values under the house's logged-metric keys: `val/miou_<benchmark>`, `val/fwiou_…`,
    `val/pixel_accuracy_…`, `val/mean_accuracy_…`, and with class groups `val/miou_<group>_<benchmark>`
    per group and `val/hiou_<benchmark>` (fractions; None when undefined)."""
    scalars = {f"val/{key}_{benchmark}": _finite_or_none(metrics[key]) for _, key in _SUMMARY}
    for group, figures in metrics.get("groups", {}).items():
        scalars[f"val/miou_{group}_{benchmark}"] = _finite_or_none(figures["miou"])
    if "hiou" in metrics:
        scalars[f"val/hiou_{benchmark}"] = _finite_or_none(metrics["hiou"])
    return scalars
