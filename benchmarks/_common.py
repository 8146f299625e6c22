"""Shared helpers for the benchmark scripts: repeated timing, CPU accounting, Rich tables, JSON output.

Every benchmark measures its competitors in one run on the same inputs, interleaved repeat by repeat
(A, B, C, A, B, C ...) so that a noisy neighbour on a shared machine slows all of them alike, and
reports the median over repeats. Targets are printed with PASS or MISS; nothing is rounded up.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

console = Console(width=max(120, Console().width))


def _proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of another process (Linux /proc); None where /proc is not readable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int] | None = None) -> float:
    """CPU seconds of this process plus the given (live) processes, e.g. DataLoader workers."""
    total = time.process_time()
    for pid in pids or []:
        total += _proc_cpu_seconds(pid) or 0.0
    return total


@dataclass
class Runs:
    """Wall and CPU seconds of each repeat for one competitor processing `items` items per repeat."""

    name: str
    items: int
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    @property
    def rate(self) -> float:
        """Items per wall-clock second (median over repeats)."""
        return self.items / statistics.median(self.wall)

    @property
    def cores(self) -> float:
        """CPU cores kept busy: CPU seconds / wall seconds (median of the per-repeat ratios)."""
        return statistics.median(c / w for c, w in zip(self.cpu, self.wall, strict=True))

    @property
    def rate_per_core(self) -> float:
        """Items per CPU second (median over repeats): the rate one fully busy core would give."""
        return self.items / statistics.median(self.cpu)

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median wall time: how noisy the repeats were."""
        return (max(self.wall) - min(self.wall)) / statistics.median(self.wall)

    def as_dict(self, unit: str) -> dict[str, Any]:
        return {
            "items_per_repeat": self.items,
            f"{unit}_per_s": self.rate,
            f"{unit}_per_s_per_core": self.rate_per_core,
            "cores_used": self.cores,
            "wall_s": self.wall,
            "cpu_s": self.cpu,
        }


def measure(runs: Runs, fn: Callable[[], int], pids: Callable[[], list[int]] | None = None) -> None:
    """Time one call of `fn` (which returns how many items it processed) and record it in `runs`."""
    watch = pids() if pids is not None else []
    cpu0, t0 = cpu_seconds(watch), time.perf_counter()
    done = fn()
    wall, cpu = time.perf_counter() - t0, cpu_seconds(watch) - cpu0
    if done != runs.items:
        raise RuntimeError(f"{runs.name}: processed {done} items, expected {runs.items}")
    runs.add(wall, cpu)


def results_table(title: str, runs: list[Runs], unit: str, reference: Runs) -> Table:
    """One row per competitor: median wall time, rate, cores used, rate per core, ratio to `reference`."""
    table = Table(title=title)
    for col in ("competitor", f"{unit}/repeat", "median s", f"{unit}/s", "cores used", f"{unit}/s/core"):
        table.add_column(col, justify="left" if col == "competitor" else "right")
    table.add_column(f"vs {reference.name}", justify="right")
    table.add_column("spread", justify="right")
    for r in runs:
        table.add_row(
            r.name,
            str(r.items),
            f"{statistics.median(r.wall):.3f}",
            f"{r.rate:.1f}",
            f"{r.cores:.2f}",
            f"{r.rate_per_core:.1f}",
            f"{r.rate_per_core / reference.rate_per_core:.2f}x",
            f"{100 * r.spread:.0f}%",
        )
    return table


def targets_table(rows: list[tuple[str, str, float, float]]) -> Table:
    """rows: (key, meaning, measured, target >=); PASS only when measured >= target."""
    table = Table(title="targets")
    for col in ("key", "what", "measured", "target", "verdict"):
        table.add_column(col, justify="right" if col in ("measured", "target") else "left")
    for key, meaning, value, target in rows:
        verdict = "[green]PASS[/green]" if value >= target else "[red]MISS[/red]"
        table.add_row(key, meaning, f"{value:.2f}", f">= {target:g}", verdict)
    return table


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cores": cores,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def write_json(path: str | os.PathLike[str] | None, payload: dict[str, Any]) -> None:
    """Write the figures (with `speedup` for the main comparison) when `--json PATH` was given."""
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    console.print(f"figures written to {path}")


def build_checkpoint(
    recipe_path: str | Path, clip: str, size: int, overrides: list[str], folder: Path
) -> Path:
    """A slim `model.pt` of the recipe's architecture with open_clip `clip` as the tower, random weights
    (they time exactly like trained ones) and crop size `size`; returns its path."""
    from openseg_cli.config import load_recipe
    from openseg_cli.engine.checkpoint import write_slim_checkpoint
    from openseg_cli.models import build_model

    sets = [f"model.clip.name={clip}", "model.clip.pretrained=null", *overrides, f"data.crop_size={size}"]
    recipe = load_recipe(recipe_path, sets)
    model, text_encoder = build_model(recipe.model)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"text_encoder.{k}": v for k, v in text_encoder.state_dict().items()})
    path = folder / "model.pt"
    write_slim_checkpoint(path, recipe, state)
    return path
