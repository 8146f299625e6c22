"""LexiconExtractor: the offline fallback matches a vocabulary, with plurals and phrases."""

from __future__ import annotations

import pytest

from openseg_cli.errors import UsageError
from openseg_cli.text import LexiconExtractor, WordExtractor


def test_known_answer_shapes_caption() -> None:
    lexicon = LexiconExtractor(["circle", "star", "grass", "square", "red circle"])
    # "red circles" matches the longer entry first; the plain "circle" entry then never fires.
    assert lexicon.extract(["two red circles and a blue star on the grass"]) == [
        ["red circle", "star", "grass"]
    ]
    plain = LexiconExtractor(["circle", "star", "grass", "square"])
    assert plain.extract(["two red circles and a blue star on the grass"]) == [["circle", "star", "grass"]]


def test_plurals_phrases_order_and_dedup() -> None:
    lexicon = LexiconExtractor(["Traffic Light", "bus", "person", "glass", "box"])
    captions = ["Buses stop at the TRAFFIC LIGHTS; a bus, people and boxes.", "glass of water", "", "   "]
    assert lexicon.extract(captions) == [["bus", "traffic light", "person", "box"], ["glass"], [], []]


def test_no_partial_word_matches() -> None:
    lexicon = LexiconExtractor(["cat", "car"])
    assert lexicon.extract(["a catalogue on a carpet", "two cats near cars"]) == [[], ["cat", "car"]]


def test_protocol_and_description() -> None:
    lexicon = LexiconExtractor(["cat", "cats", "dog"])
    assert isinstance(lexicon, WordExtractor)
    assert lexicon.vocabulary == ["cat", "dog"]  # "cats" has the same singular as "cat"
    assert "lexicon" in lexicon.description and "2 vocabulary entries" in lexicon.description


@pytest.mark.parametrize("vocabulary", [[], ["42"], ["  "]])
def test_bad_vocabulary(vocabulary: list[str]) -> None:
    with pytest.raises(UsageError):
        LexiconExtractor(vocabulary)
