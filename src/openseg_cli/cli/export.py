"""`openseg export onnx CKPT --out DIR`: the image tower as ONNX, plus a vocabulary's text embeddings."""

from __future__ import annotations

from pathlib import Path

import typer

from openseg_cli.cli.console import console
from openseg_cli.errors import UsageError

export_app = typer.Typer(
    help="Export a trained model for other runtimes.", no_args_is_help=True, add_completion=False
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


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
