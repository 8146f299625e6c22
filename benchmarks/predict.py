"""`predict` on CPU with a real-size model: forward GFLOP/s vs matmul GFLOP/s, text cache, memory.

Measured side by side in one run, interleaved repeat by repeat (see _common.py):
- `matmul`: a square fp32 `torch.mm` (n = --matmul-n) with the thread count predict runs with: what this
  machine's BLAS achieves, in GFLOP/s (2 n³ per call).
- `forward`: the openseg model's forward on one [1, 3, S, S] image (a real-size model: the recipe's
  architecture with `--clip` as the tower, random weights, which time exactly like trained ones). Its
  FLOPs are counted once with `torch.utils.flop_counter`; GFLOP/s = FLOPs / median forward time.
  `matmul_fraction` = forward GFLOP/s ÷ matmul GFLOP/s (target >= 0.5).
- text encoding of a vocabulary through `engine.text_cache.class_embeddings`, the way `predict` and
  `evaluate` call it: `cold` (empty cache: encode + write) vs `warm` (the entry exists: hash the text
  tower, read). Each repeat forgets the in-process fingerprint, as a second `openseg predict` process
  would. `text_cache_speedup` = cold ÷ warm (target >= 10).
- `predict`: `run_prediction` end to end over --images real images (COCO val samples from ../shared when
  present, else synthetic 640×480 ones): seconds per image once the checkpoint is loaded (the load is
  timed apart and subtracted), and the share of it spent in the forward.
- peak memory: the resident memory one image's forward adds at its peak over the loaded model (Linux
  VmHWM - VmRSS, in a fresh process).

Run: .venv/bin/python benchmarks/predict.py [--json PATH] [--clip ViT-B-16] [--size 640] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import SHARED, build_checkpoint, console, machine, targets_table, write_json
from PIL import Image
from rich.table import Table

from openseg_cli.engine.checkpoint import load_model
from openseg_cli.engine.predict import PredictRequest, run_prediction
from openseg_cli.engine.text_cache import CACHE_ENV, class_embeddings

REPO = Path(__file__).resolve().parents[1]
MATMUL_TARGET = 0.5
TEXT_CACHE_TARGET = 10.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", help="write the figures to this JSON file")
    p.add_argument("--recipe", default=str(REPO / "recipes" / "coco.yaml"), help="architecture recipe")
    p.add_argument("--clip", default="ViT-B-16", help="open_clip tower (random weights), default ViT-B-16")
    p.add_argument("--set", action="append", default=[], help="extra recipe overrides (key=value)")
    p.add_argument("--size", type=int, default=640, help="predict size S (fit + pad), default 640")
    p.add_argument("--classes", type=int, default=150, help="vocabulary size for the text timing")
    p.add_argument("--images", type=int, default=2, help="images for the end-to-end predict timing")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per competitor (median)")
    p.add_argument("--matmul-n", type=int, default=2048, help="matmul reference size n (n×n @ n×n)")
    return p.parse_args(argv)


def matmul_seconds(n: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    t0 = time.perf_counter()
    torch.mm(a, b)
    return time.perf_counter() - t0


def forward_flops(model: torch.nn.Module, pixels: torch.Tensor) -> int:
    """FLOPs of one forward (multiply-add = 2). Counted with autograd on: the counter's module tracker
    needs grad_fns in torch 2.14 (under no_grad/inference_mode it raises)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(pixels)
    return int(counter.get_total_flops())


def forward_seconds(model: torch.nn.Module, pixels: torch.Tensor) -> float:
    with torch.inference_mode():
        t0 = time.perf_counter()
        model(pixels)
        return time.perf_counter() - t0


def text_seconds(text_encoder: torch.nn.Module, classes: list[list[str]], cache: Path, cold: bool) -> float:
    """One `class_embeddings` call; `cold` empties the cache first. The fingerprint is always recomputed."""
    if cold:
        for entry in cache.rglob("*"):
            if entry.is_file():
                entry.unlink()
    if hasattr(text_encoder, "_openseg_fingerprint"):
        del text_encoder._openseg_fingerprint
    text_encoder.clear_cache()  # its in-memory per-text cache: a new process starts without it
    with torch.inference_mode():
        t0 = time.perf_counter()
        class_embeddings(text_encoder, classes)
        return time.perf_counter() - t0


def vocabulary(count: int) -> list[list[str]]:
    """`count` distinct class names: ADE-150's when ../shared has them (cycled), else made-up ones."""
    names_file = SHARED / "data" / "class-names" / "ade150.txt"
    names = names_file.read_text().split("\n") if names_file.is_file() else []
    names = [n.strip() for n in names if n.strip()] or [f"object {i}" for i in range(count)]
    return [[names[i % len(names)] + ("" if i < len(names) else f" {i // len(names)}")] for i in range(count)]


def test_images(folder: Path, count: int) -> list[Path]:
    """Real COCO val images when ../shared has them, else synthetic 640×480 JPEGs written to `folder`."""
    real = sorted((SHARED / "data" / "coco-val2017-mini" / "val2017").glob("*.jpg"))[:count]
    if len(real) == count:
        return real
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"synthetic-{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


_PEAK_SCRIPT = """
import sys, torch
from pathlib import Path
from openseg_cli.engine.checkpoint import load_model
def kib(field):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])
torch.set_num_threads(int(sys.argv[3]))
model, _, _ = load_model(Path(sys.argv[1]), "cpu")
pixels = torch.randn(1, 3, int(sys.argv[2]), int(sys.argv[2]))
before = kib("VmRSS")
with torch.inference_mode():
    model(pixels)
print(kib("VmHWM") - before)
"""


def peak_mib(checkpoint: Path, size: int) -> float | None:
    """Peak resident memory (MiB) one image's forward adds over the loaded model, in a fresh process: in
    this one, memory freed by earlier forwards stays mapped and would hide the peak. None off Linux."""
    if not Path("/proc/self/status").is_file():
        return None
    command = [sys.executable, "-c", _PEAK_SCRIPT, str(checkpoint), str(size), str(torch.get_num_threads())]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


def predict_seconds(checkpoint: Path, images: list[Path], classes, size: int, out: Path) -> float:
    """Wall seconds of one `run_prediction` call over `images` (model load and text cache included)."""
    req = PredictRequest(checkpoint=checkpoint, images=images, classes=classes, size=size)
    t0 = time.perf_counter()
    run_prediction(req, out)
    return time.perf_counter() - t0


def load_seconds(checkpoint: Path) -> float:
    t0 = time.perf_counter()
    load_model(checkpoint, "cpu")
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="openseg-bench-predict-") as tmp:
        tmp = Path(tmp)
        os.environ[CACHE_ENV] = str(tmp / "cache")  # never touch the user's text cache
        checkpoint = build_checkpoint(args.recipe, args.clip, args.size, args.set, tmp)
        model, text_encoder, _ = load_model(checkpoint, "cpu")
        pixels = torch.randn(1, 3, args.size, args.size)
        flops = forward_flops(model, pixels)
        classes = vocabulary(args.classes)
        images = test_images(tmp, args.images)
        keys = ("matmul", "forward", "cold", "warm", "load", "predict")
        times: dict[str, list[float]] = {k: [] for k in keys}
        forward_seconds(model, pixels)  # warm-ups
        text_seconds(text_encoder, classes, tmp / "cache", cold=True)
        peak = peak_mib(checkpoint, args.size)
        for _ in range(args.repeats):
            times["matmul"].append(matmul_seconds(args.matmul_n))
            times["forward"].append(forward_seconds(model, pixels))
            times["cold"].append(text_seconds(text_encoder, classes, tmp / "cache", cold=True))
            times["warm"].append(text_seconds(text_encoder, classes, tmp / "cache", cold=False))
            times["load"].append(load_seconds(checkpoint))
            times["predict"].append(predict_seconds(checkpoint, images, classes, args.size, tmp / "out"))
    return figures(args, flops, times, peak)


def figures(args: argparse.Namespace, flops: int, times: dict[str, list[float]], peak: float | None) -> dict:
    med = {k: statistics.median(v) for k, v in times.items()}
    per_image = (med["predict"] - med["load"]) / args.images  # text encoding hits the warm cache
    matmul_gflops = 2 * args.matmul_n**3 / med["matmul"] / 1e9
    forward_gflops = flops / med["forward"] / 1e9
    return {
        "matmul_fraction": forward_gflops / matmul_gflops,
        "text_cache_speedup": med["cold"] / med["warm"],
        "speedup": forward_gflops / matmul_gflops,  # the main ratio, under the key every benchmark has
        "forward_gflop": flops / 1e9,
        "forward_gflop_per_s": forward_gflops,
        "matmul_gflop_per_s": matmul_gflops,
        "seconds_median": med,
        "seconds": times,
        "predict_seconds_per_image": per_image,
        "predict_forward_share": med["forward"] / per_image,
        "peak_mib_per_image": peak,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "machine": machine(),
    }


def print_tables(fig: dict[str, Any], args: argparse.Namespace) -> None:
    med = fig["seconds_median"]
    table = Table(title=f"predict: {args.clip} at {args.size} px, {args.classes} classes, CPU")
    for col in ("what", "median s", "figure"):
        table.add_column(col, justify="left" if col == "what" else "right")
    table.add_row(
        f"matmul {args.matmul_n}²", f"{med['matmul']:.3f}", f"{fig['matmul_gflop_per_s']:.1f} GFLOP/s"
    )
    table.add_row(
        f"forward ({fig['forward_gflop']:.0f} GFLOP)", f"{med['forward']:.3f}",
        f"{fig['forward_gflop_per_s']:.1f} GFLOP/s",
    )  # fmt: skip
    table.add_row("text: cold cache", f"{med['cold']:.3f}", f"{args.classes} classes")
    table.add_row("text: warm cache", f"{med['warm']:.3f}", "")
    peak = fig["peak_mib_per_image"]
    table.add_row("load checkpoint", f"{med['load']:.3f}", "")
    table.add_row(
        "predict, per image", f"{fig['predict_seconds_per_image']:.3f}",
        f"forward {100 * fig['predict_forward_share']:.0f}%",
    )  # fmt: skip
    table.add_row("forward, peak memory added", "", f"{peak:.0f} MiB" if peak is not None else "n/a")
    console.print(table)
    console.print(
        targets_table(
            [
                (
                    "matmul_fraction",
                    "forward GFLOP/s ÷ matmul GFLOP/s",
                    fig["matmul_fraction"],
                    MATMUL_TARGET,
                ),
                (
                    "text_cache_speedup",
                    "cold ÷ warm text encoding",
                    fig["text_cache_speedup"],
                    TEXT_CACHE_TARGET,
                ),
            ]
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fig = run(args)
    print_tables(fig, args)
    write_json(args.json, fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
