"""Evaluation: confusion-matrix metrics (torchmetrics), grounding-vocabulary helpers, reports.

Pure torch + torchmetrics: no Lightning, typer or rich, so the engine and the CLI can both use it.
"""

from openseg_cli.eval.grounding import present_classes, to_global_labels
from openseg_cli.eval.metrics import SegmentationMetrics, confusion_counts, metrics_from_confusion
from openseg_cli.eval.report import TABLE_COLUMNS, format_table, write_metrics_json

__all__ = [
    "TABLE_COLUMNS",
    "SegmentationMetrics",
    "confusion_counts",
    "format_table",
    "metrics_from_confusion",
    "present_classes",
    "to_global_labels",
    "write_metrics_json",
]
