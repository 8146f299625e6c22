"""`openseg train` killed with SIGKILL after a checkpoint lands, then `--resume last`: it continues from
the checkpoint's global step (not from 0) and stops at max_steps, the step count an uninterrupted run ends
with. Also: skipped samples reach the end-of-run summary, and `--strict` turns them into one error line."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.cli.helpers import assert_clean_error, assert_ok, run_cli
from tests.data.conftest import add_sidecars
from tests.engine.helpers import TINY_MODEL_OVERRIDES, TOY_RECIPE, write_toy_shards

MAX_STEPS = 15


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = write_toy_shards(tmp_path_factory.mktemp("resume"), "train2017", count=8, maxcount=4, seed=5)
    add_sidecars(out)
    return out


def _args(shards: Path, *extra: str) -> list[str]:
    overrides = [
        *TINY_MODEL_OVERRIDES, f"data.train_shards={shards}", "data.val_shards=", "data.crop_size=32",
        "data.batch_size=2", "data.workers=0", "trainer.global_batch_size=2", "trainer.val_every_steps=5",
        "trainer.checkpoint_every_steps=3", "trainer.log_every_steps=1", *extra,
    ]  # fmt: skip
    return [str(TOY_RECIPE), *[x for o in overrides for x in ("--set", o)], "--max-steps", str(MAX_STEPS)]


def _logged_steps(run: Path) -> list[int]:
    with open(run / "logs" / "metrics.csv") as f:
        return sorted(int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss"))


def test_killed_training_resumes_from_its_last_checkpoint(shards, tmp_path) -> None:
    run = tmp_path / "run"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "openseg_cli", "train", *_args(shards), "--out", str(run)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "last.ckpt").is_file() and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 2 minutes"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "training ended before the kill"
    assert not (run / "model.pt").exists()  # the slim export is written only at the end
    saved = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 3 <= saved < MAX_STEPS and saved % 3 == 0  # a whole checkpoint (written atomically)

    resumed = run_cli("train", *_args(shards), "--out", run, "--resume", "last")
    assert_ok(resumed)
    assert f"done: {MAX_STEPS} steps" in " ".join(resumed.stdout.split())
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == MAX_STEPS
    slim = torch.load(run / "model.pt", weights_only=True)
    assert slim["openseg"]["global_step"] == MAX_STEPS
    # the log goes on from the saved step (the step index of the first optimizer step after it) to the
    # last, each step once: a restart from 0 would log steps below `saved` again or twice
    steps = _logged_steps(run)
    assert [s for s in steps if s >= saved] == list(range(saved, MAX_STEPS))
    assert not list(run.glob("checkpoints/*.tmp")) and not list(run.glob("checkpoints/.*.tmp"))


def test_resume_needs_a_checkpoint(shards, tmp_path) -> None:
    result = run_cli("train", *_args(shards), "--out", tmp_path / "empty", "--resume", "last")
    assert_clean_error(result, "--resume last", "last.ckpt")


def test_skips_reach_the_summary_and_strict_stops(shards, tmp_path) -> None:
    from tests.data.test_data_loader import _corrupt_jpeg, _rewrite_sample

    key = _rewrite_sample(shards, tmp_path / "bad", _corrupt_jpeg)
    args = _args(tmp_path / "bad", "data.shuffle_buffer=1")
    args[-1] = "8"  # 8 steps x 2 images from 8: the bad one is drawn (seeded)
    result = run_cli("train", *args, "--out", tmp_path / "run")
    assert_ok(result)
    text = " ".join(result.stdout.split())
    assert "done: 8 steps" in text and "× unreadable image" in text
    strict = run_cli("train", *args, "--out", tmp_path / "strict", "--strict")
    assert_clean_error(strict, "unreadable image", key, "--strict")
