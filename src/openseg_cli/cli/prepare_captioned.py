"""`openseg prepare narratives | folder | coco-json`: captioned and custom data sets → shards."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from openseg_cli.cli.console import progress_bar
from openseg_cli.cli.prepare import MAXCOUNT_HELP, MAXSIZE_HELP, report, shard_bytes

_STRICT_HELP = "Stop with an error at the first bad record or image instead of counting it as a skip."


def _write(reader, out: Path | None, name: str, split: str, maxcount, maxsize_bytes) -> None:
    """Shards from a ready reader into `out` (or a fresh runs/prepare/NAME folder), then the summary."""
    from openseg_cli.data.prepare_io import write_reader_shards
    from openseg_cli.runs import output_dir

    try:
        out_dir = output_dir(out, "prepare", name)
        with progress_bar(f"{reader.source} {split}", len(reader)) as advance:
            manifest = write_reader_shards(
                reader, out_dir, split, maxcount=maxcount, maxsize=maxsize_bytes, command=sys.argv,
                progress=advance,
            )  # fmt: skip
    finally:
        if hasattr(reader, "close"):
            reader.close()
    report(manifest, out_dir)


def _split_tag(split: str) -> str:
    return split.replace("-", "_")


def narratives(
    jsonl: list[Path] = typer.Argument(..., help="Localized Narratives JSONL files (full or captions-only)."),
    images: list[Path] = typer.Option(
        ..., "--images", help="Image folder; repeat for several (COCO train2017, flickr30k-images…)."
    ),
    exclude_ade20k: bool = typer.Option(
        False, "--exclude-ade20k", help="Drop ADE20K narratives (for zero-shot ADE20K numbers)."
    ),
    split: str = typer.Option("train", "--split", help="Split tag in shard names."),
    source: str = typer.Option("narratives", "--source", help="Source tag: {source}-{split}-N.tar."),
    out: Path | None = typer.Option(
        None, "--out", help="Shard folder (default: runs/prepare/SOURCE-SPLIT[N])."
    ),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    maxcount: int | None = typer.Option(None, "--maxcount", min=1, help=MAXCOUNT_HELP),
    maxsize: str | None = typer.Option(None, "--maxsize", help=MAXSIZE_HELP),
) -> None:
    """Localized Narratives + their images → caption-only shards (no masks; several narratives per image
    become its captions). Images are found by LN's naming: COCO {id:012d}.jpg, others {image_id}.jpg."""
    from openseg_cli.data.narratives import NarrativesReader

    maxsize_bytes = shard_bytes(maxsize)
    split = _split_tag(split)
    reader = NarrativesReader(
        jsonl, images, exclude_ade20k=exclude_ade20k, strict=strict, source=source, work_dir=out
    )
    _write(reader, out, f"{source}-{split}", split, maxcount, maxsize_bytes)


def folder(
    directory: Path = typer.Argument(
        ..., help="Image folder (file names in the captions file are relative to it)."
    ),
    captions: Path = typer.Option(
        ..., "--captions", help="captions.tsv (file_name<TAB>caption), .csv or .jsonl {file_name, caption}."
    ),
    split: str = typer.Option("train", "--split", help="Split tag in shard names."),
    source: str = typer.Option("folder", "--source", help="Source tag: {source}-{split}-N.tar."),
    out: Path | None = typer.Option(
        None, "--out", help="Shard folder (default: runs/prepare/SOURCE-SPLIT[N])."
    ),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    maxcount: int | None = typer.Option(None, "--maxcount", min=1, help=MAXCOUNT_HELP),
    maxsize: str | None = typer.Option(None, "--maxsize", help=MAXSIZE_HELP),
) -> None:
    """A folder of images + a captions file → caption-only shards (one caption per line; repeat a file
    name for several captions)."""
    from openseg_cli.data.captions_folder import CaptionsFolderReader

    maxsize_bytes = shard_bytes(maxsize)
    split = _split_tag(split)
    reader = CaptionsFolderReader(directory, captions, source=source, strict=strict, work_dir=out)
    _write(reader, out, f"{source}-{split}", split, maxcount, maxsize_bytes)


def coco_json(
    annotations: Path = typer.Argument(..., help="COCO instances JSON (polygons or RLE) of your data set."),
    images: Path = typer.Option(..., "--images", help="Folder holding the JSON's images[].file_name."),
    captions: Path | None = typer.Option(
        None, "--captions", help="COCO captions JSON ({annotations: [{image_id, caption}]})."
    ),
    split: str = typer.Option("train", "--split", help="Split tag in shard names."),
    source: str = typer.Option("custom", "--source", help="Source tag: {source}-{split}-N.tar."),
    out: Path | None = typer.Option(
        None, "--out", help="Shard folder (default: runs/prepare/SOURCE-SPLIT[N])."
    ),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    maxcount: int | None = typer.Option(None, "--maxcount", min=1, help=MAXCOUNT_HELP),
    maxsize: str | None = typer.Option(None, "--maxsize", help=MAXSIZE_HELP),
) -> None:
    """Your COCO-format instance annotations → panoptic shards (masks painted into one id map: overlaps
    go to the smaller instance). For a COCO *panoptic* JSON use `openseg prepare coco --panoptic-json`."""
    from openseg_cli.data.coco_instances import CocoInstancesReader

    maxsize_bytes = shard_bytes(maxsize)
    split = _split_tag(split)
    reader = CocoInstancesReader(annotations, images, captions, source=source, strict=strict)
    _write(reader, out, f"{source}-{split}", split, maxcount, maxsize_bytes)


def add_commands(prepare_app: typer.Typer) -> None:
    """Add this module's `prepare` subcommands."""
    prepare_app.command("narratives")(narratives)
    prepare_app.command("folder")(folder)
    prepare_app.command("coco-json")(coco_json)
