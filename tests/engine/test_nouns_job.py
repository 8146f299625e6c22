"""extract-nouns over shards: one sidecar per shard, captions mapped back in order, resumable."""

from __future__ import annotations

import json

import pytest

from openseg_cli.data.shards import list_shards
from openseg_cli.data.sidecars import nouns_sidecar_path
from openseg_cli.engine.nouns import extract_nouns_over_shards
from tests.engine.helpers import write_toy_shards


class CountingExtractor:
    """Words = the caption's last word; counts captions seen, so reuse and resume are visible."""

    description = "counting-test-extractor"

    def __init__(self) -> None:
        self.captions = 0

    def extract(self, captions: list[str]) -> list[list[str]]:
        self.captions += len(captions)
        return [[c.rstrip(".").split()[-1].lower()] for c in captions]


@pytest.fixture()
def shards(tmp_path):
    return write_toy_shards(tmp_path, "train2017", count=9, maxcount=4, seed=1)


def test_sidecars_hold_each_captions_words_in_order(shards) -> None:
    extractor = CountingExtractor()
    summary = extract_nouns_over_shards(str(shards), extractor, "noun")
    captions = json.loads((shards.parent / "toy" / "annotations" / "captions_train2017.json").read_text())
    assert summary.images == 9 and summary.shards_done == 3
    assert summary.captions == extractor.captions == len(captions["annotations"])
    by_image: dict[int, list[str]] = {}
    for ann in captions["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["caption"])
    words = json.loads(nouns_sidecar_path(list_shards(shards)[0]).read_text())["words"]
    for key, per_caption in words.items():
        expected = [[c.rstrip(".").split()[-1].lower()] for c in by_image[int(key)]]
        assert per_caption == expected


def test_a_second_run_reuses_finished_shards_and_redoes_a_missing_one(shards) -> None:
    extract_nouns_over_shards(str(shards), CountingExtractor(), "noun")
    nouns_sidecar_path(list_shards(shards)[1]).unlink()  # as if interrupted before this shard
    again = CountingExtractor()
    summary = extract_nouns_over_shards(str(shards), again, "noun")
    assert (summary.shards_reused, summary.shards_done) == (2, 1)
    assert 0 < again.captions < summary.captions  # only the missing shard's captions were tagged
    forced = extract_nouns_over_shards(str(shards), CountingExtractor(), "noun", force=True)
    assert forced.shards_done == 3
