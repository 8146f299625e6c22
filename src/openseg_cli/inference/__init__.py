"""Inference: class scores per pixel (scoring), pictures (visualize) and prediction files (outputs).

Pure torch + numpy + Pillow: no Lightning, typer or rich, so the engine and the CLI can both use it.
"""

from openseg_cli.inference.outputs import atomic_write, query_report, write_prediction
from openseg_cli.inference.scoring import (
    class_logits,
    label_map,
    normalized_scores,
    pixel_scores,
    resize_scores,
    semantic_scores,
)
from openseg_cli.inference.visualize import (
    label_png,
    label_png_encoding,
    overlay_png,
    palette,
    read_label_png,
)

__all__ = [
    "atomic_write",
    "class_logits",
    "label_map",
    "label_png",
    "label_png_encoding",
    "normalized_scores",
    "overlay_png",
    "palette",
    "pixel_scores",
    "query_report",
    "read_label_png",
    "resize_scores",
    "semantic_scores",
    "write_prediction",
]
