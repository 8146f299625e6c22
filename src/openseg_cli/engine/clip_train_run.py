"""open_clip_train in a child process for `clip-train`: its environment, progress read from its log lines,
its last error line, the final loss from its `out.log`, and its weights as a `.safetensors` file."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openseg_cli.atomic import atomic_write
from openseg_cli.errors import OpenSegError

OPEN_CLIP_MAIN = "openseg_cli.engine.open_clip_main"  # python -m …: open_clip_train's main, openseg's configs
RUN_NAME = "open_clip_train"  # its --name: logs and checkpoints in OUT/open_clip_train/
LATEST = "epoch_latest.pt"  # what --save-most-recent writes and --resume latest reads
_TRAIN_LINE = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+)")
_LOSS = re.compile(r"(?<!\w)Loss: (\S+) \((\S+)\)")
_ERROR_LINE = re.compile(r"^(\w+\.)*\w*(Error|Exception|Interrupt)\b|\berror:|^Error\b")
# A launcher's variables would make open_clip_train initialise torch.distributed for this one process.
_DISTRIBUTED_ENV = (
    "WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID",
    "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "PMI_SIZE", "PMI_RANK",
)  # fmt: skip


@dataclass(frozen=True)
class OpenClipRun:
    """Where a finished open_clip_train run left its files, and how long this process waited for it."""

    folder: Path  # OUT/open_clip_train
    wall_s: float

    @property
    def log(self) -> Path:
        return self.folder / "out.log"

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoints" / LATEST


def child_env(device: str, workers: int) -> dict[str, str]:
    """This environment without distributed launcher variables; unbuffered output; on CPU, torch threads
    = cores left beside the data-loader workers (engine/cpu.py's rule) unless OMP_NUM_THREADS is set."""
    from openseg_cli.engine.cpu import available_cores

    env = {k: v for k, v in os.environ.items() if k not in _DISTRIBUTED_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    if device == "cpu":
        env.setdefault("OMP_NUM_THREADS", str(max(1, available_cores() - workers)))
    return env


class _Progress:
    """Turns `Train Epoch: E [n/N (p%)]` lines into `advance(samples)` calls (resumed runs jump ahead)."""

    def __init__(self, advance: Callable[[int], None] | None) -> None:
        self.advance, self.position = advance, 0

    def feed(self, line: str) -> None:
        match = _TRAIN_LINE.search(line)
        if match is None or self.advance is None:
            return
        epoch, seen, per_epoch = (int(g) for g in match.groups())
        position = epoch * per_epoch + seen
        if position > self.position:
            self.advance(position - self.position)
            self.position = position


def last_error_line(lines: Iterable[str]) -> str:
    """The line that says what went wrong: the last exception or `error:` line, else the last line."""
    lines = [line.strip() for line in lines if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.search(line) and " | INFO | " not in line:
            return line
    return lines[-1] if lines else "no output"


def run_open_clip_train(
    args: list[str], out_dir: Path, device: str, workers: int, advance: Callable[[int], None] | None
) -> OpenClipRun:
    """Run `python -m openseg_cli.engine.open_clip_main ARGS`, its output appended to
    `OUT/open_clip_train/console.log`; returns when it exits 0. Raises OpenSegError with its last error
    line otherwise. Ctrl-C stops it too (the checkpoint of the last finished epoch stays for a resume)."""
    folder = out_dir / RUN_NAME
    folder.mkdir(parents=True, exist_ok=True)
    console_log = folder / "console.log"
    command = [sys.executable, "-m", OPEN_CLIP_MAIN, *args]
    progress, tail, start = _Progress(advance), deque(maxlen=60), time.monotonic()
    with open(console_log, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env=child_env(device, workers), errors="replace",
        )  # fmt: skip
        try:
            for line in proc.stdout:
                log.write(line)
                tail.append(line)
                progress.feed(line)
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted here: do not leave it training on its own
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    if code != 0:
        raise OpenSegError(
            f"open_clip_train failed (exit {code}): {last_error_line(tail)[:300]} (output: {console_log})"
        )
    return OpenClipRun(folder, time.monotonic() - start)


def final_loss(log: Path) -> dict[str, Any] | None:
    """The loss of the last `Train Epoch` line of open_clip_train's out.log: {"epoch", "last", "epoch_mean"}
    (`last`: that step's; `epoch_mean`: over the epoch's logged steps), or None when it logged none."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        epoch, loss = _TRAIN_LINE.search(line), _LOSS.search(line)
        if epoch and loss:
            return {"epoch": int(epoch.group(1)) + 1, "last": float(loss[1]), "epoch_mean": float(loss[2])}
    return None


def write_weights(run: OpenClipRun, epochs: int, path: Path) -> int:
    """Write the model state_dict of the run's latest checkpoint to `path` (safetensors, atomically),
    exactly as open_clip_train saved it but without the optimizer and any DDP `module.` prefix; returns
    the number of tensors. Raises OpenSegError when the checkpoint is missing or not from epoch `epochs`."""
    import torch
    from safetensors.torch import save

    if not run.checkpoint.is_file():
        raise OpenSegError(f"open_clip_train wrote no checkpoint ({run.checkpoint}); see {run.log}")
    checkpoint = torch.load(run.checkpoint, map_location="cpu", weights_only=True)
    if checkpoint.get("epoch") != epochs:
        raise OpenSegError(
            f"{run.checkpoint} is from epoch {checkpoint.get('epoch')} of {epochs}; rerun to resume"
        )
    state = {k.removeprefix("module."): v.contiguous() for k, v in checkpoint["state_dict"].items()}
    data = save(state, metadata={"format": "pt"})
    atomic_write(path, lambda file: file.write(data))
    return len(state)


def samples_per_epoch(num_samples: int, batch_size: int, workers: int) -> tuple[int, int]:
    """(steps, samples) per epoch as open_clip_train's `get_wds_dataset` computes them for one process:
    batches rounded up, then up to a multiple of the data-loader workers."""
    per_worker = math.ceil(math.ceil(num_samples / batch_size) / max(1, workers))
    steps = per_worker * max(1, workers)
    return steps, steps * batch_size
