"""NounExtractor with the real (small, offline) stanza pipeline from ../shared/models."""

from __future__ import annotations

import random

import pytest

from openseg_cli.errors import UsageError
from openseg_cli.text import FILTERS, NounExtractor, WordExtractor

pytestmark = pytest.mark.stanza

HORSES = "a group of people riding horses down a small road."


def test_seed_caption(stanza_pipeline) -> None:
    nouns, nav, everything = (NounExtractor(stanza_pipeline, name).extract([HORSES])[0] for name in FILTERS)
    assert {"horse", "road"} <= set(nouns)
    assert {"person", "people"} & set(nouns)
    assert "riding" not in nouns and "small" not in nouns and "a" not in nouns
    assert "riding" in nav and "small" in nav and "a" not in nav
    assert {"a", "of", "down", "riding", "horse"} <= set(everything)  # "all words" keeps determiners


def test_surface_forms_without_lemmas(stanza_pipeline) -> None:
    words = NounExtractor(stanza_pipeline, lemmatize=False).extract([HORSES])[0]
    assert "horses" in words and "horse" not in words


def test_mapping_empty_and_multi_sentence(stanza_extractor) -> None:
    captions = ["", "A dog sits. A cat sleeps on the sofa.", "  \n ", HORSES, "123 !!!"]
    result = stanza_extractor.extract(captions)
    assert len(result) == len(captions)
    assert result[0] == [] and result[2] == [] and result[4] == []
    assert {"dog", "cat", "sofa"} <= set(result[1])  # two sentences, one caption
    assert {"horse", "road"} <= set(result[3])
    assert stanza_extractor.extract([]) == []


def test_words_are_clean(stanza_pipeline, coco_captions: list[str]) -> None:
    extractor = NounExtractor(stanza_pipeline, "all")
    for words in extractor.extract(coco_captions[:200]):
        assert len(words) == len(set(words))
        assert all(word == word.lower() and word.replace("-", "").isalpha() for word in words)


def _sample(coco_captions: list[str], count: int = 50) -> list[str]:
    return random.Random(0).sample(coco_captions, count)


def test_bulk_equals_one_by_one(stanza_extractor, coco_captions: list[str]) -> None:
    captions = _sample(coco_captions)
    bulk = stanza_extractor.extract(captions)
    one_by_one = [stanza_extractor.extract([caption])[0] for caption in captions]
    assert bulk == one_by_one
    assert sum(len(words) for words in bulk) > 100  # real nouns came out, not empty lists


def test_chunk_size_does_not_change_results(stanza_pipeline, stanza_extractor, coco_captions) -> None:
    captions = _sample(coco_captions)
    assert NounExtractor(stanza_pipeline, chunk_size=7).extract(captions) == stanza_extractor.extract(
        captions
    )


def test_filters_are_nested(stanza_pipeline, coco_captions: list[str]) -> None:
    captions = _sample(coco_captions)
    nouns, nav, everything = (NounExtractor(stanza_pipeline, name).extract(captions) for name in FILTERS)
    for n, v, a in zip(nouns, nav, everything, strict=True):
        assert set(n) <= set(v) <= set(a)
    assert sum(map(len, nouns)) < sum(map(len, nav)) < sum(map(len, everything))


def test_propn_is_optional(stanza_pipeline) -> None:
    caption = ["Obama waves at the crowd in Paris."]
    with_propn = NounExtractor(stanza_pipeline, include_propn=True).extract(caption)[0]
    without = NounExtractor(stanza_pipeline).extract(caption)[0]
    assert set(without) < set(with_propn)


def test_all_caps_captions_are_lower_cased(stanza_extractor) -> None:
    # the weak tagger reads SHOUTED words as proper nouns; lower-casing first recovers the nouns
    assert {"man", "motor", "bike"} <= set(
        stanza_extractor.extract(["A MAN IS SMILING SITTING ON A MOTOR BIKE"])[0]
    )


def test_api_contract(stanza_pipeline, stanza_extractor) -> None:
    assert isinstance(stanza_extractor, WordExtractor)
    assert stanza_extractor.lemmatizer == "rules"  # the shared model has no lemma model
    assert "filter=noun" in stanza_extractor.description and "stanza" in stanza_extractor.description
    with pytest.raises(UsageError, match="noun_adj_verb"):
        NounExtractor(stanza_pipeline, "nouns")
    with pytest.raises(TypeError):
        stanza_extractor.extract([None])  # type: ignore[list-item]


def test_num_threads_is_scoped(stanza_pipeline) -> None:
    import torch

    from openseg_cli.text.nouns import _torch_threads

    before = torch.get_num_threads()
    with _torch_threads(before + 2):
        assert torch.get_num_threads() == before + 2
    assert torch.get_num_threads() == before
    extractor = NounExtractor(stanza_pipeline, num_threads=1)
    assert "horse" in extractor.extract([HORSES])[0]
    assert torch.get_num_threads() == before
    with pytest.raises(UsageError):
        NounExtractor(stanza_pipeline, num_threads=0)
