"""What every caption-word extractor shares: the `WordExtractor` protocol and word normalisation.

Both `NounExtractor` (stanza) and `LexiconExtractor` (offline fallback) turn captions into per-caption
word lists with the same conventions, defined once here:
- captions are whitespace-normalised (newlines, tabs, runs of spaces -> one space) before anything else;
- a *word* is alphabetic: letters, optionally joined by inner hyphens ("t-shirt"); numbers, punctuation,
  clitics ("'s", "n't") and mixed tokens ("3d") are dropped;
- words are lower-cased and de-duplicated per caption, keeping the first occurrence's order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

FILTERS = ("noun", "noun_adj_verb", "all")

_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")  # letters (any script), inner hyphens allowed
_SPACE = re.compile(r"\s+")


@runtime_checkable
class WordExtractor(Protocol):
    """Turns captions into words: ``extract(captions)[i]`` are the words of ``captions[i]``."""

    description: str
    filter: str

    def extract(self, captions: list[str]) -> list[list[str]]: ...


def normalize_caption(caption: str) -> str:
    """Collapse whitespace; if the caption has no lower-case letter at all ("A MAN ON A BIKE"),
    lower-case it: taggers read shouted words as proper nouns."""
    text = _SPACE.sub(" ", caption).strip()
    if text and not any(ch.islower() for ch in text):
        text = text.lower()
    return text


def is_word(token: str) -> bool:
    """True for an alphabetic word (letters with optional inner hyphens)."""
    return _WORD.fullmatch(token) is not None


def find_words(text: str) -> list[str]:
    """The alphabetic words of `text`, in order (the same rule as `is_word`)."""
    return _WORD.findall(text)


def unique_words(words: Iterable[str]) -> list[str]:
    """Lower-case, keep alphabetic words only, drop repeats keeping the first occurrence's order."""
    seen: dict[str, None] = {}
    for word in words:
        word = word.lower()
        if is_word(word):
            seen.setdefault(word, None)
    return list(seen)
