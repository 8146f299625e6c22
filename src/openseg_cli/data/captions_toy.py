"""Natural-sounding captions for toy images: every caption names every shape and every background class.

Varied templates, colour adjectives, counts and plural forms ("two red circles and a blue star on the
grass", "A picture of a yellow triangle lying on sand."), so noun extraction sees a realistic mix.
"""

from __future__ import annotations

import numpy as np

_PLURAL = {"cross": "crosses"}
_NUMBERS = {2: "two", 3: "three"}
_BACKGROUND = {
    "grass": ["the grass", "green grass", "a patch of grass", "grass", "a grass lawn"],
    "sand": ["the sand", "sand", "beige sand", "a stretch of sand", "dry sand"],
    "water": ["the water", "blue water", "calm water", "water", "rippling water"],
}
_PAIR = ["{a} and {b}", "{a} next to {b}", "{a} beside {b}", "{a} with {b} behind it"]
_TEMPLATES = [
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


def plural(noun: str) -> str:
    """English plural of a toy class name."""
    return _PLURAL.get(noun, noun + "s")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _kind_phrases(kind: str, colours: list[str], alone: bool, rng: np.random.Generator) -> list[str]:
    """['a red circle'] | ['two blue stars'] | ['a red circle', 'a pink circle'] | ['a circle'].

    `alone`: this is the only kind in the image, so 'two circles, one red and one pink' reads well.
    """
    show_colour = rng.random() < 0.85
    if len(colours) == 1:
        word = f"{colours[0]} {kind}" if show_colour else kind
        return [f"{_article(word)} {word}"]
    count = _NUMBERS[len(colours)]
    if len(set(colours)) == 1:
        return [f"{count} {colours[0]} {plural(kind)}" if show_colour else f"{count} {plural(kind)}"]
    groups = dict.fromkeys(colours, 0)  # colour -> count, in drawing order
    for c in colours:
        groups[c] += 1
    if alone and len(groups) == len(colours) and rng.random() < 0.5:
        return [f"{count} {plural(kind)}, " + _join([f"one {c}" for c in colours])]
    if not show_colour:
        return [f"{count} {plural(kind)}"]
    return [
        f"{_article(c)} {c} {kind}" if n == 1 else f"{_NUMBERS[n]} {c} {plural(kind)}"
        for c, n in groups.items()
    ]


def make_captions(things: list[tuple[str, str]], stuff: list[str], rng: np.random.Generator) -> list[str]:
    """3-5 distinct captions for shapes `things` = [(kind, colour)] on background classes `stuff`."""
    by_kind: dict[str, list[str]] = {}
    for kind, colour in things:
        by_kind.setdefault(kind, []).append(colour)
    n_caps = int(rng.integers(3, 6))
    order = rng.permutation(len(_TEMPLATES))[:n_caps]
    captions = []
    for t in order:
        kinds = list(by_kind)
        rng.shuffle(kinds)
        phrases = [p for k in kinds for p in _kind_phrases(k, by_kind[k], len(kinds) == 1, rng)]
        objs = _join(phrases) if phrases else "nothing"
        grounds = [_BACKGROUND[s][int(rng.integers(len(_BACKGROUND[s])))] for s in stuff]
        if len(grounds) == 1:
            bg = grounds[0]
        else:
            bg = _PAIR[int(rng.integers(len(_PAIR)))].format(a=grounds[0], b=grounds[1])
        be = "is" if len(things) == 1 else "are"
        text = _TEMPLATES[t].format(objs=objs, bg=bg, be=be)
        captions.append(text[0].upper() + text[1:])
    return captions
