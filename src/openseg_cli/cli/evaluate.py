"""`openseg evaluate CKPT | --clip MODEL:PRETRAINED  --shards DIR | --benchmark NAME [--data ROOT]`: mIoU,
per-class IoU and, with `--class-groups FILE`, mIoU per class group and hIoU."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from openseg_cli.cli.console import console, progress_bar

BENCHMARKS = ("ade150", "ade847", "pc59", "pc459", "voc20", "coco")


RULE_HELP = (
    "How the proposals' class scores meet at a pixel: sum (Σ over proposals of mask × class probability) | "
    "max (the proposal with the highest mask × class confidence, the release's rule). Default: the "
    "checkpoint recipe's inference.rule."
)


def evaluate(
    checkpoint: Path | None = typer.Argument(
        None, help="openseg checkpoint (model.pt or .ckpt); leave it out with --clip.", show_default=False
    ),
    clip: str | None = typer.Option(
        None,
        "--clip",
        help="Instead of CHECKPOINT: zero-shot baseline with CLIP weights alone, MODEL:PRETRAINED (an "
        "open_clip model, e.g. ViT-B-16:openai or RN50:/w/rn50.pt; PRETRAINED is an open_clip tag or a "
        "local file), scoring every pixel with MaskCLIP's dense features (--mask-source pixel).",
    ),
    class_groups: Path | None = typer.Option(
        None,
        "--class-groups",
        help='JSON {"seen": ["circle", "grass"], "unseen": ["heart"], ...}: mIoU per group (a name matches '
        "any synonym of a class, case-insensitive) and, with groups seen and unseen, hIoU = 2su/(s+u). "
        "Classes in no group are reported as group 'ungrouped' (only if there are any).",
    ),
    shards: str | None = typer.Option(
        None, "--shards", help="Val shards (folder) with panoptic ground truth (instead of --benchmark)."
    ),
    benchmark: str | None = typer.Option(
        None,
        "--benchmark",
        help="ade150 | ade847 | pc59 | pc459 | voc20 (prepared detectron2 layouts under --data, scored at "
        "the original image resolution) | coco (the val shards of `prepare coco` in --data).",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Benchmark root (default: $DETECTRON2_DATASETS, else ./datasets)."
    ),
    convention: str | None = typer.Option(
        None,
        "--convention",
        help="Pascal Context layout: catseg (VOC2010/annotations_detectron2) | san (pcontext*/val). "
        "Default: the one found under --data.",
    ),
    classes_file: Path | None = typer.Option(
        None,
        "--classes",
        help="Class names with synonyms, one line per class in label order (default: the dataset's or the "
        "benchmark's built-in list; must have as many classes).",
    ),
    mask_source: str | None = typer.Option(
        None,
        "--mask-source",
        help="pred (proposals; default) | pixel (no proposals; the only one for --clip) | gt (ground-truth "
        "masks, shards only): Table 4.",
        show_default=False,
    ),
    rule: str | None = typer.Option(None, "--rule", help=RULE_HELP, show_default=False),
    grounding: bool = typer.Option(
        False, "--grounding", help="Grounding mIoU: each image's vocabulary is only its ground-truth classes."
    ),
    size: int | None = typer.Option(
        None,
        "--size",
        min=32,
        help="Fit+pad (or window) size; default: 640 for --benchmark, else the recipe's crop (448 with "
        "--clip, as predict --clip: pass the size of the checkpoint run you compare with). A multiple of "
        "the tower's stride (32; 16 or 32 for --clip).",
    ),
    sliding_window: bool = typer.Option(
        False,
        "--sliding-window",
        help="Benchmarks: short side resized to --size, size² windows every --stride px, scores averaged.",
    ),
    stride: int | None = typer.Option(
        None, "--stride", min=1, help="Sliding-window stride (default: 2/3 of --size)."
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Benchmarks: an image without label (or label without image) is an error, not a skip.",
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Shards only: images per forward pass."),
    workers: int = typer.Option(1, "--workers", min=0),
    templates: str | None = typer.Option(
        None,
        "--templates",
        help="Prompt templates: clip80 | vild63 | san14 | a file (one per line). Default: none.",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | cuda:N."),
    devices: int = typer.Option(
        1,
        "--devices",
        min=1,
        help="Benchmarks: processes (one per GPU, or CPU processes); each image counted once.",
    ),
    report: bool = typer.Option(
        True, "--report/--no-report", help="Also write report.html (self-contained) beside metrics.json."
    ),
    examples: int = typer.Option(
        8, "--examples", min=0, help="Images shown in report.html, spread over the set."
    ),
    out: Path | None = typer.Option(None, "--out", help="Report folder (default: runs/evaluate/<name>[N])."),
    name: str = typer.Option("eval", "--name"),
) -> None:
    """Writes metrics.json (mIoU, fwIoU, pixel accuracy, per-class IoU; per-group mIoU and hIoU with
    --class-groups) and report.html; prints the tables."""
    from openseg_cli.errors import UsageError
    from openseg_cli.runs import output_dir
    from openseg_cli.text.queries import read_class_file
    from openseg_cli.text.templates import load_templates

    if (checkpoint is None) == (clip is None):
        raise UsageError("give exactly one of an openseg CHECKPOINT or --clip MODEL:PRETRAINED")
    if (shards is None) == (benchmark is None):
        raise UsageError("give exactly one of --shards DIR or --benchmark NAME")
    if benchmark is not None and benchmark not in BENCHMARKS:
        raise UsageError(f"unknown benchmark {benchmark!r}; choose {' | '.join(BENCHMARKS)}")
    classes = read_class_file(classes_file) if classes_file else None
    prompts = load_templates(templates) if templates else None
    root = data or Path(os.environ.get("DETECTRON2_DATASETS") or "datasets")
    out_dir = output_dir(out, "evaluate", name)
    if benchmark is None or benchmark == "coco":
        if devices > 1 or sliding_window:
            raise UsageError("--devices > 1 and --sliding-window need a prepared --benchmark (not shards)")
        from openseg_cli.engine.evaluate import EvalRequest, run_evaluation

        req = EvalRequest(
            checkpoint, shards or str(root), classes, mask_source, size or (640 if benchmark else None),
            batch_size, workers, device, grounding, prompts, benchmark, report, examples, clip, class_groups,
            rule,
        )  # fmt: skip
        with progress_bar("evaluate", None) as advance:
            result = run_evaluation(req, out_dir, progress=advance)
    else:
        from openseg_cli.engine.evaluate_benchmark import BenchmarkRequest, run_benchmark_evaluation

        req = BenchmarkRequest(
            checkpoint, benchmark, root, convention, classes, mask_source, size or 640, sliding_window,
            stride, workers, device, devices, grounding, prompts, templates, strict, report, examples,
            clip=clip, class_groups=class_groups, rule=rule,
        )  # fmt: skip
        with progress_bar(f"evaluate {benchmark}", None) as advance:
            result = run_benchmark_evaluation(req, out_dir, progress=advance)
    _print_table(result)
    _print_groups(result)
    _print_summary(result, out_dir)


def _print_summary(result: dict, out_dir: Path) -> None:
    skipped = sum(result.get("skips", {}).values())
    note = f" ({skipped} files skipped: {result['skips']})" if skipped else ""
    console.print(
        f"mIoU {100 * result['miou']:.2f} on {result['images']} images{note} → {out_dir / 'metrics.json'}"
    )
    if result.get("report"):
        console.print(f"report → {result['report']}")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _print_table(result: dict) -> None:
    from rich.table import Table

    groups = result.get("per_class_group")
    table = Table(title="per-class IoU (%)")
    table.add_column("class")
    if groups:
        table.add_column("group")
    table.add_column("IoU", justify="right")
    for index, (names, iou) in enumerate(zip(result["classes"], result["per_class_iou"], strict=True)):
        table.add_row(names[0], *([groups[index]] if groups else []), _percent(iou))
    console.print(table)


def _print_groups(result: dict) -> None:
    """Group mIoU and hIoU (`eval.groups.group_figures`), when --class-groups was given."""
    from rich.table import Table

    if "groups" not in result:
        return
    table = Table(title="class groups (%)")
    for column in ("group", "classes evaluated", "mIoU"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for name, figures in result["groups"].items():
        evaluated = f"{figures['classes_evaluated']} / {len(figures['classes'])}"
        table.add_row(name, evaluated, _percent(figures["miou"]))
    if "hiou" in result:
        table.add_row("hIoU (seen, unseen)", "", _percent(result["hiou"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
