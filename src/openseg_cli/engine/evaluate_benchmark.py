"""`run_benchmark_evaluation`: a checkpoint, or CLIP weights alone (`clip`: the zero-shot MaskCLIP
baseline), on a prepared semantic benchmark (ADE-150/847, PC-59/459, VOC-20) → metrics.json
(+ report.html), the detectron2 protocol; with `class_groups`, mIoU per class group and hIoU.

Protocol: every image is scored whole (long side fitted to `size`, padded) or by sliding windows
(`inference.sliding`), and its labels are upsampled to the ORIGINAL image resolution and compared with the
original-resolution label map (ignore pixels dropped). Images differ in size, so each forward pass holds
one image (its windows batched); upsampling runs in class chunks (bounded memory for 847 classes).

Devices: `devices=1` runs in this process. `devices=N>1` spawns N processes with Lightning Fabric
(`ddp_spawn`, gloo on CPU / nccl on GPU); rank r takes images r, r+N, r+2N, … (no padding, so every image is
counted exactly once), and the [C, C+1] confusion matrices and image counts are summed with one
all-reduce after the loop (no collective inside a loop whose length differs by rank). An input error on
any rank is carried to the end of the loop, so no rank is left waiting, and raised by the parent.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from openseg_cli.data.semantic import LAYOUTS, BenchmarkLayout, SemanticDataset, find_pairs, resolve_layout
from openseg_cli.data.skips import SkipCounter
from openseg_cli.engine.cpu import use_all_cores
from openseg_cli.engine.evaluate_examples import downscaled_example, example_indices, write_report
from openseg_cli.engine.scorers import checked_mask_source, checked_rule, load_scorer, scorer_meta
from openseg_cli.engine.text_cache import class_embeddings
from openseg_cli.errors import InputFileError, OpenSegError, UsageError
from openseg_cli.eval.grounding import present_classes, to_global_labels
from openseg_cli.eval.groups import add_group_figures, read_class_groups
from openseg_cli.eval.metrics import SegmentationMetrics
from openseg_cli.eval.report import benchmark_scalars, write_metrics_json
from openseg_cli.eval.vocabularies import benchmark_classes
from openseg_cli.inference.scorers import Scorer
from openseg_cli.inference.sliding import sliding_window_labels, whole_image_labels

BENCHMARK_MASK_SOURCES = ("pred", "pixel")  # `gt` needs segment masks, which semantic labels do not have


@dataclass(frozen=True)
class BenchmarkRequest:
    checkpoint: Path | None  # None: zero-shot with `clip`
    benchmark: str  # ade150 | ade847 | pc59 | pc459 | voc20
    data_root: Path  # the folder holding the prepared layout (`$DETECTRON2_DATASETS`)
    convention: str | None = None  # pc459: catseg | san; None = detect from the folders present
    classes: list[list[str]] | None = None  # None: the built-in vocabulary of the benchmark
    mask_source: str | None = None  # None: pred for a checkpoint, pixel for `clip`
    size: int = 640
    sliding_window: bool = False
    stride: int | None = None  # sliding windows: None = 2/3 of size
    workers: int = 1
    device: str = "cpu"  # "cpu" or "cuda[:i]"; with devices > 1 only the accelerator type counts
    devices: int = 1
    grounding: bool = False
    templates: list[str] | None = None
    templates_name: str | None = None  # shown in metrics.json
    strict: bool = False
    report: bool = True
    examples: int = 8
    extra_meta: dict = field(default_factory=dict)
    clip: str | None = None  # "MODEL:PRETRAINED": zero-shot MaskCLIP with CLIP weights alone
    class_groups: Path | None = None  # JSON {group: [class names]} → mIoU per group and hIoU
    rule: str | None = None  # sum | max over the proposals; None: the checkpoint recipe's inference.rule


@dataclass
class RankResult:
    confusion: torch.Tensor  # long [C, C + 1]
    images: int
    examples: list[tuple] = field(default_factory=list)  # see evaluate_examples.downscaled_example
    error: str = ""


def check_request(req: BenchmarkRequest) -> None:
    """UsageError for options that cannot work, before anything is loaded."""
    checked_rule(req.clip, req.rule)
    if checked_mask_source(req.checkpoint, req.clip, req.mask_source) not in BENCHMARK_MASK_SOURCES:
        raise UsageError(
            f"mask source {req.mask_source!r} is not available on semantic benchmarks (no segment masks); "
            f"choose {' | '.join(BENCHMARK_MASK_SOURCES)}"
        )
    if req.size % 32:
        raise UsageError(f"--size must be a multiple of 32 (the backbone stride), got {req.size}")
    if req.stride is not None and not 0 < req.stride <= req.size:
        raise UsageError(f"--stride must be in 1..{req.size} (the window size), got {req.stride}")
    if req.devices < 1:
        raise UsageError(f"--devices must be ≥ 1, got {req.devices}")


def run_benchmark_evaluation(
    req: BenchmarkRequest, out_dir: Path, progress: Callable[[int], None] | None = None
) -> dict:
    """Evaluate, write `out_dir/metrics.json` (and `report.html` unless `req.report` is False).

    Returns the metrics dict (with `eval.groups` figures for `class_groups`) plus "classes",
    "confusion", "images", "skips", "scalars" and "report" (path or None).
    Raises UsageError (bad options, class list of the wrong length), InputFileError (missing folders,
    unmatched files with `strict`, unreadable or out-of-range labels: the message names the file; a bad
    class-groups file, before any model is loaded), and the loaders' errors (`load_scorer`).
    """
    check_request(req)
    layout = resolve_layout(req.benchmark, Path(req.data_root), req.convention)
    skips = SkipCounter(f"{req.benchmark} files")
    pairs = find_pairs(layout, Path(req.data_root), skips, strict=req.strict)
    classes = req.classes or benchmark_classes(req.benchmark)
    if len(classes) != layout.num_classes:
        raise UsageError(
            f"the class list has {len(classes)} classes but {req.benchmark} has {layout.num_classes}"
        )
    groups = read_class_groups(req.class_groups, classes) if req.class_groups else None
    if req.devices == 1:
        if req.device == "cpu":
            use_all_cores()  # the workers only read files: see engine/cpu.py
        result = evaluate_rank(req, layout, pairs, classes, rank=0, world=1, progress=progress)
    else:
        result = _launch(req, layout, pairs, classes)
    if result.error:
        raise InputFileError(result.error)
    metrics = add_group_figures(SegmentationMetrics.from_confusion(result.confusion).compute(), groups)
    scalars = benchmark_scalars(metrics, req.benchmark)
    meta = _meta(req, layout, result.images, len(pairs), dict(skips.reasons), scalars)
    metrics_path = write_metrics_json(out_dir / "metrics.json", metrics, classes, meta)
    report = write_report(out_dir, metrics_path, classes, result.examples) if req.report else None
    return {
        **metrics,
        "classes": classes,
        "confusion": result.confusion,  # long [C, C + 1], rows = ground truth, last column = unknown
        "images": result.images,
        "skips": dict(skips.reasons),
        "scalars": scalars,
        "report": report,
    }


def _meta(req, layout: BenchmarkLayout, images: int, listed: int, skips: dict, scalars: dict) -> dict:
    return {
        "benchmark": req.benchmark,
        "convention": layout.convention,
        "data": str(req.data_root),
        **scorer_meta(req.checkpoint, req.clip, req.mask_source, req.rule),
        "vocabulary": "custom class file" if req.classes else f"built-in {req.benchmark}",
        "class_groups": str(req.class_groups) if req.class_groups else None,
        "grounding": req.grounding,
        "size": req.size,
        "mode": "sliding" if req.sliding_window else "whole",
        "stride": (req.stride or max(1, round(2 * req.size / 3))) if req.sliding_window else None,
        "resolution": "original image (detectron2 sem_seg_postprocess)",
        "templates": req.templates_name or (len(req.templates) if req.templates else None),
        "images": images,
        "images_listed": listed,
        "skips": skips,
        "devices": req.devices,
        "ignore_value": layout.ignore_value,
        "scalars": scalars,
        **req.extra_meta,
    }


def evaluate_rank(
    req: BenchmarkRequest,
    layout: BenchmarkLayout,
    pairs: list,
    classes: list[list[str]],
    rank: int,
    world: int,
    device: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> RankResult:
    """This rank's share of the images (pairs[rank::world]) → its confusion counts, image count, examples.

    An OpenSegError while reading is returned in `error` (counts up to then are dropped by the caller).
    """
    device = device or req.device
    scorer = load_scorer(req.checkpoint, req.clip, req.mask_source, device, req.rule).scorer
    scorer.check_size(req.size)
    keep = example_indices(len(pairs), req.examples if req.report else 0)
    indices = list(range(rank, len(pairs), world))
    dataset = torch.utils.data.Subset(SemanticDataset(pairs, layout), indices)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=req.workers)
    metrics = SegmentationMetrics(num_classes=len(classes))
    result = RankResult(metrics.confusion, 0)
    with torch.inference_mode():
        embeds, valid = class_embeddings(scorer.text_encoder, classes, req.templates)  # cached on disk
        embeds, valid = embeds.to(device), valid.to(device)
        for index, sample in zip(indices, loader, strict=True):
            if isinstance(sample, OpenSegError):
                return RankResult(metrics.confusion, result.images, error=str(sample))
            labels = image_labels(scorer, sample.image, sample.target, embeds, valid, req, device).cpu()
            metrics.update(labels[None], sample.target[None])
            result.images += 1
            if index in keep:
                result.examples.append(downscaled_example(sample.key, sample.image, sample.target, labels))
            if progress:
                progress(1)
    result.confusion = metrics.confusion
    return result


def image_labels(scorer: Scorer, image, target, embeds, valid, req: BenchmarkRequest, device) -> torch.Tensor:
    """One image uint8 [H, W, 3] → predicted labels long [H, W] at its original resolution (-1 = none:
    only for an all-ignore image under grounding, where nothing is scored)."""
    ids = None
    if req.grounding:  # grounding mIoU: only the classes present in this image's ground truth
        ids = present_classes(target).to(device)
        if ids.numel() == 0:
            return torch.full(target.shape, -1, dtype=torch.long)
        embeds, valid = embeds[ids], valid[ids]

    def score_fn(images: torch.Tensor) -> torch.Tensor:
        return scorer(images, embeds, valid)

    if req.sliding_window:
        labels = sliding_window_labels(score_fn, image, req.size, req.stride, device=device)
    else:
        labels = whole_image_labels(score_fn, image, req.size, device=device)
    return labels if ids is None else to_global_labels(labels, ids)


def _launch(req: BenchmarkRequest, layout: BenchmarkLayout, pairs, classes) -> RankResult:
    """Spawn `req.devices` processes with Fabric and return the summed result rank 0 wrote.

    Fabric moves the arguments with `apply_to_collection`, which refuses frozen dataclasses: the request
    and the layout travel as a dict and a key. The result comes back through a file, not Fabric's return
    queue: that queue is a pipe read only after every process has exited, so rank 0 blocks on writing
    anything over the pipe buffer (64 kB; a 150-class confusion matrix is 181 kB) and never exits.
    """
    from lightning.fabric import Fabric

    accelerator = "cuda" if req.device.startswith("cuda") else "cpu"
    fabric = Fabric(accelerator=accelerator, devices=req.devices, strategy="ddp_spawn")
    key = (layout.benchmark, layout.convention)
    with tempfile.TemporaryDirectory(prefix="openseg-eval-") as folder:
        path = Path(folder) / "result.pkl"
        fabric.launch(_rank_worker, asdict(req), key, pairs, classes, str(path))
        with path.open("rb") as file:
            result = pickle.load(file)  # our own file, written by rank 0 a moment ago
    result.confusion = torch.as_tensor(result.confusion)
    return result


def _rank_worker(fabric, request: dict, layout_key, pairs, classes, result_path: str) -> None:
    req, layout = BenchmarkRequest(**request), LAYOUTS[tuple(layout_key)]
    if fabric.device.type == "cpu":  # N processes share the cores: no oversubscription
        use_all_cores(fabric.world_size)
    try:
        result = evaluate_rank(
            req, layout, pairs, classes, fabric.global_rank, fabric.world_size, str(fabric.device)
        )
    except OpenSegError as err:  # still reach the collectives below, or the other ranks would wait forever
        result = RankResult(torch.zeros(len(classes), len(classes) + 1, dtype=torch.long), 0, error=str(err))
    confusion = fabric.all_reduce(result.confusion.to(fabric.device), reduce_op="sum").cpu()
    images = int(fabric.all_reduce(torch.tensor(result.images, device=fabric.device), reduce_op="sum"))
    gathered: list = [None] * fabric.world_size
    torch.distributed.all_gather_object(gathered, (result.error, result.examples))
    if fabric.global_rank == 0:
        errors = [error for error, _ in gathered if error]
        examples = [example for _, kept in gathered for example in kept]
        summed = RankResult(confusion.numpy(), images, examples, errors[0] if errors else "")
        with open(result_path, "wb") as file:
            pickle.dump(summed, file)
    fabric.barrier()
