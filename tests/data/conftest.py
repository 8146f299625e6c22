"""Fixtures for data/ tests: a tiny toy COCO dataset and shards written from it (session-scoped, in tmp)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openseg_cli.data.coco import CocoPanopticReader, coco_paths, write_coco_shards
from openseg_cli.data.loader import iter_samples
from openseg_cli.data.shards import list_shards
from openseg_cli.data.sidecars import write_nouns_sidecar
from openseg_cli.data.toy import TOY_CATEGORIES, write_toy_dataset

TOY_WORDS = {c[1] for c in TOY_CATEGORIES}
_PLURALS = {"crosses": "cross"}


def lexicon_words(caption: str) -> list[str]:
    """Toy class names in a caption, singular, in order, de-duplicated (a stand-in for noun extraction)."""
    out = []
    for token in re.findall(r"[a-z]+", caption.lower()):
        word = _PLURALS.get(token, token[:-1] if token.endswith("s") and token[:-1] in TOY_WORDS else token)
        if word in TOY_WORDS and word not in out:
            out.append(word)
    return out


def add_sidecars(shard_dir: Path) -> None:
    """Write a nouns sidecar for every shard, from the captions, like `openseg extract-nouns` would."""
    for url in list_shards(shard_dir):
        words = {s["key"]: [lexicon_words(c) for c in s["meta"]["captions"]] for s in iter_samples(url)}
        write_nouns_sidecar(url, {"filter": "noun", "extractor": "test-lexicon", "words": words})


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    write_toy_dataset(root, num_train=24, num_val=10, image_size=96, seed=3)
    return root


@pytest.fixture(scope="session")
def toy_shards(tmp_path_factory, toy_root) -> dict[str, Path]:
    """{"train": dir (6 shards of 4, with sidecars), "val": dir (4 shards of <= 3)}."""
    out = tmp_path_factory.mktemp("shards")
    write_coco_shards(coco_paths(toy_root, "train2017"), out / "train", "train2017", source="toy", maxcount=4)
    val_reader = CocoPanopticReader(coco_paths(toy_root, "val2017"), source="toy")  # a ready reader works too
    write_coco_shards(val_reader, out / "val", "val2017", maxcount=3)
    add_sidecars(out / "train")
    return {"train": out / "train", "val": out / "val"}
