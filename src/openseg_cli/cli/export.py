"""`openseg export onnx CKPT --out DIR`: the image tower as ONNX, plus a vocabulary's text embeddings.
`openseg export clip-data SHARDS --out DIR`: captioned shards as open_clip_train's WebDataset input."""

from __future__ import annotations

from pathlib import Path

import typer

from openseg_cli.cli.console import console, progress_bar
from openseg_cli.cli.prepare import MAXCOUNT_HELP, MAXSIZE_HELP, shard_bytes
from openseg_cli.errors import UsageError

export_app = typer.Typer(
    help="Export a trained model for other runtimes, or shards for open_clip_train.",
    no_args_is_help=True,
    add_completion=False,
)


@export_app.command("onnx")
def onnx(
    checkpoint: Path = typer.Argument(..., help="openseg checkpoint (model.pt or .ckpt)."),
    out: Path = typer.Option(..., "--out", help="Output folder (must be empty or new, unless --force)."),
    size: int | None = typer.Option(
        None, "--size", help="Input side S, a multiple of 32 (default: the recipe's crop, 640 for COCO)."
    ),
    queries: str | None = typer.Option(
        None,
        "--queries",
        "-q",
        help="Classes whose text embeddings to save: 'horse, road' (comma = classes) or "
        "'wall, walls; sky' (';' = classes, ',' = synonyms).",
    ),
    classes_file: Path | None = typer.Option(
        None,
        "--classes",
        help="Class file to save text embeddings for: one class per line, synonyms comma-separated.",
    ),
    templates: str | None = typer.Option(
        None,
        "--templates",
        help="Prompt templates for the text embeddings: clip80 | vild63 | san14 | a file. Default: none.",
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version (14..20)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an earlier export in --out."),
) -> None:
    """Writes model.onnx, export.json and, with -q/--classes, text_embeddings.npz + classes.json."""
    if queries is not None and classes_file is not None:
        raise UsageError("give the classes with either -q/--queries or --classes FILE, not both")
    from openseg_cli.engine.export import ExportRequest, export_onnx
    from openseg_cli.text.queries import parse_queries, read_class_file
    from openseg_cli.text.templates import load_templates

    classes = None
    if queries is not None:
        classes = parse_queries(queries)
    elif classes_file is not None:
        classes = read_class_file(classes_file)
    req = ExportRequest(
        checkpoint, out, size, classes, load_templates(templates) if templates else None, opset, force
    )
    with console.status("exporting to ONNX"):
        manifest = export_onnx(req)
    errors = (manifest.get("verified") or {}).get("max_relative_error", {})
    check = f", max relative error vs PyTorch {max(errors.values()):.1e}" if errors else ""
    vocabulary = f" + text embeddings of {len(classes)} classes" if classes else ""
    console.print(f"model.onnx (size {manifest['size']}, opset {opset}){vocabulary}{check} → {out}")


@export_app.command("clip-data")
def clip_data(
    shards: Path = typer.Argument(
        ..., help="openseg shards with captions (a folder, .tar, brace pattern or glob): `openseg prepare …`."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for clip-NNNNNN.tar, sizes.json, clip_data.json."),
    captions: str = typer.Option(
        "each",
        "--captions",
        help="each: one sample per caption, the image repeated (as CLIP fine-tuning on COCO does); "
        "one: one sample per image, its first caption.",
    ),
    maxcount: int | None = typer.Option(None, "--maxcount", min=1, help=MAXCOUNT_HELP),
    maxsize: str | None = typer.Option(None, "--maxsize", help=MAXSIZE_HELP),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace clip tars in --out written from other input or settings."
    ),
) -> None:
    """Image bytes unchanged (jpg/png) + a txt caption per sample: open_clip_train's --dataset-type
    webdataset input. Images without a caption are counted and skipped. Prints the command to train."""
    from openseg_cli.data.clip_export import CAPTION_MODES, count_input_samples, export_clip_data
    from openseg_cli.engine.clip_train import suggested_command

    if captions not in CAPTION_MODES:
        raise UsageError(f"--captions {captions!r}: use {' or '.join(CAPTION_MODES)}")
    maxsize_bytes = shard_bytes(maxsize)
    with progress_bar("clip-data", count_input_samples(shards)) as advance:
        record = export_clip_data(
            shards, out, captions=captions, maxcount=maxcount, maxsize=maxsize_bytes, overwrite=overwrite,
            progress=advance,
        )  # fmt: skip
    _report_clip_data(out, record, suggested_command(out, record))


def _report_clip_data(out: Path, record: dict, command: str) -> None:
    """The export's counts and skips, then the two ways to train on it."""
    counts = record["counts"]
    state = " (up to date: nothing rewritten)" if record["up_to_date"] else ""
    console.print(
        f"clip data → {out}: {counts['samples']} samples from {counts['images']} images "
        f"(--captions {record['params']['captions']}) in {len(record['shards'])} shards{state}"
    )
    if counts["images_without_caption"]:
        first = ", ".join(record["examples_without_caption"])
        console.print(f"  [yellow]skipped[/] {counts['images_without_caption']} images without a caption "
                      f"(first: {first})")  # fmt: skip
    for reason, n in sorted(counts["skipped"].items()):
        console.print(f"  [yellow]skipped[/] {n} × {reason}")
    console.print("train a CLIP on it (openseg clip-train --help):")
    console.print(f"  openseg clip-train {out} --out OUT --model openseg-tiny-vit", markup=False)
    console.print("or with open_clip_train's own flags (openseg's model configs registered):")
    console.print(f"  {command}", markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
