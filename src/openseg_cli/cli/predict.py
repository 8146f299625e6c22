"""`openseg predict IMAGE… -q "horse, road"`: segment images with free-text queries."""

from __future__ import annotations

import glob
from pathlib import Path

import typer

from openseg_cli.cli.console import console, progress_bar
from openseg_cli.errors import InputFileError, UsageError

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def predict(
    images: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    queries: str | None = typer.Option(
        None,
        "--queries",
        "-q",
        help="Classes to find: 'horse, road' (comma = classes) or 'wall, walls; sky' (';' = classes, "
        "',' = synonyms of one class).",
    ),
    classes_file: Path | None = typer.Option(
        None, "--classes", help="Class file: one class per line, synonyms comma-separated."
    ),
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-c", help="openseg checkpoint (model.pt or .ckpt)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: runs/predict/<name>[N])."),
    name: str = typer.Option("predict", "--name", help="Run name under runs/predict/."),
    size: int | None = typer.Option(
        None, "--size", min=32, help="Fit images into SIZE×SIZE (default: the recipe's crop)."
    ),
    unknown_threshold: float | None = typer.Option(
        None,
        "--unknown-threshold",
        min=0.0,
        max=1.0,
        help="Pixels whose best class probability is below this become 'unknown' "
        "(the released demo used 0.04).",
    ),
    mask_source: str = typer.Option(
        "pred", "--mask-source", help="pred (mask proposals) | pixel (per-pixel)."
    ),
    templates: str | None = typer.Option(
        None,
        "--templates",
        help="Prompt templates: clip80 | vild63 | san14 | a file (one per line). Default: none.",
    ),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu or cuda:0."),
) -> None:
    """Writes <image>_overlay.png with a legend, <image>_labels.png and <image>.json (per-query areas)."""
    from openseg_cli.text.queries import parse_queries, read_class_file
    from openseg_cli.text.templates import load_templates

    if (queries is None) == (classes_file is None):
        raise UsageError("give the classes with either -q/--queries or --classes FILE")
    classes = (
        parse_queries(queries)
        if queries is not None
        else read_class_file(classes_file, allow_duplicates=False)
    )
    if mask_source not in ("pred", "pixel"):
        raise UsageError(f"--mask-source must be pred or pixel for predict, not {mask_source!r}")
    paths = expand_images(images)
    from openseg_cli.engine.predict import PredictRequest, run_prediction
    from openseg_cli.runs import output_dir

    out_dir = output_dir(out, "predict", name)
    req = PredictRequest(
        checkpoint, paths, classes, size, unknown_threshold, mask_source, device,
        load_templates(templates) if templates else None,
    )  # fmt: skip
    with progress_bar("predict", len(paths)) as advance:
        results = run_prediction(req, out_dir, progress=advance)
    console.print(f"{len(results)} image(s) segmented into {len(classes)} classes → {out_dir}")


def expand_images(specs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns → image paths; InputFileError when none."""
    paths: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        elif path.is_file():
            paths.append(path)
        elif any(c in spec for c in "*?["):
            paths += [Path(p) for p in sorted(glob.glob(spec)) if Path(p).is_file()]
        else:
            raise InputFileError(f"{spec}: no such image, folder or pattern")
    if not paths:
        raise InputFileError(f"no images found in {', '.join(specs)}")
    return paths


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
