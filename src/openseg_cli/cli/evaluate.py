"""`openseg evaluate CKPT --shards DIR`: mIoU and per-class IoU on a semantic val set."""

from __future__ import annotations

from pathlib import Path

import typer

from openseg_cli.cli.console import console, progress_bar


def evaluate(
    checkpoint: Path = typer.Argument(..., help="openseg checkpoint (model.pt or .ckpt)."),
    shards: str = typer.Option(..., "--shards", help="Val shards (folder) with panoptic ground truth."),
    classes_file: Path | None = typer.Option(
        None,
        "--classes",
        help="Class names with synonyms, one line per class in dataset order (default: the dataset's).",
    ),
    mask_source: str = typer.Option(
        "pred",
        "--mask-source",
        help="pred (proposals) | pixel (no proposals) | gt (ground-truth masks): Table 4.",
    ),
    grounding: bool = typer.Option(
        False, "--grounding", help="Grounding mIoU: each image's vocabulary is only its ground-truth classes."
    ),
    size: int | None = typer.Option(
        None, "--size", min=32, help="Fit+pad size (default: the recipe's crop)."
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    workers: int = typer.Option(1, "--workers", min=0),
    templates: str | None = typer.Option(
        None,
        "--templates",
        help="Prompt templates: clip80 | vild63 | san14 | a file (one per line). Default: none.",
    ),
    device: str = typer.Option("cpu", "--device"),
    out: Path | None = typer.Option(None, "--out", help="Report folder (default: runs/evaluate/<name>[N])."),
    name: str = typer.Option("eval", "--name"),
) -> None:
    """Writes metrics.json (mIoU, fwIoU, pixel accuracy, per-class IoU) and prints a table."""
    from openseg_cli.engine.evaluate import EvalRequest, run_evaluation
    from openseg_cli.runs import output_dir
    from openseg_cli.text.queries import read_class_file
    from openseg_cli.text.templates import load_templates

    classes = read_class_file(classes_file) if classes_file else None
    out_dir = output_dir(out, "evaluate", name)
    req = EvalRequest(
        checkpoint, shards, classes, mask_source, size, batch_size, workers, device, grounding,
        load_templates(templates) if templates else None,
    )  # fmt: skip
    with progress_bar("evaluate", None) as advance:
        result = run_evaluation(req, out_dir, progress=advance)
    _print_table(result)
    console.print(
        f"mIoU {100 * result['miou']:.2f} on {result['images']} images → {out_dir / 'metrics.json'}"
    )


def _print_table(result: dict) -> None:
    from rich.table import Table

    table = Table(title="per-class IoU (%)")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for names, iou in zip(result["classes"], result["per_class_iou"], strict=True):
        table.add_row(names[0], "—" if iou is None else f"{100 * iou:.1f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
