"""Captions for the open-vocabulary toy world: each names every class it is allowed to name.

Shapes come with a colour adjective most of the time ("two red hearts and a blue star on wood"), grounds
with a varied phrase ("a stretch of sand", "the brick"); templates add the filler nouns real captions
have ("picture", "view", "top"). The CLIP corpus also gets the short, list-like captions that alt-text
often is ("heart, star, wood"), and object-centric photos are captioned by their object (`close_up_captions`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_NUMBERS = {2: "two", 3: "three"}
# How often a shape's colour is named: often enough to be realistic, rarely enough that a caption is
# not told apart from the others by its colour words alone (a CLIP trained on such captions learned the
# grounds and the colours, and no shape: average precision at chance for every shape class).
_COLOUR_P = 0.3
_GROUND = ["{}", "the {}", "some {}", "a patch of {}", "a stretch of {}", "{} everywhere"]
_PAIR = ["{a} and {b}", "{a} next to {b}", "{a} beside {b}", "{a} above {b}"]
_SENTENCES = [
    "{objs} on {bg}.",
    "A picture of {objs} lying on {bg}.",
    "There {be} {objs} on {bg}.",
    "{objs} {be} sitting on {bg}.",
    "An image showing {objs} on top of {bg}.",
    "A photo of {bg} with {objs} on it.",
    "{objs} can be seen on {bg}.",
    "Top view of {objs} resting on {bg}.",
    "On {bg} there {be} {objs}.",
    "A simple drawing of {objs} placed on {bg}.",
]
_SHORT = ["{objs} on {bg}", "{objs}, {bg}", "{list}"]
# Object-centric photos are captioned by their object, sometimes with its setting; as alt-text often is,
# sometimes by the bare noun.
_CLOSE_UP = [
    "{name}",
    "{obj}",
    "{obj}.",
    "A photo of {obj}.",
    "A close-up of {obj}.",
    "{obj}, close up",
    "A picture of {obj}.",
]
_CLOSE_UP_GROUND = ["{obj} on {bg}.", "A photo of {obj} on {bg}."]
_GROUND_ONLY = [
    "{name}",
    "{bg}",
    "A photo of {bg}.",
    "A close-up of {bg}.",
    "Texture of {name}.",
    "{name} background",
]


def plural(noun: str) -> str:
    """English plural of a one-word class name (cross -> crosses, star -> stars)."""
    return noun + "es" if noun.endswith(("s", "x", "sh", "ch")) else noun + "s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _kind_phrase(kind: str, colours: list[str], rng: np.random.Generator) -> str:
    """'a red heart' | 'two hearts' | 'two blue hearts' | 'a heart' for len(colours) shapes of one kind."""
    colour = colours[0] if len(set(colours)) == 1 and rng.random() < _COLOUR_P else ""
    if len(colours) == 1:
        word = f"{colour} {kind}".strip()
        return f"{_article(word)} {word}"
    return " ".join(p for p in (_NUMBERS[len(colours)], colour, plural(kind)) if p)


def _objects(things: list[tuple[str, str]], rng: np.random.Generator) -> tuple[str, bool]:
    """(phrase naming every shape kind, plural?) in a random order of kinds."""
    by_kind: dict[str, list[str]] = {}
    for kind, colour in things:
        by_kind.setdefault(kind, []).append(colour)
    kinds = list(by_kind)
    rng.shuffle(kinds)
    return _join([_kind_phrase(k, by_kind[k], rng) for k in kinds]), len(things) > 1


def _ground(stuff: list[str], rng: np.random.Generator) -> str:
    grounds = [_GROUND[int(rng.integers(len(_GROUND)))].format(s) for s in stuff]
    if len(grounds) == 1:
        return grounds[0]
    return _PAIR[int(rng.integers(len(_PAIR)))].format(a=grounds[0], b=grounds[1])


def _distinct(count: int, draw: Callable[[], str]) -> list[str]:
    """Up to `count` distinct capitalised captions from `draw`, giving up after 4 × count draws."""
    captions: list[str] = []
    for _ in range(4 * count):
        if len(captions) == count:
            break
        text = draw()
        text = text[0].upper() + text[1:]
        if text not in captions:
            captions.append(text)
    return captions


def close_up_captions(kind: str, colour: str, ground: str, rng: np.random.Generator) -> list[str]:
    """2-4 distinct captions of one large shape on one ground; the ground is named in about a third."""

    def draw() -> str:
        obj = _kind_phrase(kind, [colour], rng)
        templates = _CLOSE_UP_GROUND if rng.random() < 0.3 else _CLOSE_UP
        template = templates[int(rng.integers(len(templates)))]
        return template.format(obj=obj, name=kind, bg=_ground([ground], rng))

    return _distinct(int(rng.integers(2, 5)), draw)


def ground_captions(ground: str, rng: np.random.Generator) -> list[str]:
    """2-3 distinct captions of a photo of one ground alone ("wood", "A photo of a patch of wood.")."""

    def draw() -> str:
        template = _GROUND_ONLY[int(rng.integers(len(_GROUND_ONLY)))]
        return template.format(name=ground, bg=_ground([ground], rng))

    return _distinct(int(rng.integers(2, 4)), draw)


def make_captions(
    things: list[tuple[str, str]], stuff: list[str], rng: np.random.Generator, short: bool = False
) -> list[str]:
    """3-5 distinct captions naming every shape kind of `things` = [(kind, colour)] and every `stuff`.

    `short`: also alt-text-like forms ("heart on wood", "heart, star, wood"), for the CLIP corpus.
    Needs at least one shape and one ground (the toy world always draws both).
    """
    templates = _SENTENCES + (_SHORT if short else [])
    count = int(rng.integers(3, 6))
    captions: list[str] = []
    for t in rng.permutation(len(templates)):
        if len(captions) == count:
            break
        objs, many = _objects(things, rng)
        names = list(dict.fromkeys([k for k, _ in things] + stuff))
        rng.shuffle(names)
        bg, be = _ground(stuff, rng), "are" if many else "is"
        text = templates[int(t)].format(objs=objs, bg=bg, be=be, list=", ".join(names))
        text = text[0].upper() + text[1:]
        if text not in captions:
            captions.append(text)
    return captions
