"""Two training sources mixed at a recipe-given ratio; a segmentation-only loader needs no nouns."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from openseg_cli.config.schema import DataConfig
from openseg_cli.data.loader import build_train_loader, iter_samples
from openseg_cli.errors import InputFileError


def _cfg(**overrides) -> DataConfig:
    base = DataConfig(crop_size=64, batch_size=4, workers=0, shuffle_buffer=1, word_keep_prob=1.0)
    return replace(base, **overrides)


def _second_source(toy_shards: dict[str, Path], tmp_path: Path) -> Path:
    """The val shards (other keys, no nouns) copied aside: a second source whose keys tell it apart."""
    other = tmp_path / "other"
    shutil.copytree(toy_shards["val"], other)
    return other


def test_mix_probability_one_takes_every_sample_from_the_mix_source(toy_shards, tmp_path) -> None:
    other = _second_source(toy_shards, tmp_path)
    val_keys = {s["key"] for s in iter_samples(other)}
    train_keys = {s["key"] for s in iter_samples(toy_shards["train"])}
    assert not val_keys & train_keys
    cfg = _cfg(mix_shards=str(other), mix_probability=1.0)
    loader = build_train_loader(toy_shards["train"], cfg, steps_per_epoch=3, need_words=False)
    keys = {k for batch in loader for k in batch["keys"]}
    assert keys <= val_keys and len(keys) > 1


def test_mix_probability_zero_never_takes_the_mix_source(toy_shards, tmp_path) -> None:
    other = _second_source(toy_shards, tmp_path)
    cfg = _cfg(mix_shards=str(other), mix_probability=0.0)
    loader = build_train_loader(toy_shards["train"], cfg, steps_per_epoch=3, need_words=False)
    train_keys = {s["key"] for s in iter_samples(toy_shards["train"])}
    assert {k for batch in loader for k in batch["keys"]} <= train_keys


def test_words_are_required_unless_the_recipe_needs_none(toy_shards) -> None:
    with pytest.raises(InputFileError, match="extract-nouns"):
        build_train_loader(toy_shards["val"], _cfg(), steps_per_epoch=1)  # val shards have no nouns
    batch = next(iter(build_train_loader(toy_shards["val"], _cfg(), steps_per_epoch=1, need_words=False)))
    assert batch["words"] == [[], [], [], []]
