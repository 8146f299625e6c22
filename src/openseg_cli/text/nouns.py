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
caption. Measured with the shared model on 500 COCO captions (1 torch thread, 12 interleaved runs on a
shared 2-core machine, CPU seconds min/median): Document list 0.71/0.90, one blank-line-joined string with
our own offset mapping 0.69/0.81 (same stanza work under cProfile: the difference is noise), one caption
per call 2.63/2.74. So bulk is ~3.5x faster than one-by-one and the Document list is kept: it is as fast
and needs no offset bookkeeping. Chunk size (32..1024) changed 2,048 captions by < 10%.
stanza's own batch sizes (tokenize 8..256, pos 300..5000) changed 1,000 captions by < 5% (noise), so
the defaults are kept.

De-duplication and cache: the words depend only on the normalised caption, so each distinct normalised
caption is tagged once per call and remembered in an LRU cache across calls (shards, chunks). Only
whitespace and all-caps captions are normalised; case and punctuation are kept because they change the
tagging. COCO val2017 has 25,014 captions and 24,789 distinct normalised ones (0.9% repeats), so on
COCO this saves little; it pays where captions repeat (templated or synthetic captions, several passes
over the same captions in one process). The cache belongs to one extractor, hence to one filter.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter, OrderedDict
from collections.abc import Iterator
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
        deduplicate: tag each distinct normalised caption once and use the cache (default); False is
            stanza's bulk path alone, every caption tagged (for measurements).
        cache_size: distinct captions remembered across calls (least recently used dropped first);
            0 disables the cache. ~100 bytes a caption: the default 100,000 costs ~10-20 MB.
        num_threads: torch intra-op threads while tagging (restored afterwards); None leaves torch's
            setting. Use 1 on small or shared CPUs: on a busy 2-core machine, 500 COCO captions took
            0.91 s median with 2 threads but stalled once at 135 s (OpenMP threads fighting for cores);
            with 1 thread the median was the same (0.92 s) and the worst of 5 runs 1.0 s.
    """

    def __init__(
        self,
        pipeline: stanza.Pipeline,
        filter: str = "noun",
        *,
        include_propn: bool = False,
        lemmatize: bool = True,
        chunk_size: int = 256,
        num_threads: int | None = None,
        cache_size: int = 100_000,
        deduplicate: bool = True,
    ) -> None:
        _check_filter(filter)
        if chunk_size < 1 or (num_threads is not None and num_threads < 1) or cache_size < 0:
            raise UsageError(
                f"chunk_size and num_threads must be >= 1 and cache_size >= 0, got {chunk_size}, "
                f"{num_threads} and {cache_size}"
            )
        self.pipeline = pipeline
        self.cache_size = cache_size
        self.deduplicate = deduplicate
        self._cache: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        # Running totals over all calls: captions seen, distinct per call (summed), sent to stanza.
        self.stats: Counter[str] = Counter()
        self.filter = filter
        self.include_propn = include_propn
        self.chunk_size = chunk_size
        self.num_threads = num_threads
        tags = _FILTER_TAGS[filter]
        self._tags = (tags | {"PROPN"}) if tags is not None and include_propn else tags
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
        *,
        include_propn: bool = False,
        lemmatize: bool = True,
        chunk_size: int = 256,
        num_threads: int | None = None,
        cache_size: int = 100_000,
    ) -> NounExtractor:
        """Build the pipeline (`build_stanza_pipeline`) and the extractor.

        Raises `UsageError` for an unknown filter (before the slow build) and `StanzaModelsMissing`.
        """
        _check_filter(filter)
        pipeline = build_stanza_pipeline(model_dir, offline=offline, use_gpu=use_gpu)
        return cls(
            pipeline,
            filter,
            include_propn=include_propn,
            lemmatize=lemmatize,
            chunk_size=chunk_size,
            num_threads=num_threads,
            cache_size=cache_size,
        )

    @property
    def description(self) -> str:
        """One line for logs and sidecar files: pipeline, filter, lemmatiser."""
        propn = "+PROPN" if self.include_propn else ""
        return f"{describe_pipeline(self.pipeline)}; filter={self.filter}{propn}; lemmas={self.lemmatizer}"

    def extract(self, captions: list[str]) -> list[list[str]]:
        """Words of each caption, in caption order: ``result[i]`` belongs to ``captions[i]``.

        Each distinct normalised caption is tagged once: repeats within the call and captions already
        in the cache (earlier calls, e.g. other shards) are not sent to stanza again. Empty or
        whitespace-only captions give ``[]`` without calling stanza. Raises `TypeError` for a caption
        that is not a str (a data bug, not a user error).
        """
        texts = [normalize_caption(_check_str(c)) for c in captions]
        if not self.deduplicate:
            return self._extract_every_caption(texts)
        known: dict[str, tuple[str, ...]] = {"": ()}
        todo: list[str] = []
        for text in texts:
            if text in known:
                continue
            cached = self._cache.get(text)
            if cached is None:
                todo.append(text)
                known[text] = ()  # placeholder, filled below; also de-duplicates `todo`
            else:
                self._cache.move_to_end(text)
                known[text] = cached
        self.stats.update(captions=len(texts), distinct=len(known) - 1, tagged=len(todo))
        with _torch_threads(self.num_threads if todo else None):
            for start in range(0, len(todo), self.chunk_size):
                chunk = todo[start : start + self.chunk_size]
                for text, doc in zip(chunk, self._tag(chunk), strict=True):
                    known[text] = tuple(self._words(doc))
        self._remember({text: known[text] for text in todo})
        return [list(known[text]) for text in texts]

    def _extract_every_caption(self, texts: list[str]) -> list[list[str]]:
        """stanza's bulk path alone: every non-empty caption tagged, repeats too (the benchmark's
        reference for what de-duplication adds); the cache is neither read nor filled."""
        result: list[list[str]] = [[] for _ in texts]
        todo = [i for i, text in enumerate(texts) if text]
        self.stats.update(captions=len(texts), distinct=len(set(texts) - {""}), tagged=len(todo))
        with _torch_threads(self.num_threads if todo else None):
            for start in range(0, len(todo), self.chunk_size):
                chunk = todo[start : start + self.chunk_size]
                for i, doc in zip(chunk, self._tag([texts[i] for i in chunk]), strict=True):
                    result[i] = self._words(doc)
        return result

    def clear_cache(self) -> None:
        """Forget every cached caption (benchmarks time cold runs with it)."""
        self._cache.clear()

    def _remember(self, fresh: dict[str, tuple[str, ...]]) -> None:
        """Add newly tagged captions to the LRU cache, evicting the least recently used beyond its size."""
        if self.cache_size == 0:
            return
        self._cache.update(fresh)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

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


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with `count` torch intra-op threads, then restore the previous number."""
    if count is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_filter(name: str) -> None:
    if name not in FILTERS:
        raise UsageError(f"unknown caption filter {name!r}; choose one of {', '.join(FILTERS)}")


def _check_str(caption: object) -> str:
    if not isinstance(caption, str):
        raise TypeError(f"captions must be str, got {type(caption).__name__}: {caption!r:.60}")
    return caption
