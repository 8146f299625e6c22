"""`openseg predict IMAGE… -q "horse, road"`: segment images with free-text queries."""

from __future__ import annotations

from pathlib import Path

import typer

from openseg_cli.cli.console import console, err_console, progress_bar
from openseg_cli.cli.evaluate import RULE_HELP
from openseg_cli.errors import UsageError

_SHOWN_SKIPS = 10  # unreadable images listed by name at the end; the rest are counted


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
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", "-c", help="openseg checkpoint (model.pt or .ckpt)."
    ),
    clip: str | None = typer.Option(
        None,
        "--clip",
        help="Zero-shot instead of -c: CLIP weights alone, MODEL[:PRETRAINED] (an open_clip tag or a "
        "local file, e.g. ViT-B-16:openai or RN50:/w/rn50.pt), segmenting with MaskCLIP's dense features. "
        "--mask-source does not apply; --size defaults to 448.",
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
    rule: str | None = typer.Option(None, "--rule", help=RULE_HELP, show_default=False),
    templates: str | None = typer.Option(
        None,
        "--templates",
        help="Prompt templates: clip80 | vild63 | san14 | a file (one per line). Default: none.",
    ),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu, cuda or cuda:1."),
    batch_size: int = typer.Option(
        4, "--batch-size", min=1, help="Images scored together (results do not depend on it)."
    ),
    background: str | None = typer.Option(
        None,
        "--background",
        help="Extra classes that compete with the queries but whose pixels are written as unknown "
        "(same syntax as -q, e.g. 'sky, wall; floor'). Listed under 'background' in the JSON.",
    ),
    background_file: Path | None = typer.Option(
        None, "--background-file", help="Background classes from a class file (like --classes)."
    ),
    masks: str = typer.Option(
        "none",
        "--masks",
        help="Per-query masks: none | png (<image>_masks/<index>-<name>.png, 0/255) | rle (COCO RLE "
        "per query in the JSON).",
    ),
    max_pixels: int | None = typer.Option(
        None,
        "--max-pixels",
        min=1,
        help="Refuse images with more pixels than this (decompression-bomb guard; default: "
        "$OPENSEG_MAX_PIXELS, else Pillow's 89,478,485).",
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first unreadable image instead of skipping and counting it."
    ),
) -> None:
    """Writes <image>_overlay.png with a legend, <image>_labels.png and <image>.json (per-query areas).

    Unreadable images are skipped, counted and listed at the end (an error with --strict, or when none
    could be read). Transparent pixels are composited on white; 16-bit images are scaled to 8 bits;
    EXIF orientation is applied, so outputs match the image as a viewer shows it.
    """
    from openseg_cli.data.images import list_images
    from openseg_cli.text.queries import parse_queries, read_class_file
    from openseg_cli.text.templates import load_templates

    if (queries is None) == (classes_file is None):
        raise UsageError("give the classes with either -q/--queries or --classes FILE")
    if (checkpoint is None) == (clip is None):
        raise UsageError("give either an openseg checkpoint (-c/--checkpoint) or --clip MODEL[:PRETRAINED]")
    classes = (
        parse_queries(queries)
        if queries is not None
        else read_class_file(classes_file, allow_duplicates=False)
    )
    extra = _background_classes(background, background_file, classes)
    if mask_source not in ("pred", "pixel"):
        raise UsageError(f"--mask-source must be pred or pixel for predict, not {mask_source!r}")
    if masks not in ("none", "png", "rle"):
        raise UsageError(f"--masks must be none, png or rle, not {masks!r}")
    paths = list_images(images)
    from openseg_cli.engine.predict import PredictRequest, run_prediction
    from openseg_cli.runs import output_dir

    out_dir = output_dir(out, "predict", name)
    req = PredictRequest(
        checkpoint, paths, classes, size, unknown_threshold, mask_source, device,
        load_templates(templates) if templates else None, batch_size=batch_size, background=extra,
        masks=masks, max_pixels=max_pixels, strict=strict, clip=clip, rule=rule,
    )  # fmt: skip
    with progress_bar("predict", len(paths)) as advance:
        summary = run_prediction(req, out_dir, progress=advance)
    console.print(f"{len(summary.results)} image(s) segmented into {len(classes)} classes → {out_dir}")
    if summary.skipped:
        err_console.print(f"[yellow]{len(summary.skipped)} unreadable image(s) skipped:[/]", highlight=False)
        for _, reason in summary.skipped[:_SHOWN_SKIPS]:
            err_console.print(f"  {reason}", highlight=False, soft_wrap=True)
        if len(summary.skipped) > _SHOWN_SKIPS:
            err_console.print(f"  … and {len(summary.skipped) - _SHOWN_SKIPS} more", highlight=False)


def _background_classes(text: str | None, file: Path | None, queries: list[list[str]]) -> list[list[str]]:
    """--background / --background-file → classes; UsageError for both, or a name that is also a query."""
    from openseg_cli.text.queries import parse_queries, read_class_file

    if text is not None and file is not None:
        raise UsageError("give background classes with either --background or --background-file, not both")
    if text is None and file is None:
        return []
    extra = parse_queries(text) if text is not None else read_class_file(file, allow_duplicates=False)
    names = {name.lower(): number for number, syns in enumerate(queries, start=1) for name in syns}
    for syns in extra:
        for name in syns:
            if name.lower() in names:
                raise UsageError(
                    f"background class {name!r} is also query {names[name.lower()]}: a name is either "
                    "a query or background"
                )
    return extra


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
