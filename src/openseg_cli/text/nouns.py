"""`NounExtractor`: caption words chosen by part of speech with stanza (METHOD.md §2, Table 5 filters).

Filters (universal POS tags, UPOS):
- ``noun`` (default, the paper's choice): NOUN only. PROPN is left out by default: in COCO captions it
  is mostly a tagging error on capitalised common nouns ("Man", "Cat", "SINK") or a name that does not
  describe an image region ("Australia"), and the paper asks for nouns; ``include_propn=True`` adds it.
- ``noun_adj_verb``: NOUN, ADJ, VERB (+ PROPN when included).
- ``all``: Table 5's "all words", read literally: every word token whatever its tag, determiners and
  prepositions included ("a", "of"); punctuation and symbols fall out with the alphabetic-word rule.

Lemmas: stanza's lemma processor when the pipeline has one; otherwise nouns (NOUN/PROPN) go through the
rule-based `lemmatize_noun` and other words stay as written; ``lemmatize=False`` keeps surface forms
(the seed's example "['people', 'horses', 'road']"). Then the shared conventions of
`openseg_cli.text.extractor` apply (alphabetic, lower-cased, de-duplicated per caption).

Bulk processing: captions go to stanza as a list of `stanza.Document` in chunks of `chunk_size`; stanza
joins them internally and maps the sentences back, so a caption split into several sentences stays one
caption. Measured with the shared model (2 CPU cores, 500 COCO captions): see docs in tests/benchmarks.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from openseg_cli.errors import UsageError
from openseg_cli.text.extractor import FILTERS, normalize_caption, unique_words
from openseg_cli.text.lemmatizer import lemmatize_noun
from openseg_cli.text.stanza_pipeline import build_stanza_pipeline, describe_pipeline, has_lemma_model

if TYPE_CHECKING:
    import stanza

NOUN_TAGS = frozenset({"NOUN", "PROPN"})
_FILTER_TAGS: dict[str, frozenset[str] | None] = {
    "noun": frozenset({"NOUN"}),
    "noun_adj_verb": frozenset({"NOUN", "ADJ", "VERB"}),
    "all": None,  # every tag
}


class NounExtractor:
    """Extract words from captions with a stanza pipeline; ``extract`` is batched.

    Args:
        pipeline: a built stanza pipeline with tokenize and pos (see `build_stanza_pipeline`).
        filter: one of ``FILTERS``; anything else raises `UsageError`.
        include_propn: count proper nouns (PROPN) as nouns.
        lemmatize: return lemmas (default) or lower-cased surface forms.
        chunk_size: captions per stanza call; bounds memory, does not change results.
    """

    def __init__(
        self,
        pipeline: stanza.Pipeline,
        filter: str = "noun",
        *,
        include_propn: bool = False,
        lemmatize: bool = True,
        chunk_size: int = 256,
    ) -> None:
        if filter not in FILTERS:
            raise UsageError(f"unknown caption filter {filter!r}; choose one of {', '.join(FILTERS)}")
        if chunk_size < 1:
            raise UsageError(f"chunk_size must be >= 1, got {chunk_size}")
        self.pipeline = pipeline
        self.filter = filter
        self.include_propn = include_propn
        self.chunk_size = chunk_size
        tags = _FILTER_TAGS[filter]
        self._tags = tags | {"PROPN"} if tags is not None and include_propn else tags
        # Which lemmatiser produced the words: "stanza", "rules" or "none" (gold.py scores with it).
        if not lemmatize:
            self.lemmatizer = "none"
        else:
            self.lemmatizer = "stanza" if has_lemma_model(pipeline) else "rules"

    @classmethod
    def from_options(
        cls,
        model_dir: str | os.PathLike[str] | None = None,
        offline: bool = False,
        filter: str = "noun",
        use_gpu: bool = False,
        **options: object,
    ) -> NounExtractor:
        """Build the pipeline (`build_stanza_pipeline`) and the extractor; raises `StanzaModelsMissing`."""
        if filter not in FILTERS:  # checked before the (slow) pipeline build
            raise UsageError(f"unknown caption filter {filter!r}; choose one of {', '.join(FILTERS)}")
        pipeline = build_stanza_pipeline(model_dir, offline=offline, use_gpu=use_gpu)
        return cls(pipeline, filter, **options)  # type: ignore[arg-type]

    @property
    def description(self) -> str:
        """One line for logs and sidecar files: pipeline, filter, lemmatiser."""
        propn = "+PROPN" if self.include_propn else ""
        return f"{describe_pipeline(self.pipeline)}; filter={self.filter}{propn}; lemmas={self.lemmatizer}"

    def extract(self, captions: list[str]) -> list[list[str]]:
        """Words of each caption, in caption order: ``result[i]`` belongs to ``captions[i]``.

        Empty or whitespace-only captions give ``[]`` without calling stanza. Raises `TypeError` for a
        caption that is not a str (a data bug, not a user error).
        """
        texts = [normalize_caption(_check_str(c)) for c in captions]
        result: list[list[str]] = [[] for _ in texts]
        todo = [i for i, text in enumerate(texts) if text]
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start : start + self.chunk_size]
            for i, doc in zip(chunk, self._tag([texts[i] for i in chunk]), strict=True):
                result[i] = self._words(doc)
        return result

    def _tag(self, texts: list[str]) -> list[stanza.Document]:
        """One bulk stanza call: stanza tokenises the joined texts once and batches POS across them."""
        import stanza

        return self.pipeline([stanza.Document([], text=text) for text in texts])

    def _words(self, doc: stanza.Document) -> list[str]:
        """Filtered, lemmatised, de-duplicated words of one tagged caption (all its sentences)."""
        words = []
        for sentence in doc.sentences:
            for word in sentence.words:
                if self._tags is None or word.upos in self._tags:
                    words.append(self._lemma(word.text, word.upos, word.lemma))
        return unique_words(words)

    def _lemma(self, text: str, upos: str | None, lemma: str | None) -> str:
        if self.lemmatizer == "stanza":
            return lemma or text  # stanza leaves lemma None on rare tokens; fall back to the form
        if self.lemmatizer == "rules" and upos in NOUN_TAGS:
            return lemmatize_noun(text)
        return text


def _check_str(caption: object) -> str:
    if not isinstance(caption, str):
        raise TypeError(f"captions must be str, got {type(caption).__name__}: {caption!r:.60}")
    return caption
