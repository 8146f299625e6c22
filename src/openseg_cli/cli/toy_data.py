"""`openseg toy-data`: write a toy shapes dataset in the real COCO panoptic + captions formats."""

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
    open_vocab: bool = typer.Option(
        False,
        "--open-vocab",
        help="The open-vocabulary world: 18 classes in three groups (class_groups.json): seen (masks + "
        "captions), caption_only (in training images and captions, void in the masks) and unseen (only in "
        "val and in the CLIP corpus); any class in any colour. Also writes clip/ (images + captions.tsv: "
        "scenes, close-ups of one shape, grounds alone), the corpus for `openseg clip-train`.",
    ),
    clip: int = typer.Option(
        3000, "--clip", min=0, help="With --open-vocab: images in the CLIP pretraining corpus (clip/)."
    ),
) -> None:
    """Shapes on textured ground, with panoptic PNGs, captions and a class list (offline, seconds).

    The layout is COCO's (train2017/, val2017/, annotations/panoptic_*.json + PNGs, captions_*.json), so
    `openseg prepare coco` reads it exactly as it reads real COCO.
    """
    from openseg_cli.runs import output_dir

    root = output_dir(out, "toy-data", "toy")
    total = train + val + (clip if open_vocab else 0)
    with progress_bar("toy images", total) as advance:
        if open_vocab:
            from openseg_cli.data.toy_openvocab import write_openvocab_dataset

            summary = write_openvocab_dataset(root, train, val, clip, size, seed, progress=advance)
        else:
            from openseg_cli.data.toy import write_toy_dataset

            summary = write_toy_dataset(root, train, val, image_size=size, seed=seed, progress=advance)
    images = " + ".join(f"{n} {split.removesuffix('2017')}" for split, n in summary["images"].items())
    console.print(
        f"toy dataset → {root}: {images} images, {len(summary['categories'])} classes "
        f"({', '.join(summary['categories'])}); class list {summary['classes_file']}"
    )
    if open_vocab:
        console.print(f"class groups → {summary['groups_file']}; CLIP corpus → {root / 'clip'}")


def register(app: typer.Typer) -> None:
    app.command("toy-data")(toy_data)
