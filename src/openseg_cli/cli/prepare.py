"""`openseg prepare …`: turn datasets in their download layouts into openseg shards."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from openseg_cli.cli.console import console, progress_bar

MAXCOUNT_HELP = "Samples per shard, at most (default 100000: --maxsize is the bound that counts)."
MAXSIZE_HELP = "Bytes per shard, at most: 500MB, 512MiB, 1G or a number (default 512MiB)."

prepare_app = typer.Typer(
    help="Datasets in their download layouts → WebDataset shards, or benchmarks → detectron2 layouts.",
    no_args_is_help=True,
)


@prepare_app.command("coco")
def coco(
    root: Path = typer.Argument(
        ..., help="COCO root: SPLIT/*.jpg and annotations/{panoptic,captions}_SPLIT.json"
    ),
    split: str = typer.Option("train2017", "--split", help="Split name as in the file names (val2017…)."),
    out: Path | None = typer.Option(
        None, "--out", help="Shard folder (default: runs/prepare/coco-SPLIT[N])."
    ),
    source: str = typer.Option("coco", "--source", help="Source tag in shard names: {source}-{split}-N.tar."),
    strict: bool = typer.Option(
        False, "--strict", help="Stop at the first bad record instead of skipping it."
    ),
    maxcount: int | None = typer.Option(None, "--maxcount", min=1, help=MAXCOUNT_HELP),
    maxsize: str | None = typer.Option(None, "--maxsize", help=MAXSIZE_HELP),
    no_captions: bool = typer.Option(False, "--no-captions", help="Masks only: no captions file needed."),
    images: Path | None = typer.Option(None, "--images", help="Image folder, when not ROOT/SPLIT."),
    panoptic_json: Path | None = typer.Option(
        None, "--panoptic-json", help="When not ROOT/annotations/panoptic_SPLIT.json."
    ),
    panoptic_dir: Path | None = typer.Option(
        None, "--panoptic-dir", help="PNG folder, when not ROOT/annotations/panoptic_SPLIT."
    ),
    captions: Path | None = typer.Option(
        None, "--captions", help="When not ROOT/annotations/captions_SPLIT.json."
    ),
) -> None:
    """COCO panoptic masks + captions → shards (images and PNGs copied byte for byte), sizes.json, manifest.

    Files are found in COCO's download layout under ROOT; --images/--panoptic-json/--panoptic-dir/--captions
    point at parts kept elsewhere.
    """
    from dataclasses import replace

    from openseg_cli.data.coco import CocoPanopticReader, coco_paths, write_coco_shards
    from openseg_cli.runs import output_dir

    maxsize_bytes = shard_bytes(maxsize)
    paths = coco_paths(root, split, captions=not no_captions)
    given = {"images_dir": images, "panoptic_json": panoptic_json, "panoptic_dir": panoptic_dir}
    if captions is not None and not no_captions:
        given["captions_json"] = captions
    paths = replace(paths, **{k: v for k, v in given.items() if v is not None})
    paths.check()
    reader = CocoPanopticReader(paths, source=source, strict=strict)
    split_tag = split.replace("-", "_")
    out_dir = output_dir(out, "prepare", f"{source}-{split_tag}")
    with progress_bar(f"{source} {split}", len(reader)) as advance:
        manifest = write_coco_shards(
            reader,
            out_dir,
            split_tag,
            source=source,
            strict=strict,
            maxcount=maxcount,
            maxsize=maxsize_bytes,
            command=sys.argv,
            progress=advance,
        )
    report(manifest, out_dir)


def shard_bytes(maxsize: str | None) -> int | None:
    """`--maxsize` text → bytes (None: the default); a bad value is a UsageError."""
    from openseg_cli.data.prepare_io import parse_size
    from openseg_cli.errors import UsageError

    if maxsize is None:
        return None
    try:
        value = parse_size(maxsize)
    except ValueError as exn:
        raise UsageError(f"--maxsize: {exn}") from None
    if value < 1:
        raise UsageError(f"--maxsize: {maxsize!r} must be at least 1 byte")
    return value


def _print_skips(label: str, skipped: dict, examples: dict) -> None:
    for reason, n in sorted(skipped.items()):
        first = (examples.get(reason) or [None])[0]
        where = f" (first: {first})" if first else ""
        console.print(f"  [yellow]skipped[/] {n} {label} × {reason}{where}")


def report(manifest: dict, out_dir: Path) -> None:
    """Print what was written and every skip, by reason with its first place (the end-of-run summary)."""
    counts = manifest.get("counts", {})
    console.print(
        f"shards → {out_dir}: {counts.get('written', '?')} samples "
        f"in {len(manifest.get('shards', []))} shards"
    )
    _print_skips("images", counts.get("skipped") or {}, manifest.get("skip_examples") or {})
    for part in ("records", "captions", "segments", "annotations"):
        tally = manifest.get(part)
        if isinstance(tally, dict) and tally.get("seen"):
            console.print(f"  {part}: {tally['used']} of {tally['seen']} used")
            _print_skips(part, tally.get("skipped") or {}, tally.get("examples") or {})
    if manifest.get("images_without_captions"):
        n = manifest["images_without_captions"]
        console.print(f"  [yellow]{n} images in the folder have no caption[/] (not written)")


def register(app: typer.Typer) -> None:
    from openseg_cli.cli import prepare_benchmarks, prepare_captioned

    prepare_benchmarks.add_commands(prepare_app)
    prepare_captioned.add_commands(prepare_app)
    app.add_typer(prepare_app, name="prepare")
