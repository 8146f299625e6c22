"""Known answers for the rule-based noun lemmatiser."""

from __future__ import annotations

import pytest

from openseg_cli.text.lemmatizer import lemmatize_noun


@pytest.mark.parametrize(
    ("plural", "singular"),
    [
        ("people", "person"),
        ("men", "man"),
        ("women", "woman"),
        ("children", "child"),
        ("feet", "foot"),
        ("teeth", "tooth"),
        ("mice", "mouse"),
        ("geese", "goose"),
        ("grandchildren", "grandchild"),
        ("firemen", "fireman"),
        ("boxes", "box"),
        ("buses", "bus"),
        ("glasses", "glass"),
        ("dishes", "dish"),
        ("benches", "bench"),
        ("ladies", "lady"),
        ("skies", "sky"),
        ("movies", "movie"),
        ("ties", "tie"),
        ("knives", "knife"),
        ("leaves", "leaf"),
        ("shelves", "shelf"),
        ("gloves", "glove"),
        ("horses", "horse"),
        ("houses", "house"),
        ("vases", "vase"),
        ("tomatoes", "tomato"),
        ("shoes", "shoe"),
        ("skis", "ski"),
        ("circles", "circle"),
        ("Giraffes", "giraffe"),
    ],
)
def test_plurals_become_singular(plural: str, singular: str) -> None:
    assert lemmatize_noun(plural) == singular


@pytest.mark.parametrize(
    "word",
    [
        "glass",
        "bus",
        "tennis",
        "basis",
        "cactus",
        "sheep",
        "series",
        "species",
        "jeans",
        "lens",
        "specimen",
        "person",
        "grass",
        "dress",
        "news",
        "a",
        "is",
    ],
)
def test_singulars_and_invariants_stay(word: str) -> None:
    assert lemmatize_noun(word) == word


def test_idempotent_on_its_own_output() -> None:
    words = ["people", "boxes", "buses", "knives", "ladies", "horses", "glasses", "skis", "movies"]
    once = [lemmatize_noun(w) for w in words]
    assert [lemmatize_noun(w) for w in once] == once
