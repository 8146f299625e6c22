"""Train/eval loaders: the batch dicts of docs/architecture.md, exact lengths, seeding, corrupt shards."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from openseg_cli.config.schema import DataConfig
from openseg_cli.data.loader import build_eval_loader, build_train_loader, iter_samples
from openseg_cli.data.sidecars import nouns_sidecar_path, read_nouns_sidecar
from openseg_cli.data.skips import SkipCounter
from openseg_cli.errors import InputFileError, RecipeError

CROP = 48
TRAIN_KEYS = {"images", "segment_maps", "segment_classes", "words", "keys"}
EVAL_KEYS = {"images", "semantic", "segment_maps", "segment_classes", "keys", "sizes"}


def _cfg(**kw) -> DataConfig:
    base = {"crop_size": CROP, "batch_size": 4, "workers": 0, "shuffle_buffer": 8, "max_words": 3}
    return DataConfig(**{**base, **kw})


def _keys(loader) -> list[str]:
    return [k for batch in loader for k in batch["keys"]]


def test_train_batch_dict(toy_shards: dict[str, Path]) -> None:
    loader = build_train_loader(toy_shards["train"], _cfg(word_keep_prob=0.5), steps_per_epoch=3)
    assert len(loader) == 3
    batches = list(loader)
    assert len(batches) == 3
    sidecars = {}
    for p in toy_shards["train"].glob("*.tar"):
        sidecars.update(read_nouns_sidecar(p)["words"])
    for b in batches:
        assert set(b) == TRAIN_KEYS
        assert b["images"].shape == (4, 3, CROP, CROP) and b["images"].dtype == torch.float32
        assert b["segment_maps"].shape == (4, CROP, CROP) and b["segment_maps"].dtype == torch.long
        assert len(b["segment_classes"]) == len(b["words"]) == len(b["keys"]) == 4
        for seg, classes, words, key in zip(b["segment_maps"], b["segment_classes"], b["words"], b["keys"],
                                            strict=True):  # fmt: skip
            assert classes.dtype == torch.long and int(seg.min()) >= 0 and int(seg.max()) == classes.numel()
            assert set(seg.unique().tolist()) - {0} == set(range(1, classes.numel() + 1))
            assert ((classes >= 0) & (classes < 9)).all()
            assert 1 <= len(words) <= 3 and all(isinstance(w, str) for w in words)
            assert set(words) <= {w for ws in sidecars[key] for w in ws}
        assert b["images"].abs().max() < 3 and b["images"].std() > 0.1  # CLIP-normalised pixels


def test_train_exact_length_with_workers_and_ranks_differ(toy_shards: dict[str, Path]) -> None:
    cfg = _cfg(workers=2)
    rank0 = build_train_loader(toy_shards["train"], cfg, rank=0, world_size=2, seed=1, steps_per_epoch=5)
    rank1 = build_train_loader(toy_shards["train"], cfg, rank=1, world_size=2, seed=1, steps_per_epoch=5)
    epoch1, epoch2 = [list(loader) for loader in (rank0, rank0)]
    assert len(epoch1) == len(epoch2) == len(rank0) == 5  # 3 + 2 batches from two workers
    keys0 = [k for b in epoch1 for k in b["keys"]]
    assert keys0 != _keys(rank1)  # different seeds per rank
    assert keys0 != [k for b in epoch2 for k in b["keys"]]  # and per epoch (persistent workers)


def test_train_is_reproducible_for_a_seed(toy_shards: dict[str, Path]) -> None:
    a = list(build_train_loader(toy_shards["train"], _cfg(), seed=5, steps_per_epoch=2))
    b = list(build_train_loader(toy_shards["train"], _cfg(), seed=5, steps_per_epoch=2))
    assert [x["keys"] for x in a] == [x["keys"] for x in b] and [x["words"] for x in a] == [
        x["words"] for x in b
    ]
    assert torch.equal(a[1]["images"], b[1]["images"])


def test_default_steps_per_epoch_from_sizes(toy_shards: dict[str, Path]) -> None:
    assert len(build_train_loader(toy_shards["train"], _cfg(), world_size=2)) == 24 // (4 * 2)


def test_eval_every_sample_exactly_once(toy_shards: dict[str, Path]) -> None:
    keys = []
    for rank in range(2):
        loader = build_eval_loader(toy_shards["val"], batch_size=3, crop_size=CROP, workers=2, rank=rank,
                                   world_size=2)  # fmt: skip
        for b in loader:
            assert set(b) == EVAL_KEYS
            assert b["images"].shape[1:] == (3, CROP, CROP) and b["semantic"].dtype == torch.long
            assert b["semantic"].shape == b["segment_maps"].shape == (len(b["keys"]), CROP, CROP)
            assert all(isinstance(s, tuple) and max(s) == 96 for s in b["sizes"])
            assert int(b["semantic"].min()) >= -1 and int(b["semantic"].max()) < 9
            keys += b["keys"]
    assert len(keys) == len(set(keys)) == 10


def test_fewer_shards_than_workers(toy_shards: dict[str, Path]) -> None:
    with pytest.raises(InputFileError, match=r"6 shard\(s\) for 4 worker\(s\) x 2 rank\(s\).*maxcount"):
        build_train_loader(toy_shards["train"], _cfg(workers=4), world_size=2)
    with pytest.raises(InputFileError, match="shard"):
        build_eval_loader(toy_shards["val"], 2, CROP, workers=1, world_size=5)


def test_training_needs_nouns(toy_shards: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "train"
    shutil.copytree(toy_shards["train"], folder)
    victim = sorted(folder.glob("*.tar"))[2]
    nouns_sidecar_path(victim).unlink()
    with pytest.raises(InputFileError, match=f"no nouns for shard {victim}: run `openseg extract-nouns"):
        build_train_loader(folder, _cfg())


def _corrupt_copy(src: Path, dst: Path, where: str) -> Path:
    """Copy a shard folder and cut its second shard inside a member's data or at a member boundary."""
    shutil.copytree(src, dst)
    victim = sorted(dst.glob("*.tar"))[1]
    with tarfile.open(victim) as tar:
        fourth = tar.getmembers()[3]  # first member of the second sample
    cut = fourth.offset_data + 10 if where == "data" else fourth.offset
    victim.write_bytes(victim.read_bytes()[:cut])
    return victim


@pytest.mark.parametrize("where", ["data", "boundary"])
def test_truncated_shard_is_a_counted_skip(toy_shards: dict[str, Path], tmp_path: Path, where: str) -> None:
    _corrupt_copy(toy_shards["val"], tmp_path / "val", where)
    skips = SkipCounter("test")
    keys = [s["key"] for s in iter_samples(tmp_path / "val", skips=skips)]
    assert len(keys) == 10 - 2 and skips.total >= 2  # samples 2 and 3 of the cut shard are lost
    loader = build_eval_loader(tmp_path / "val", batch_size=4, crop_size=CROP, workers=0)
    assert len(_keys(loader)) == 8 and loader.skips.total >= 2


def test_truncated_shard_does_not_stop_training(toy_shards: dict[str, Path], tmp_path: Path) -> None:
    _corrupt_copy(toy_shards["train"], tmp_path / "train", "data")
    loader = build_train_loader(tmp_path / "train", _cfg(), steps_per_epoch=8)
    assert len(list(loader)) == 8


def test_words_from_meta_without_sidecar(toy_root: Path, tmp_path: Path) -> None:
    """Pseudo-label shards carry `meta["words"]`; no sidecar is needed, and "all" takes the union."""
    from openseg_cli.data.coco import CocoPanopticReader, coco_paths
    from openseg_cli.data.shards import write_shards

    reader = CocoPanopticReader(coco_paths(toy_root, "train2017"), source="pseudo")
    samples = []
    for s in reader:
        meta = {**s["meta.json"], "pseudo": True, "words": [["alpha", "beta"], ["gamma"]]}
        samples.append({**s, "meta.json": meta})
    write_shards(samples, tmp_path, "pseudo", "train", categories=reader.categories, maxcount=8)
    loader = build_train_loader(tmp_path, _cfg(caption_sampling="all", word_keep_prob=1.0), steps_per_epoch=2)
    for batch in loader:
        assert all(words == ["alpha", "beta", "gamma"] for words in batch["words"])
    with pytest.raises(RecipeError, match="caption_sampling"):
        build_train_loader(tmp_path, _cfg(caption_sampling="some"))


# ---- bad input: each kind of damage is a counted skip with its reason, or an error with strict ----------


def _rewrite_sample(src: Path, dst: Path, change) -> str:
    """Copy a shard folder, then rewrite the first sample of its second shard with `change(members)`
    (member suffix → bytes, changed in place); returns that sample's key."""
    shutil.copytree(src, dst)
    victim = sorted(dst.glob("*.tar"))[1]
    with tarfile.open(victim) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    key = members[0][0].name.split(".", 1)[0]
    mine = {m.name.split(".", 1)[1]: data for m, data in members if m.name.startswith(key + ".")}
    change(mine)
    with tarfile.open(victim, "w") as tar:
        for info, data in members:
            suffix = info.name.split(".", 1)[1]
            data = mine[suffix] if info.name.startswith(key + ".") else data
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return key


def _corrupt_jpeg(members: dict) -> None:
    image = next(k for k in members if k.startswith("image."))
    members[image] = members[image][:200]  # a JPEG cut after its header: PIL cannot decode it


def _drop_segments(members: dict) -> None:
    meta = json.loads(members["meta.json"])
    meta["segments"] = meta["segments"][:1]  # the PNG still paints the other segments' ids
    members["meta.json"] = json.dumps(meta).encode()


BAD_SAMPLES = {"unreadable image": _corrupt_jpeg, "unlisted panoptic ids": _drop_segments}


@pytest.mark.parametrize("reason", sorted(BAD_SAMPLES))
def test_bad_sample_is_a_counted_skip_everywhere(toy_shards: dict[str, Path], tmp_path: Path, reason) -> None:
    train_key = _rewrite_sample(toy_shards["train"], tmp_path / "train", BAD_SAMPLES[reason])
    val_key = _rewrite_sample(toy_shards["val"], tmp_path / "val", BAD_SAMPLES[reason])

    # train: a worker process meets the bad sample; its count reaches this process with the reason
    loader = build_train_loader(tmp_path / "train", _cfg(workers=1, shuffle_buffer=1), steps_per_epoch=12)
    keys = _keys(loader)  # 12 batches x 4 = 48 draws from 24 samples: the bad one is met (seeded)
    assert len(keys) == 48 and train_key not in keys
    assert loader.skips.summary().get(reason, 0) >= 1 and set(loader.skips.summary()) == {reason}

    evaluated = build_eval_loader(tmp_path / "val", batch_size=4, crop_size=CROP, workers=1)
    keys = _keys(evaluated)
    assert len(keys) == 9 and val_key not in keys  # 10 samples, the bad one skipped once
    assert evaluated.skips.summary() == {reason: 1}

    # iter_samples hands images and PNGs over undecoded: its consumer (pseudo-label) decodes and counts
    skips = SkipCounter("iter")
    assert len(list(iter_samples(tmp_path / "val", skips=skips))) == 10 and skips.total == 0

    with pytest.raises(InputFileError, match=f"sample {val_key} .*{reason}; without --strict"):
        list(build_eval_loader(tmp_path / "val", 4, CROP, workers=0, strict=True))
    with pytest.raises(InputFileError, match=reason):
        list(build_train_loader(tmp_path / "train", _cfg(strict=True, shuffle_buffer=1), steps_per_epoch=12))


def test_truncated_tar_is_counted_by_reason_in_every_reader(
    toy_shards: dict[str, Path], tmp_path: Path
) -> None:
    _corrupt_copy(toy_shards["val"], tmp_path / "val", "data")
    skips = SkipCounter("iter")
    assert len(list(iter_samples(tmp_path / "val", skips=skips))) == 8
    assert (
        set(skips.summary()) <= {"corrupt shard", "truncated shard"}
        and skips.summary()["truncated shard"] == 2
    )
    loader = build_eval_loader(tmp_path / "val", batch_size=4, crop_size=CROP, workers=1)
    assert len(_keys(loader)) == 8 and loader.skips.summary()["truncated shard"] == 2  # seen in a worker
    with pytest.raises(InputFileError, match="shard"):
        list(iter_samples(tmp_path / "val", skips=SkipCounter("iter", strict=True)))


def test_two_ranks_two_workers_draw_different_streams_of_exact_length(toy_shards: dict[str, Path]) -> None:
    """Resampled training: every (rank, worker) stream is seeded apart, each rank yields exactly
    steps_per_epoch batches; the DataLoader alternates workers, so batch i comes from worker i % 2."""
    streams = {}
    for rank in range(2):
        loader = build_train_loader(
            toy_shards["train"], _cfg(workers=2), rank=rank, world_size=2, seed=3, steps_per_epoch=6
        )
        batches = list(loader)
        assert len(batches) == len(loader) == 6
        for worker in range(2):
            streams[rank, worker] = [k for b in batches[worker::2] for k in b["keys"]]
    assert all(len(s) == 12 for s in streams.values())
    assert len({tuple(s) for s in streams.values()}) == 4  # four different streams
    # 12 draws per stream from 24 samples: identical seeds would repeat a stream; these share few keys
    for a, b in [((0, 0), (1, 0)), ((0, 0), (0, 1)), ((0, 1), (1, 1))]:
        assert streams[a][:4] != streams[b][:4]
