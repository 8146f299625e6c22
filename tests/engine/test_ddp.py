"""Training on 2 CPU ranks (gloo, `ddp_spawn`: with `ddp`, Lightning would re-run pytest as rank 1) over
shards on disk: the ranks see different samples and take the same number of steps; all-gathered grounding
negatives give the loss one process computes over the gathered batch; bf16-mixed trains on CPU; too few
shards for workers × ranks is refused through the CLI with what to do."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.distributed as dist

from openseg_cli.engine import train as train_engine
from openseg_cli.engine.train import run_training
from openseg_cli.losses.grounding import grounding_loss
from tests.cli.helpers import assert_clean_error, assert_ok, run_cli
from tests.data.conftest import add_sidecars
from tests.engine.helpers import TINY_MODEL_OVERRIDES, TOY_RECIPE, tiny_recipe, write_toy_shards

STEPS = 3


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = write_toy_shards(tmp_path_factory.mktemp("ddp"), "train2017", count=16, maxcount=4, seed=2)
    add_sidecars(out)  # 4 shards of 4 images, with nouns
    return out


def _recipe_overrides(shards: Path) -> list[str]:
    return [
        *TINY_MODEL_OVERRIDES, f"data.train_shards={shards}", "data.val_shards=", "data.crop_size=32",
        "data.batch_size=2", "data.workers=0", "data.word_keep_prob=1.0", f"trainer.max_steps={STEPS}",
        "trainer.val_every_steps=100", "trainer.checkpoint_every_steps=100", "trainer.log_every_steps=1",
    ]  # fmt: skip


def _recipe(shards: Path, *extra: str):
    return tiny_recipe(*_recipe_overrides(shards), *extra)


class KeysPerRank(L.Callback):
    """Appends each training batch's keys to `keys-r{rank}.jsonl` (ddp_spawn returns only weights)."""

    def __init__(self, folder: Path) -> None:
        self.folder = str(folder)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        with open(Path(self.folder) / f"keys-r{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(batch["keys"]) + "\n")


class RecordingCriterion(torch.nn.Module):
    """The real criterion; its first call's inputs and losses go to `criterion-r{rank}.pt`."""

    def __init__(self, inner, folder: Path) -> None:
        super().__init__()
        self.inner, self.folder, self.calls = inner, str(folder), 0

    def forward(self, output, targets, word_embeds, word_mask, anchors=None):
        losses = self.inner(output, targets, word_embeds, word_mask, anchors=anchors)
        if self.calls == 0:
            rank = dist.get_rank() if dist.is_initialized() else 0
            record = {
                "region": output.region_embeds, "words": word_embeds, "mask": word_mask,
                "scale": output.logit_scale, "anchors": anchors, "autocast": torch.is_autocast_enabled("cpu"),
                "mask_logits_dtype": str(output.mask_logits.dtype), **losses,
            }  # fmt: skip
            torch.save(
                {k: v.detach().float() if torch.is_tensor(v) and v.is_floating_point() else v
                 for k, v in record.items()},
                Path(self.folder) / f"criterion-r{rank}.pt",
            )  # fmt: skip
        self.calls += 1
        return losses


def _recording(monkeypatch, folder: Path) -> None:
    real = train_engine.build_criterion
    monkeypatch.setattr(train_engine, "build_criterion", lambda cfg: RecordingCriterion(real(cfg), folder))


def test_two_ranks_different_samples_same_steps_and_gathered_negatives(shards, tmp_path, monkeypatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _recording(monkeypatch, tmp_path)
    recipe = _recipe(
        shards, "trainer.devices=2", "trainer.global_batch_size=4", "loss.grounding_negatives=all_gather"
    )
    result = run_training(recipe, run, world_size=2, strategy="ddp_spawn", callbacks=[KeysPerRank(tmp_path)])
    assert result.global_step == STEPS and (run / "model.pt").is_file()

    keys = [[json.loads(line) for line in (tmp_path / f"keys-r{r}.jsonl").read_text().splitlines()]
            for r in range(2)]  # fmt: skip
    assert len(keys[0]) == len(keys[1]) == STEPS  # accumulation 1: one batch per step on each rank
    assert all(len(batch) == 2 for rank in keys for batch in rank)
    assert keys[0] != keys[1]  # ranks are seeded apart

    # All-gathered negatives: both ranks hold the same gathered batch [rank 0's 2 | rank 1's 2] and each
    # anchors its own samples; the mean of their losses is one process's loss over the whole batch.
    rec = [torch.load(tmp_path / f"criterion-r{r}.pt") for r in range(2)]
    for name in ("region", "words", "mask"):
        assert rec[0][name].shape[0] == 4 and torch.equal(rec[0][name], rec[1][name])
    assert rec[0]["anchors"].tolist() == [0, 1] and rec[1]["anchors"].tolist() == [2, 3]
    assert bool(rec[0]["mask"].any(1).all())  # every caption has words: every sample is an anchor
    whole = grounding_loss(rec[0]["region"], rec[0]["words"], rec[0]["mask"], rec[0]["scale"])
    mean = (rec[0]["loss_grounding"] + rec[1]["loss_grounding"]) / 2
    assert torch.allclose(whole, mean, rtol=1e-5, atol=1e-6), (whole, mean)
    assert not torch.allclose(rec[0]["loss_grounding"], rec[1]["loss_grounding"])  # different anchors


def test_bf16_mixed_trains_on_cpu(shards, tmp_path, monkeypatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _recording(monkeypatch, tmp_path)
    recipe = _recipe(shards, "trainer.global_batch_size=2", "trainer.precision=bf16-mixed")
    result = run_training(recipe, run)
    assert result.global_step == STEPS
    rec = torch.load(tmp_path / "criterion-r0.pt")
    assert rec["autocast"] and rec["mask_logits_dtype"] == "torch.bfloat16"  # CPU autocast was on
    with open(run / "logs" / "metrics.csv") as f:
        losses = [float(row["train/loss"]) for row in csv.DictReader(f) if row["train/loss"]]
    assert len(losses) == STEPS and all(torch.isfinite(torch.tensor(losses)))
    state = torch.load(run / "model.pt", weights_only=True)["state_dict"]
    assert all(v.dtype != torch.bfloat16 for v in state.values())  # weights stay float32


def test_too_few_shards_for_workers_and_ranks_is_refused(shards, tmp_path) -> None:
    overrides = [f"data.train_shards={shards}", "data.val_shards=", "data.workers=3"]
    result = run_cli("train", TOY_RECIPE, *[x for o in overrides for x in ("--set", o)], "--devices", "2",
                     "--set", "trainer.global_batch_size=32", "--out", tmp_path / "run")  # fmt: skip
    assert_clean_error(result, "4 shard(s) for 3 worker(s) x 2 rank(s) = 6", "set data.workers lower")
    assert not (tmp_path / "run").exists()  # refused before a run folder exists


def test_cli_devices_2_runs_every_rank_in_one_run_folder(shards, tmp_path) -> None:
    """`--devices 2` through the CLI: Lightning's `ddp` re-runs the command as rank 1, which must join rank
    0's fresh run folder (runs/train/x), not make `x2`, and stay quiet."""
    overrides = [*_recipe_overrides(shards), "data.workers=1", "trainer.global_batch_size=4"]
    args = [x for o in overrides for x in ("--set", o)]
    result = run_cli("train", TOY_RECIPE, *args, "--devices", "2", "--name", "x", cwd=tmp_path)
    assert_ok(result)
    assert " ".join(result.stdout.split()).count(f"done: {STEPS} steps") == 1
    assert sorted(p.name for p in (tmp_path / "runs" / "train").iterdir()) == ["x"]
    assert (tmp_path / "runs" / "train" / "x" / "model.pt").is_file()
