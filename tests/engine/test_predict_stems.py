"""Output names of `predict`: one per image, never shared, never hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from openseg_cli.engine.predict import _unique_stems


@pytest.mark.parametrize(
    ("names", "stems"),
    [
        (["a-2.jpg", "a.jpg", "a.png"], ["a-2", "a", "a-3"]),  # sorted folder order: a real a-2 first
        (["a.jpg", "a.png", "a-2.jpg"], ["a", "a-3", "a-2"]),
        (["x/a.jpg", "y/a.jpg", "z/a.jpg"], ["a", "a-2", "a-3"]),
        ([".b.jpg", "b.png"], ["b", "b-2"]),  # no hidden output files
        (["..jpg"], ["image"]),
    ],
)
def test_every_image_gets_its_own_visible_stem(names: list[str], stems: list[str]) -> None:
    assert _unique_stems([Path(n) for n in names]) == stems
