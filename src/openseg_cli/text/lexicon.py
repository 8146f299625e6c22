"""`LexiconExtractor`: the visible offline fallback when stanza models are absent.

It is not a tagger: it finds the entries of a given vocabulary (e.g. the COCO panoptic class names or a
benchmark list) in each caption. Caption and vocabulary words are both lower-cased and singularised with
`lemmatize_noun`, so plurals match ("circles" -> "circle", "buses" -> "bus"), and multi-word entries match
as phrases ("traffic lights" -> "traffic light"), longest entry first, left to right, without overlaps.
The returned word is the vocabulary entry (lower-cased, whitespace-normalised), de-duplicated per caption
in order of first occurrence. Words outside the vocabulary are never returned, so training on its output
is closer to "grounding with known class names" than to OpenSeg's caption nouns: the CLI says so.
"""

from __future__ import annotations

from openseg_cli.errors import UsageError
from openseg_cli.text.extractor import find_words, normalize_caption
from openseg_cli.text.lemmatizer import lemmatize_noun


def _key(words: list[str]) -> tuple[str, ...]:
    return tuple(lemmatize_noun(word) for word in words)


class LexiconExtractor:
    """Match caption words against `vocabulary`; same ``extract`` API as `NounExtractor`.

    Each entry is one name (flatten class synonyms first: "building, edifice" would be read as the
    phrase "building edifice"). Raises `UsageError` for an empty vocabulary or an entry with no
    alphabetic word (e.g. "42"). Two entries with the same singular form ("bus", "buses") keep the first.
    """

    filter = "lexicon"
    lemmatizer = "rules"

    def __init__(self, vocabulary: list[str]) -> None:
        self._entries: dict[tuple[str, ...], str] = {}
        for entry in vocabulary:
            name = " ".join(entry.lower().split())
            words = find_words(name)
            if not words:
                raise UsageError(f"vocabulary entry {entry!r} has no alphabetic word")
            self._entries.setdefault(_key(words), name)
        if not self._entries:
            raise UsageError("the lexicon fallback needs a non-empty vocabulary")
        self._longest = max(len(key) for key in self._entries)

    @property
    def vocabulary(self) -> list[str]:
        """The distinct entries, in the order given."""
        return list(self._entries.values())

    @property
    def description(self) -> str:
        return (
            f"lexicon fallback (no POS tagger): caption words and plurals matched against "
            f"{len(self._entries)} vocabulary entries"
        )

    def extract(self, captions: list[str]) -> list[list[str]]:
        """Vocabulary entries found in each caption (``[]`` when none or the caption is empty)."""
        return [self._match(normalize_caption(caption).lower()) for caption in captions]

    def _match(self, caption: str) -> list[str]:
        keys = _key(find_words(caption))
        found = []
        i = 0
        while i < len(keys):
            for n in range(min(self._longest, len(keys) - i), 0, -1):  # longest phrase first
                entry = self._entries.get(keys[i : i + n])
                if entry is not None:
                    found.append(entry)
                    i += n
                    break
            else:
                i += 1
        return list(dict.fromkeys(found))  # de-duplicate, first occurrence first
