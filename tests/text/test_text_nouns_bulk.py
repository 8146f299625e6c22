"""NounExtractor beyond stanza's bulk path: de-duplication, the caption cache, and the three filters
(paper Table 5: all words, noun+adj+verb, noun) on hand-checked captions."""

from __future__ import annotations

import random

import pytest

from openseg_cli.errors import UsageError
from openseg_cli.text import NounExtractor

pytestmark = pytest.mark.stanza

DOGS = "Two dogs are playing with a ball in the grass."
WOMAN = "A woman holding an umbrella in the rain."

# Written down by hand from the grammar of the sentences (nouns singularised by the rule lemmatiser, other
# words as written: the shared model has no lemma model), then checked against the tagger's output.
HAND_CHECKED = {
    "noun": [["dog", "ball", "grass"], ["woman", "umbrella", "rain"]],
    "noun_adj_verb": [["dog", "playing", "ball", "grass"], ["woman", "holding", "umbrella", "rain"]],
    "all": [
        ["two", "dog", "are", "playing", "with", "a", "ball", "in", "the", "grass"],
        ["a", "woman", "holding", "an", "umbrella", "in", "the", "rain"],
    ],
}


@pytest.mark.parametrize("filter_name", list(HAND_CHECKED))
def test_each_filter_on_hand_checked_captions(stanza_pipeline, filter_name: str) -> None:
    assert NounExtractor(stanza_pipeline, filter_name).extract([DOGS, WOMAN]) == HAND_CHECKED[filter_name]


def test_repeats_are_tagged_once_and_mapped_back(stanza_pipeline) -> None:
    extractor = NounExtractor(stanza_pipeline)
    captions = [DOGS, WOMAN, DOGS, "  Two dogs are playing\twith a ball in the grass. ", "", WOMAN]
    result = extractor.extract(captions)
    assert result == [HAND_CHECKED["noun"][i] for i in (0, 1, 0, 0)] + [[], HAND_CHECKED["noun"][1]]
    assert extractor.stats == {"captions": 6, "distinct": 2, "tagged": 2}
    result[0].append("mutated")  # callers get their own lists, never the cache's
    assert extractor.extract([DOGS]) == [HAND_CHECKED["noun"][0]]
    assert extractor.stats["tagged"] == 2  # the second call came from the cache
    every = NounExtractor(stanza_pipeline, deduplicate=False)
    assert every.extract(captions) == extractor.extract(captions)
    assert every.stats["tagged"] == 5 and not every._cache  # repeats tagged again, nothing cached


def test_cache_is_bounded_lru_and_can_be_off(stanza_pipeline) -> None:
    extractor = NounExtractor(stanza_pipeline, cache_size=2)
    extractor.extract(["A red car.", "A blue boat.", "A green tree."])
    assert list(extractor._cache) == ["A blue boat.", "A green tree."]  # oldest dropped
    extractor.extract(["A blue boat."])  # a hit refreshes it
    extractor.extract(["A cat."])
    assert list(extractor._cache) == ["A blue boat.", "A cat."]
    off = NounExtractor(stanza_pipeline, cache_size=0)
    off.extract([DOGS])
    off.extract([DOGS])
    assert off.stats["tagged"] == 2 and not off._cache
    with pytest.raises(UsageError):
        NounExtractor(stanza_pipeline, cache_size=-1)


def test_dedup_and_cache_do_not_change_words(stanza_pipeline, coco_captions: list[str]) -> None:
    """Real COCO captions with repeats (whole captions and across calls): same words as one-by-one."""
    rng = random.Random(3)
    base = rng.sample(coco_captions, 40)
    captions = base + rng.sample(base, 20)
    rng.shuffle(captions)
    cached = NounExtractor(stanza_pipeline, chunk_size=16)
    first, second = cached.extract(captions[:30]), cached.extract(captions[30:])
    plain = NounExtractor(stanza_pipeline, cache_size=0)
    assert first + second == [plain.extract([caption])[0] for caption in captions]
    assert cached.stats["tagged"] == len(set(captions)) < len(captions)
