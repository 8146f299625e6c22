"""pseudo-label on several ranks (CPU, gloo, ddp_spawn) and through the CLI: shards split by rank, every
input image labelled exactly once and exactly as on one rank; a rank left without readable samples does
not hang; a run killed with SIGKILL resumes to the same bytes as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from openseg_cli.data.loader import build_train_loader
from openseg_cli.data.shards import count_samples, list_shards, read_manifest
from openseg_cli.engine.pseudo_label import PseudoLabelRequest, run_pseudo_labelling
from openseg_cli.inference.pseudo import PseudoLabelThresholds
from tests.cli.helpers import assert_clean_error, assert_ok, run_cli
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint, write_toy_shards

THRESHOLDS = PseudoLabelThresholds(0.0, 0.0, 8)  # keep every proposal: more pixels to compare


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pseudo-ddp")
    shards = write_toy_shards(root, "train2017", count=10, maxcount=4, seed=4)  # shards of 4, 4, 2
    ckpt = root / "teacher.pt"
    write_tiny_checkpoint(ckpt, tiny_recipe("data.crop_size=64"))
    one = root / "one-rank"
    run_pseudo_labelling(PseudoLabelRequest(ckpt, str(shards), THRESHOLDS, maxcount=3), one)
    return shards, ckpt, one


def _members(folder: Path) -> dict[str, dict[str, bytes]]:
    """key → {member suffix: bytes} over every shard of a folder; a key seen twice fails."""
    out: dict[str, dict[str, bytes]] = {}
    for url in list_shards(folder):
        with tarfile.open(url) as tar:
            for m in tar.getmembers():
                key, suffix = m.name.split(".", 1)
                assert suffix not in out.setdefault(key, {}), f"{key}.{suffix} twice"
                out[key][suffix] = tar.extractfile(m).read()
    return out


def _input_keys(shards: Path) -> set[str]:
    return {m.name.split(".", 1)[0] for url in list_shards(shards) for m in tarfile.open(url)}


def test_two_ranks_label_every_image_once_as_one_rank_does(inputs, tmp_path) -> None:
    shards, ckpt, one = inputs
    two = tmp_path / "two"
    req = PseudoLabelRequest(ckpt, str(shards), THRESHOLDS, maxcount=3, devices=2, strategy="ddp_spawn")
    run_pseudo_labelling(req, two)

    # rank 0 read input shards 0 and 2 (4 + 2 images), rank 1 shard 1 (4): one series each
    names = sorted(Path(u).name for u in list_shards(two))
    assert names == [f"coco_pseudo-r000-00000{i}.tar" for i in range(2)] + [
        f"coco_pseudo-r001-00000{i}.tar" for i in range(2)
    ]
    assert [count_samples(u) for u in list_shards(two)] == [3, 3, 3, 1]
    manifest = read_manifest(two)
    assert manifest["counts"]["written"] == 10 and manifest["world_size"] == 2
    labelled, reference = _members(two), _members(one)
    assert set(labelled) == set(reference) == _input_keys(shards)
    assert labelled == reference  # image, panoptic PNG and meta byte for byte

    # the folder trains like any other (train's mix_shards reads it through the same functions); the toy
    # input has no nouns, so neither has the output
    cfg = tiny_recipe("data.crop_size=32", "data.workers=0").data
    assert len(list(build_train_loader(two, cfg, steps_per_epoch=2, need_words=False))) == 2


@pytest.mark.slow
def test_a_rank_without_readable_samples_does_not_hang(inputs, tmp_path) -> None:
    """Two input shards, the second unreadable: rank 1 predicts nothing, the ranks still meet and merge."""
    shards, ckpt, _ = inputs
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("manifest.json", "sizes.json"):
        (folder / name).write_bytes((shards / name).read_bytes())
    first, second = list_shards(shards)[:2]
    (folder / Path(first).name).write_bytes(Path(first).read_bytes())
    (folder / Path(second).name).write_bytes(b"not a tar at all" * 64)
    req = PseudoLabelRequest(ckpt, str(folder), THRESHOLDS, devices=2, strategy="ddp_spawn")
    started = time.monotonic()
    manifest = run_pseudo_labelling(req, tmp_path / "out")
    assert time.monotonic() - started < 120
    assert manifest["counts"]["written"] == 4
    assert manifest["counts"]["skipped"].get("corrupt shard", 0) >= 1
    assert read_manifest(tmp_path / "out" / "ranks" / "r001")["counts"]["written"] == 0


def test_killed_cli_run_resumes_to_the_bytes_of_an_uninterrupted_run(inputs, tmp_path) -> None:
    _, ckpt, _ = inputs
    shards = write_toy_shards(tmp_path, "train2017", count=24, maxcount=8, seed=6)
    size = 512  # ~0.1 s per image on one CPU core: the kill lands with most images still to do
    flags = ["--min-confidence", "0", "--min-area", "0", "--max-masks", "8", "--maxcount", "1"]
    whole = tmp_path / "whole"
    run_pseudo_labelling(PseudoLabelRequest(ckpt, str(shards), THRESHOLDS, size=size, maxcount=1), whole)
    out = tmp_path / "killed"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "openseg_cli", "pseudo-label", str(shards), "--teacher", str(ckpt)]
    proc = subprocess.Popen([*cmd, "--out", str(out), "--size", str(size), *flags], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list((out / "ranks" / "r000").glob("*.tar")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no output shard within 2 minutes"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
    assert not (out / "manifest.json").exists()
    assert 1 <= len(list((out / "ranks" / "r000").glob("*.tar"))) < 24

    result = run_cli("pseudo-label", shards, "--teacher", ckpt, "--out", out, "--size", size, *flags)
    assert_ok(result)
    assert "24 images pseudo-labelled" in " ".join(result.stdout.split())
    assert not list(out.rglob("*.tmp"))
    assert [Path(u).name for u in list_shards(out)] == [Path(u).name for u in list_shards(whole)]
    for a, b in zip(list_shards(out), list_shards(whole), strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    assert (out / "sizes.json").read_text() == (whole / "sizes.json").read_text()

    other = run_cli("pseudo-label", shards, "--teacher", ckpt, "--out", out, "--size", 256, *flags)
    assert_clean_error(other, "other settings", "size", "another --out")


def test_bad_images_are_counted_and_strict_stops(inputs, tmp_path) -> None:
    shards, ckpt, _ = inputs
    from tests.data.test_data_loader import _corrupt_jpeg, _rewrite_sample

    key = _rewrite_sample(shards, tmp_path / "in", _corrupt_jpeg)
    out = tmp_path / "out"
    result = run_cli("pseudo-label", tmp_path / "in", "--teacher", ckpt, "--out", out, "--min-area", "0")
    assert_ok(result)
    text = " ".join(result.stdout.split())
    assert "9 images pseudo-labelled" in text and "skipped 1 × unreadable image" in text
    assert read_manifest(out)["counts"]["skipped"] == {"unreadable image": 1}
    strict = run_cli("pseudo-label", tmp_path / "in", "--teacher", ckpt, "--out", tmp_path / "s", "--strict")
    assert_clean_error(strict, "unreadable image", key)


def test_fewer_shards_than_ranks_is_refused_with_advice(inputs, tmp_path) -> None:
    shards, ckpt, _ = inputs
    result = run_cli("pseudo-label", shards, "--teacher", ckpt, "--out", tmp_path / "o", "--devices", "2",
                     "--workers", "2")  # fmt: skip
    assert_clean_error(result, "3 shard(s) for 2 worker(s) x 2 rank(s) = 4", "--workers lower")
    assert not (tmp_path / "o" / "ranks").exists()


def test_cli_devices_2_writes_one_folder_and_one_summary(inputs, tmp_path) -> None:
    """Through the CLI, Lightning's `ddp` re-runs the command as rank 1: it joins rank 0's folder."""
    shards, ckpt, one = inputs
    result = run_cli("pseudo-label", shards, "--teacher", ckpt, "--devices", "2", "--min-confidence", "0",
                     "--min-area", "0", "--max-masks", "8", "--maxcount", "3", cwd=tmp_path)  # fmt: skip
    assert_ok(result)
    assert " ".join(result.stdout.split()).count("10 images pseudo-labelled") == 1
    assert sorted(p.name for p in (tmp_path / "runs" / "pseudo-label").iterdir()) == ["pseudo"]
    assert _members(tmp_path / "runs" / "pseudo-label" / "pseudo") == _members(one)
