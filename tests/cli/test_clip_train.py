"""`openseg clip-train`: a real open_clip_train run on CPU (24 toy images, openseg-tiny-vit, 1 epoch), its
weights loaded through openseg's normal paths, no retraining, resuming after a kill, and bad inputs."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from openseg_cli.config.schema import ClipConfig
from openseg_cli.models import build_model
from openseg_cli.models.clip import load_clip
from tests.cli.helpers import assert_clean_error, assert_ok, run_cli, run_main
from tests.engine.helpers import tiny_recipe, write_toy_shards

MODEL = "openseg-tiny-vit"
# 24 images, one caption each, batches of 8, no data-loader worker: 3 steps per epoch
FLAGS = ("--model", MODEL, "--batch-size", "8", "--workers", "0", "--captions", "one")


@pytest.fixture(scope="module")
def toy_shards(tmp_path_factory) -> Path:
    return write_toy_shards(tmp_path_factory.mktemp("clip-train"), "train2017", 24, maxcount=12)


@pytest.fixture(scope="module")
def trained(toy_shards: Path) -> tuple[Path, subprocess.CompletedProcess, float]:
    """(run folder, the CLI result, wall seconds) of one finished `openseg clip-train` run."""
    run = toy_shards.parent / "run"
    start = time.monotonic()
    result = run_cli("clip-train", toy_shards, "--out", run, "--epochs", "1", *FLAGS)
    assert_ok(result)
    return run, result, time.monotonic() - start


def _weights(run: Path) -> Path:
    return run / f"{MODEL}.safetensors"


@pytest.mark.slow
def test_clip_train_writes_the_trained_model_state_dict_alone(trained) -> None:
    run, result, wall = trained
    print(f"clip-train wall time: {wall:.1f} s")
    weights = load_file(_weights(run))
    assert set(weights) == set(load_clip(ClipConfig(name=MODEL)).state_dict())  # no optimizer, no module.
    checkpoint = torch.load(
        run / "open_clip_train" / "checkpoints" / "epoch_1.pt", map_location="cpu", weights_only=True
    )
    assert checkpoint["epoch"] == 1
    assert all(torch.equal(weights[k], v) for k, v in checkpoint["state_dict"].items())
    steps = [
        line
        for line in (run / "open_clip_train" / "out.log").read_text().splitlines()
        if "Train Epoch" in line
    ]
    assert len(steps) == 3  # 24 samples / batch 8: every step logged

    state = json.loads((run / "clip_train.json").read_text())
    assert state["status"] == "finished" and state["data"]["samples"] == 24
    assert state["plan"] == {
        "device": "cpu", "precision": "fp32", "workers": 0, "warmup": 1, "steps_per_epoch": 3,
        "samples_per_epoch": 24,
    }  # fmt: skip
    assert math.isfinite(state["loss"]["last"]) and state["loss"]["epoch"] == 1
    assert str(_weights(run)) in " ".join(result.stdout.split())


@pytest.mark.slow
def test_the_weights_load_through_clip_pretrained(trained) -> None:
    """load_clip(ClipConfig(name, pretrained=FILE)) and build_model with model.clip.pretrained: FILE hold
    exactly the file's tensors (visual tower → backbone, text tower → text encoder)."""
    run, _, _ = trained
    weights = load_file(_weights(run))
    clip = load_clip(ClipConfig(name=MODEL, pretrained=str(_weights(run))))
    assert all(torch.equal(weights[k], v) for k, v in clip.state_dict().items())
    recipe = tiny_recipe(f"model.clip.name={MODEL}", f"model.clip.pretrained={_weights(run)}")
    model, text_encoder = build_model(recipe.model)
    visual = {f"visual.{k}": v for k, v in model.backbone.visual.state_dict().items()}
    text = text_encoder.clip.state_dict()
    # the backbone drops the tower's joint-space projection (kept only with model.clip_dense)
    assert set(weights) - set(visual) - set(text) == {"visual.proj"}
    assert all(torch.equal(weights[k], v) for k, v in {**visual, **text}.items())


@pytest.mark.slow
def test_predict_accepts_the_weights_as_clip(trained, toy_shards: Path, tmp_path: Path) -> None:
    run, _, _ = trained
    image = next((toy_shards.parent / "toy" / "train2017").glob("*.jpg"))
    spec = f"{MODEL}:{_weights(run)}"
    result = run_cli("predict", image, "--clip", spec, "-q", "ring, cross", "--size", "64", "--out", tmp_path)
    assert_ok(result)
    assert list(tmp_path.glob("*.png"))


@pytest.mark.slow
def test_a_finished_run_is_not_retrained_and_other_settings_are_refused(trained, toy_shards: Path) -> None:
    run, _, _ = trained
    stamp = _weights(run).stat().st_mtime_ns
    again = run_main("clip-train", toy_shards, "--out", run, "--epochs", "1", *FLAGS)
    assert_ok(again)
    assert "already trained" in again.stdout and _weights(run).stat().st_mtime_ns == stamp
    changed = run_main("clip-train", toy_shards, "--out", run, "--epochs", "2", *FLAGS)
    assert_clean_error(changed, "other settings", "epochs 1 → 2")


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_epoch(toy_shards: Path, tmp_path: Path) -> None:
    """SIGKILL (openseg and open_clip_train) right after epoch 1 of 2 is saved; the rerun trains epoch 2
    only, from that checkpoint."""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "openseg_cli", "clip-train", str(toy_shards), "--out", str(run)]
    command += ["--epochs", "2", *FLAGS]
    latest = run / "open_clip_train" / "checkpoints" / "epoch_latest.pt"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert torch.load(latest, map_location="cpu", weights_only=True)["epoch"] == 1
    assert not (run / f"{MODEL}.safetensors").exists()
    assert_ok(run_cli("clip-train", toy_shards, "--out", run, "--epochs", "2", *FLAGS))
    log = (run / "open_clip_train" / "out.log").read_text()
    assert log.count("Start epoch 0") == 1 and "(epoch 1)" in log.split("resuming checkpoint", 1)[1]
    assert log.count("Start epoch 1") >= 1 and (run / f"{MODEL}.safetensors").is_file()


def test_bad_inputs_give_one_error_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert_clean_error(
        run_main("clip-train", tmp_path / "nope", "--out", out, "--model", MODEL), "no such shard"
    )
    (tmp_path / "empty").mkdir()
    result = run_main("clip-train", tmp_path / "empty", "--out", out, "--model", MODEL)
    assert_clean_error(result, "no shard files")
    assert not out.exists()  # nothing written before the inputs are checked


def test_bad_model_and_flags_give_one_error_line(toy_shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_main("clip-train", toy_shards, "--out", out, "--model", "openseg-tiny-vt")
    assert_clean_error(result, "--model 'openseg-tiny-vt' is not an open_clip model", "openseg-tiny-vit")
    result = run_main("clip-train", toy_shards, "--out", out, "--model", MODEL, "--", "--bogus-flag", "1")
    assert_clean_error(result, "open_clip_train: unrecognized arguments: --bogus-flag 1")
    result = run_main("clip-train", toy_shards, "--out", out, "--model", MODEL, "--", "--epochs", "3")
    assert_clean_error(result, "--epochs after --", "use --epochs")
    result = run_main("clip-train", toy_shards, "--out", out, "--model", MODEL, "--", "--nam", "x")
    assert_clean_error(result, "--name after --")  # argparse's abbreviations are caught too
    result = run_main("clip-train", toy_shards, "--out", out, "--model", MODEL, "--precision", "fp64")
    assert_clean_error(result, "--precision: invalid choice: 'fp64'")
    result = run_main("clip-train", toy_shards, "--out", out, "--model", MODEL, "--device", "cuda:7")
    assert_clean_error(result, "device 'cuda:7' is not available")
    result = run_main("clip-train", toy_shards, "--out", out, "--model", MODEL, "--captions", "all")
    assert_clean_error(result, "--captions 'all': use each or one")
    assert not out.exists()


def test_without_pandas_the_error_says_how_to_install_it(
    toy_shards: Path, tmp_path: Path, monkeypatch
) -> None:
    """open_clip_train imports pandas at start-up; pandas is an extra (openseg-cli[clip])."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pandas" else find_spec(name, *a)
    )
    result = run_main("clip-train", toy_shards, "--out", tmp_path / "out", "--model", MODEL)
    assert_clean_error(result, "imports pandas", "pip install 'openseg-cli[clip]'")
    assert result.returncode == 2


def test_a_batch_larger_than_a_worker_share_is_refused(toy_shards: Path, tmp_path: Path) -> None:
    """Two shards of 12, two workers: one worker sees 12 samples, less than a batch of 16 (open_clip_train
    would silently train on nothing)."""
    result = run_main(
        "clip-train", toy_shards, "--out", tmp_path / "out", "--model", MODEL, "--captions", "one",
        "--batch-size", "16", "--workers", "2", "--maxcount", "12",
    )  # fmt: skip
    assert_clean_error(result, "--batch-size 16 is more than the 12 samples")


def test_export_clip_data_cli(toy_shards: Path, tmp_path: Path) -> None:
    result = run_main("export", "clip-data", toy_shards, "--out", tmp_path / "clip", "--captions", "one")
    assert_ok(result)
    text = " ".join(result.stdout.split())
    assert "24 samples from 24 images" in text
    assert f"--train-data '{tmp_path / 'clip'}/clip-{{000000..000000}}.tar' --train-num-samples 24" in text
    assert_clean_error(
        run_main("export", "clip-data", toy_shards, "--out", tmp_path, "--captions", "all"), "--captions"
    )
