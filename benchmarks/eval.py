"""`evaluate` on a benchmark-shaped set, end to end on CPU: where the wall time goes; the confusion update.

1. `forward_fraction`: `run_benchmark_evaluation` (what `openseg evaluate --benchmark ade847` runs) over
   --images synthetic images in the ADE-847 detectron2 layout (512×683 JPEGs, uint16 TIFF labels with
   65535 = ignore and 847 classes in 16-px blocks), with a real-size model (the recipe's architecture,
   `--clip` tower, random weights, which time exactly like trained ones) at --size. It runs twice on the
   same files and vocabulary: `cold` (empty text cache: the 847 class names are encoded) and `warm` (a
   second evaluate with the same vocabulary: the embeddings are read back from the disk cache). The
   stages are timed by wrapping, for the duration of the run only, the functions the engine calls: the
   model's `forward`, `class_embeddings` (text), the scorer's `scores` (class scoring, after the forward),
   `label_map` (upsampling the class scores to the original resolution, argmax),
   `SegmentationMetrics.update` (confusion), `load_scorer`, and `write_metrics_json` + `write_report` +
   `downscaled_example` (reporting). What is left (`other`) is mostly waiting for the DataLoader, listing
   files and computing the metrics. `forward_fraction` = forward ÷ total wall time of the warm run
   (target >= 0.9); the cold run's share is reported too.
2. `speedup`: the confusion update of one image (`SegmentationMetrics.update`, i.e. `confusion_counts`)
   against the detectron2 evaluator's per-image numpy way (ignore → C, `np.bincount((C+1)·pred + gt,
   minlength=(C+1)²)`), on the same 847-class 512×683 label pairs, interleaved repeat by repeat; images
   per CPU second, median. Both must give the same counts. No target in the issue: >= 1 = not slower.

Run: .venv/bin/python benchmarks/eval.py [--json PATH] [--clip ViT-B-16] [--size 640] [--images 3]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import (
    Runs,
    build_checkpoint,
    console,
    machine,
    measure,
    results_table,
    targets_table,
    write_json,
)
from PIL import Image
from rich.table import Table

from openseg_cli.data.semantic import LAYOUTS, SemanticDataset, find_pairs
from openseg_cli.engine import evaluate_benchmark as engine
from openseg_cli.engine.text_cache import CACHE_ENV
from openseg_cli.eval.metrics import SegmentationMetrics
from openseg_cli.inference import sliding

REPO = Path(__file__).resolve().parents[1]
FORWARD_TARGET = 0.9
SPEEDUP_TARGET = 1.0
BENCHMARK_BY_CLASSES = {847: "ade847", 150: "ade150", 20: "voc20"}
STAGES = ("load", "text", "forward", "scoring", "upsample", "metrics", "report")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--recipe", default=str(REPO / "recipes" / "coco.yaml"), help="architecture recipe")
    p.add_argument("--clip", default="ViT-B-16", help="open_clip tower (random weights), default ViT-B-16")
    p.add_argument("--set", action="append", default=[], help="extra recipe overrides (key=value)")
    p.add_argument("--size", type=int, default=640, help="evaluate --size (fit + pad), default 640")
    p.add_argument("--classes", type=int, default=847, choices=sorted(BENCHMARK_BY_CLASSES), help="benchmark")
    p.add_argument("--images", type=int, default=3, help="images evaluated per run (two runs), default 3")
    p.add_argument("--height", type=int, default=512, help="image and label height, default 512")
    p.add_argument("--width", type=int, default=683, help="image and label width, default 683")
    p.add_argument("--workers", type=int, default=1, help="evaluate --workers (the CLI default is 1)")
    p.add_argument("--repeats", type=int, default=5, help="confusion timing repeats (median)")
    p.add_argument("--confusion-images", type=int, default=8, help="label pairs per confusion repeat")
    return p.parse_args(argv)


# --- the benchmark-shaped folder -------------------------------------------------------------------------


def blocky_labels(rng: np.random.Generator, shape: tuple[int, int], classes: int, block: int = 16):
    """int64 [H, W] class ids constant over block×block tiles (many classes per image, as ADE-847 has),
    with ~10 % of the tiles -1 (ignore)."""
    grid = (-(-shape[0] // block), -(-shape[1] // block))
    tiles = rng.integers(0, classes, grid)
    tiles[rng.random(grid) < 0.1] = -1
    return np.kron(tiles, np.ones((block, block), dtype=np.int64))[: shape[0], : shape[1]]


def write_benchmark(root: Path, benchmark: str, count: int, shape: tuple[int, int]) -> list[np.ndarray]:
    """`count` synthetic image/label pairs in `benchmark`'s detectron2 layout under `root`; the labels."""
    layout = LAYOUTS[(benchmark, "detectron2")]
    (root / layout.image_dir).mkdir(parents=True, exist_ok=True)
    (root / layout.label_dir).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = []
    for index in range(count):
        label = blocky_labels(rng, shape, layout.num_classes)
        # Smooth colours per tile plus noise: JPEG-decodes like a photo, not like white noise.
        image = (label[..., None] * np.array([37, 91, 53]) % 256 + rng.integers(0, 24, (*shape, 3))) % 256
        Image.fromarray(image.astype(np.uint8)).save(
            root / layout.image_dir / f"val_{index:04d}.jpg", quality=90
        )
        stored = np.where(label < 0, layout.ignore_value, label)
        dtype = np.uint16 if layout.label_suffix == ".tif" else np.uint8
        Image.fromarray(stored.astype(dtype)).save(
            root / layout.label_dir / f"val_{index:04d}{layout.label_suffix}"
        )
        labels.append(label)
    return labels


# --- stage timers ----------------------------------------------------------------------------------------


def _timed(fn, seconds: dict[str, float], stage: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[stage] += time.perf_counter() - t0

    return wrapper


@contextlib.contextmanager
def stage_timers(seconds: dict[str, float]):
    """Wrap the functions `run_benchmark_evaluation` calls with timers while the block runs, then restore
    them. The model's forward and the scorer's `scores` are wrapped on the instances `load_scorer`
    returns (nn.Module and the scorer call `self.forward` / `self.scores`)."""
    load_scorer = engine.load_scorer

    def timed_load(*args, **kwargs):
        t0 = time.perf_counter()
        loaded = load_scorer(*args, **kwargs)
        seconds["load"] += time.perf_counter() - t0
        model = loaded.scorer.model
        model.forward = _timed(model.forward, seconds, "forward")
        loaded.scorer.scores = _timed(loaded.scorer.scores, seconds, "scoring")
        return loaded

    patches = [
        (engine, "load_scorer", timed_load),
        (engine, "class_embeddings", _timed(engine.class_embeddings, seconds, "text")),
        (sliding, "label_map", _timed(sliding.label_map, seconds, "upsample")),
        (SegmentationMetrics, "update", _timed(SegmentationMetrics.update, seconds, "metrics")),
        (engine, "write_metrics_json", _timed(engine.write_metrics_json, seconds, "report")),
        (engine, "write_report", _timed(engine.write_report, seconds, "report")),
        (engine, "downscaled_example", _timed(engine.downscaled_example, seconds, "report")),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, replacement in patches:
            setattr(owner, name, replacement)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def evaluate_once(req: engine.BenchmarkRequest, out_dir: Path) -> dict[str, float]:
    """One `run_benchmark_evaluation`: seconds per stage, `total` wall and `other` = total - stages."""
    seconds: dict[str, float] = defaultdict(float)
    with stage_timers(seconds):
        t0 = time.perf_counter()
        result = engine.run_benchmark_evaluation(req, out_dir)
        seconds["total"] = time.perf_counter() - t0
    if result["images"] != len(find_pairs(LAYOUTS[(req.benchmark, "detectron2")], req.data_root)):
        raise RuntimeError(f"evaluated {result['images']} images, not all of them")
    seconds["other"] = seconds["total"] - sum(seconds[s] for s in STAGES)
    return {k: seconds[k] for k in (*STAGES, "other", "total")}


def decode_seconds(req: engine.BenchmarkRequest) -> float:
    """Seconds to read one image + label pair in this process (what the DataLoader worker does)."""
    layout = LAYOUTS[(req.benchmark, "detectron2")]
    dataset = SemanticDataset(find_pairs(layout, req.data_root), layout)
    t0 = time.perf_counter()
    for index in range(len(dataset)):
        dataset[index]
    return (time.perf_counter() - t0) / len(dataset)


# --- confusion update --------------------------------------------------------------------------------------


def detectron2_confusion(pairs: list[tuple[np.ndarray, np.ndarray]], classes: int) -> np.ndarray:
    """The detectron2 SemSegEvaluator's per-image update: gt ignore → C, then one numpy bincount."""
    matrix = np.zeros((classes + 1, classes + 1), dtype=np.int64)
    for pred, gt in pairs:
        gt = gt.copy()
        gt[gt < 0] = classes
        matrix += np.bincount(
            (classes + 1) * pred.reshape(-1) + gt.reshape(-1), minlength=matrix.size
        ).reshape(matrix.shape)
    return matrix


def openseg_confusion(pairs: list[tuple[torch.Tensor, torch.Tensor]], classes: int) -> torch.Tensor:
    """What the engine does per image: `SegmentationMetrics.update(labels[None], target[None])`."""
    metrics = SegmentationMetrics(num_classes=classes)
    for pred, gt in pairs:
        metrics.update(pred[None], gt[None])
    return metrics.confusion


def confusion_runs(args: argparse.Namespace, classes: int) -> tuple[Runs, Runs]:
    """Both updates on the same label pairs (random predictions, blocky ground truth), interleaved."""
    rng = np.random.default_rng(1)
    shape = (args.height, args.width)
    gts = [blocky_labels(rng, shape, classes) for _ in range(args.confusion_images)]
    preds = [rng.integers(0, classes, shape) for _ in gts]
    np_pairs = list(zip(preds, gts, strict=True))
    torch_pairs = [(torch.from_numpy(p), torch.from_numpy(g)) for p, g in np_pairs]
    ours, theirs = openseg_confusion(torch_pairs, classes), detectron2_confusion(np_pairs, classes)
    # detectron2's matrix is [pred, gt] with an ignore row/column; ours is [gt, pred] without ignored gt.
    if not np.array_equal(ours.numpy()[:, :classes], theirs[:classes, :classes].T):
        raise RuntimeError("openseg and detectron2 confusion counts differ")
    count = len(np_pairs)
    runs = Runs("SegmentationMetrics.update", count), Runs("numpy bincount (detectron2)", count)
    fns = (lambda: openseg_confusion(torch_pairs, classes) is not None and count,
           lambda: detectron2_confusion(np_pairs, classes) is not None and count)  # fmt: skip
    for _ in range(args.repeats):
        for r, fn in zip(runs, fns, strict=True):
            measure(r, fn)
    return runs


# --- run and report ----------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> tuple[dict[str, Any], tuple[Runs, Runs]]:
    """The figures (JSON) and the two confusion competitors (for the table)."""
    benchmark = BENCHMARK_BY_CLASSES[args.classes]
    with tempfile.TemporaryDirectory(prefix="openseg-bench-eval-") as tmp:
        tmp = Path(tmp)
        os.environ[CACHE_ENV] = str(tmp / "cache")  # never touch the user's text cache; starts empty
        write_benchmark(tmp / "data", benchmark, args.images, (args.height, args.width))
        checkpoint = build_checkpoint(args.recipe, args.clip, args.size, args.set, tmp)
        req = engine.BenchmarkRequest(
            checkpoint, benchmark, tmp / "data", size=args.size, workers=args.workers, report=True
        )
        cold = evaluate_once(req, tmp / "out-cold")
        warm = evaluate_once(req, tmp / "out-warm")  # same vocabulary: the text cache entry exists
        decode = decode_seconds(req)
    threads = torch.get_num_threads()  # as evaluate set it (share_cpu_cores): the confusion runs use it too
    ours, theirs = confusion_runs(args, args.classes)
    fig = {
        "forward_fraction": warm["forward"] / warm["total"],
        "forward_fraction_cold": cold["forward"] / cold["total"],
        "speedup": ours.rate_per_core / theirs.rate_per_core,
        "wall_speedup": ours.rate / theirs.rate,
        "text_cold_s": cold["text"],
        "text_warm_s": warm["text"],
        "seconds_warm": warm,
        "seconds_cold": cold,
        "forward_s_per_image": warm["forward"] / args.images,
        "decode_s_per_image": decode,
        "confusion": {r.name: r.as_dict("images") for r in (ours, theirs)},
        "torch_threads_in_evaluate": threads,
        "benchmark": benchmark,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "machine": machine(),
    }
    return fig, (ours, theirs)


def print_tables(fig: dict[str, Any], args: argparse.Namespace, runs: tuple[Runs, Runs]) -> None:
    cold, warm = fig["seconds_cold"], fig["seconds_warm"]
    table = Table(
        title=f"evaluate {fig['benchmark']}: {args.clip} at {args.size} px, {args.images} images "
        f"{args.height}×{args.width}, CPU, torch threads {fig['torch_threads_in_evaluate']}"
    )
    for col in ("stage", "cold cache s", "share", "warm cache s", "share"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage in (*STAGES, "other", "total"):
        table.add_row(
            stage,
            f"{cold[stage]:.3f}",
            f"{100 * cold[stage] / cold['total']:.1f}%",
            f"{warm[stage]:.3f}",
            f"{100 * warm[stage] / warm['total']:.1f}%",
        )
    console.print(table)
    console.print(
        f"forward {fig['forward_s_per_image']:.2f} s/image; reading one image + label pair "
        f"{1000 * fig['decode_s_per_image']:.1f} ms (in the DataLoader worker, overlapped)"
    )
    title = f"confusion update, {args.classes}-class {args.height}×{args.width} label pairs"
    console.print(results_table(title, list(runs), "images", runs[1]))
    console.print(
        targets_table(
            [
                (
                    "forward_fraction",
                    "forward ÷ evaluate wall, warm text cache",
                    fig["forward_fraction"],
                    FORWARD_TARGET,
                ),
                (
                    "forward_fraction_cold",
                    "the same, cold text cache",
                    fig["forward_fraction_cold"],
                    FORWARD_TARGET,
                ),
                ("speedup", "update ÷ numpy bincount, images/s/core", fig["speedup"], SPEEDUP_TARGET),
            ]
        )  # fmt: skip
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fig, runs = run(args)
    print_tables(fig, args, runs)
    write_json(args.json, fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
