"""open_clip_train reads `export clip-data` output through `open_clip_main`'s fix, and clip-train's helpers
agree with open_clip_train (epoch size, log lines, error lines)."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import open_clip
import open_clip_train.data as oc_data
import pytest
from PIL import Image

from openseg_cli.data.clip_export import export_clip_data, train_data_pattern
from openseg_cli.data.shards import write_shards
from openseg_cli.engine.clip_train import fewest_per_worker
from openseg_cli.engine.clip_train_run import final_loss, last_error_line, samples_per_epoch
from openseg_cli.engine.open_clip_main import fix_webdataset_eof, split_config_file
from openseg_cli.models.clip import register_clip_configs


@pytest.fixture(scope="module")
def clip_data(tmp_path_factory) -> tuple[Path, dict]:
    """Seven captioned 40x30 images → 14 samples (two captions each) in 4 clip tars of <= 4."""
    root = tmp_path_factory.mktemp("clip-data")

    def samples():
        for i in range(7):
            buffer = io.BytesIO()
            Image.new("RGB", (40, 30), (30 * i, 90, 160)).save(buffer, "PNG" if i % 2 else "JPEG")
            ext = "png" if i % 2 else "jpg"
            meta = {"source": "t", "image_id": i, "file_name": f"{i}.{ext}", "width": 40, "height": 30}
            meta["captions"] = [f"image {i}", f"picture number {i}"]
            yield {"__key__": f"{i:04d}", f"image.{ext}": buffer.getvalue(), "meta.json": meta}

    write_shards(samples(), root / "shards", "t", "train", categories=[])
    record = export_clip_data(root / "shards", root / "clip", maxcount=4)
    return root / "clip", record


def _samples_of(tar: Path) -> list[dict]:
    return list(oc_data.tarfile_to_samples_nothrow([{"url": str(tar)}]))


def test_open_clip_train_needs_the_eof_fix_to_read_webdataset_1_tars(clip_data, monkeypatch) -> None:
    """Known upstream bug (open_clip#935): unpatched, the reader fails at the end of the first tar."""
    folder, _ = clip_data
    with pytest.raises(KeyError, match="fname"):
        _samples_of(folder / "clip-000000.tar")
    monkeypatch.setattr(oc_data, "tarfile_to_samples_nothrow", oc_data.tarfile_to_samples_nothrow)
    fix_webdataset_eof()
    samples = _samples_of(folder / "clip-000000.tar")
    assert [s["__key__"] for s in samples] == ["0000_000", "0000_001", "0001_000", "0001_001"]
    assert samples[0]["txt"] == b"image 0" and samples[2]["png"].startswith(b"\x89PNG")


@pytest.mark.parametrize(("batch_size", "workers"), [(4, 0), (3, 2), (5, 1)])
def test_open_clip_train_loads_every_batch_of_an_epoch(clip_data, monkeypatch, batch_size, workers) -> None:
    """open_clip_train's own `get_wds_dataset` on the export: the epoch size clip-train's progress bar
    expects, and image/text batches of the model's sizes. (Iterated in-process for workers 0 only.)"""
    folder, record = clip_data
    monkeypatch.setattr(oc_data, "tarfile_to_samples_nothrow", oc_data.tarfile_to_samples_nothrow)
    fix_webdataset_eof()
    register_clip_configs()
    args = argparse.Namespace(
        train_data=train_data_pattern(folder, record), train_num_samples=None, dataset_resampled=False,
        train_data_upsampling_factors=None, seed=0, batch_size=batch_size, workers=workers, world_size=1,
    )  # fmt: skip
    info = oc_data.get_wds_dataset(
        args, open_clip.image_transform(128, is_train=True), is_train=True,
        tokenizer=open_clip.get_tokenizer("openseg-tiny-vit"),
    )  # fmt: skip
    loader = info.dataloader
    assert (loader.num_batches, loader.num_samples) == samples_per_epoch(14, batch_size, workers)
    if workers == 0:
        batches = list(loader)
        assert len(batches) == loader.num_batches
        images, texts = batches[0]
        assert images.shape == (batch_size, 3, 128, 128) and texts.shape == (batch_size, 16)


def test_fewest_per_worker() -> None:
    """Shards of 10, 3 and 5 samples over 2 workers: one worker may get only the 3-sample shard."""
    assert fewest_per_worker({"a": 10, "b": 3, "c": 5}, 2) == 3
    assert fewest_per_worker({"a": 10, "b": 3, "c": 5}, 1) == 18
    assert fewest_per_worker({"a": 10, "b": 3, "c": 5}, 0) == 18  # 0 workers: the main process reads all


def test_split_config_file() -> None:
    assert split_config_file(["--model", "m", "--config-file", "c.json", "--lr", "1"]) == (
        "c.json",
        ["--model", "m", "--lr", "1"],
    )
    assert split_config_file(["--config-file=c.json"]) == ("c.json", [])
    assert split_config_file(["--epochs", "2"]) == (None, ["--epochs", "2"])


def test_last_error_line() -> None:
    traceback = [
        "2026-12-03,19:31:51 | INFO | Start epoch 0\n",
        "Traceback (most recent call last):\n",
        '  File "x.py", line 3, in f\n',
        "AssertionError: number of shards must be >= total workers\n",
        "I1203 19:31:51.771000 7568 torch/_dynamo/eval_frame.py:837] TorchDynamo attempted to trace\n",
    ]
    assert last_error_line(traceback) == "AssertionError: number of shards must be >= total workers"
    argparse_error = ["usage: main.py [-h]\n", "main.py: error: unrecognized arguments: --bogus\n"]
    assert last_error_line(argparse_error) == "main.py: error: unrecognized arguments: --bogus"
    assert last_error_line(["", "killed\n"]) == "killed" and last_error_line([]) == "no output"


def test_final_loss_reads_the_last_train_line(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    line = (
        "2026-12-03,19:33:{s} | INFO | Train Epoch: {e} [{n}/48 (50%)] Data (t): 0.158 Batch (t): 0.325, "
        "24.58/s, 24.58/s/gpu LR: 0.000500 Logit Scale: 14.275 Contrastive_loss: {v} (2.2301) Loss: {v} "
        "({m})\n"
    )
    log.write_text(
        line.format(s=1, e=0, n=24, v="2.3017", m="2.2301")
        + line.format(s=2, e=1, n=48, v="2.0963", m="2.1632")
        + "2026-12-03,19:33:03 | INFO | Start epoch 2\n"
    )
    assert final_loss(log) == {"epoch": 2, "last": 2.0963, "epoch_mean": 2.1632}
    assert final_loss(tmp_path / "missing.log") is None
