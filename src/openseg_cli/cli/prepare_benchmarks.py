"""`openseg prepare ade150|ade847|pc59|pc459|voc20`: official benchmark downloads → detectron2 layouts.

Thin: parse, call `openseg_cli.data.benchmarks` (plan, then run with a progress bar), print a summary.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from openseg_cli.cli.console import console, progress_bar

_OUT_HELP = "Output root (default: the dataset root ROOT, i.e. beside the download, like detectron2)."
_STRICT_HELP = "Stop with an error at the first problem instead of skipping and counting it."


class Convention(str, Enum):
    catseg = "catseg"
    san = "san"


class Ade847Split(str, Enum):
    validation = "validation"
    training = "training"
    all = "all"


def _root_arg(folder: str) -> Path:
    return typer.Argument(..., help=f"Dataset root holding {folder} (or that folder itself).")


def _run(plan, strict: bool) -> None:
    """Prepare every item of `plan` under a progress bar, then print counts and skip reasons."""
    from openseg_cli.data.benchmarks import run_plan

    with progress_bar(f"prepare {plan.spec.name}", len(plan.items)) as advance:
        report = run_plan(plan, strict=strict, progress=advance, command=sys.argv)
    counts = report["counts"]
    console.print(
        f"{report['benchmark']} ({report['convention']}, ignore {report['ignore_value']}, "
        f"{report['label_dtype']}) → {plan.out_root}: {counts['prepared']} prepared "
        f"({counts['written']} written, {counts['already_prepared']} already there)"
    )
    for reason, n in counts["skipped_by_reason"].items():
        console.print(f"  [yellow]skipped[/] {n} × {reason}")
    console.print(f"report → {plan.report_path}")


def ade150(
    root: Path = _root_arg("ADEChallengeData2016/{images,annotations}/validation"),
    out: Path | None = typer.Option(None, "--out", help=_OUT_HELP),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
) -> None:
    """ADE20K-150 val → ADEChallengeData2016/annotations_detectron2/validation (uint8 label-1, 255 ignore)."""
    from openseg_cli.data.benchmarks import plan_ade150

    _run(plan_ade150(root, out), strict)


def ade847(
    root: Path = _root_arg("ADE20K_2021_17_01/images/ADE"),
    out: Path | None = typer.Option(None, "--out", help=_OUT_HELP),
    split: Ade847Split = typer.Option(Ade847Split.validation, "--split", help="Which folder(s) to prepare."),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
) -> None:
    """ADE20K full → ADE-847 images_detectron2/*.jpg + annotations_detectron2/*.tif (uint16, 65535 ignore).

    The shorter side is resized to 512 when above 512 (image bilinear, label nearest).
    """
    from openseg_cli.data.benchmarks import plan_ade847

    splits = ("training", "validation") if split is Ade847Split.all else (split.value,)
    _run(plan_ade847(root, out, splits), strict)


def _pascal_context(name: str, root, out, convention, split_file, strict) -> None:
    from openseg_cli.data.benchmarks import plan_pascal_context

    _run(plan_pascal_context(root, name, out, convention.value, split_file), strict)


_CONVENTION_HELP = (
    "catseg: VOCdevkit/VOC2010/annotations_detectron2/{pc59_val,pc459_val}, PC-459 ignore 459; "
    "san: pcontext/val (PC-59) or pcontext_full/val (PC-459) with image/ and label/, PC-459 ignore 65535."
)
_SPLIT_FILE_HELP = (
    "Val id list (default: VOC2010/pascalcontext_val.txt, val.txt or ImageSets/SegmentationContext/val.txt)."
)


def pc59(
    root: Path = _root_arg("VOCdevkit/VOC2010/{JPEGImages,trainval/*.mat,labels.txt}"),
    out: Path | None = typer.Option(None, "--out", help=_OUT_HELP),
    convention: Convention = typer.Option(Convention.catseg, "--convention", help=_CONVENTION_HELP),
    split_file: Path | None = typer.Option(None, "--split-file", help=_SPLIT_FILE_HELP),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
) -> None:
    """PASCAL Context val → PC-59 labels (uint8 PNG 0..58, background and other classes 255)."""
    _pascal_context("pc59", root, out, convention, split_file, strict)


def pc459(
    root: Path = _root_arg("VOCdevkit/VOC2010/{JPEGImages,trainval/*.mat,labels.txt}"),
    out: Path | None = typer.Option(None, "--out", help=_OUT_HELP),
    convention: Convention = typer.Option(Convention.catseg, "--convention", help=_CONVENTION_HELP),
    split_file: Path | None = typer.Option(None, "--split-file", help=_SPLIT_FILE_HELP),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
) -> None:
    """PASCAL Context val → PC-459 labels (uint16 TIFF 0..458 = id-1; ignore 459 catseg / 65535 san)."""
    _pascal_context("pc459", root, out, convention, split_file, strict)


def voc20(
    root: Path = _root_arg("VOCdevkit/VOC2012/{JPEGImages,SegmentationClass}"),
    out: Path | None = typer.Option(None, "--out", help=_OUT_HELP),
    split_file: Path | None = typer.Option(
        None, "--split-file", help="Val id list (default: VOC2012/ImageSets/Segmentation/val.txt)."
    ),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
) -> None:
    """PASCAL VOC 2012 val → VOC2012/annotations_detectron2/val (uint8, classes 0..19, 255 ignore)."""
    from openseg_cli.data.benchmarks import plan_voc20

    _run(plan_voc20(root, out, split_file), strict)


def add_commands(prepare_app: typer.Typer) -> None:
    """Add the five benchmark subcommands to `openseg prepare`."""
    for command in (ade150, ade847, pc59, pc459, voc20):
        prepare_app.command(command.__name__)(command)
