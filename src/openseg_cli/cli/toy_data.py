"""`openseg toy-data`: write the toy shapes dataset in the real COCO panoptic + captions formats."""

from __future__ import annotations

from pathlib import Path

import typer

from openseg_cli.cli.console import console, progress_bar


def toy_data(
    out: Path | None = typer.Option(None, "--out", help="Dataset folder (default: runs/toy-data/toy[N])."),
    train: int = typer.Option(600, "--train", min=0, help="Training images."),
    val: int = typer.Option(60, "--val", min=0, help="Validation images."),
    size: int = typer.Option(128, "--size", min=32, help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the dataset is deterministic given it)."),
) -> None:
    """Coloured shapes on textured ground, with panoptic PNGs, captions and a class list (offline, seconds).

    The layout is COCO's (train2017/, val2017/, annotations/panoptic_*.json + PNGs, captions_*.json), so
    `openseg prepare coco` reads it exactly as it reads real COCO.
    """
    from openseg_cli.data.toy import write_toy_dataset
    from openseg_cli.runs import output_dir

    root = output_dir(out, "toy-data", "toy")
    with progress_bar("toy images", train + val) as advance:
        summary = write_toy_dataset(root, train, val, image_size=size, seed=seed, progress=advance)
    console.print(
        f"toy dataset → {root}: {train} train + {val} val images, {len(summary['categories'])} classes "
        f"({', '.join(summary['categories'])}); class list {summary['classes_file']}"
    )


def register(app: typer.Typer) -> None:
    app.command("toy-data")(toy_data)
