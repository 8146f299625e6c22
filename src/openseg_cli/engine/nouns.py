"""Nouns for every caption of a shard set, written as one `{shard}.nouns.json` sidecar per shard.

Resumable at shard granularity: a shard whose sidecar was written by the same extractor is not redone
(`force` redoes it), and each sidecar is written atomically, so an interrupted run leaves only whole files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from openseg_cli.data.loader import iter_samples
from openseg_cli.data.shards import list_shards, read_nouns_sidecar, write_nouns_sidecar
from openseg_cli.data.skips import SkipCounter


@dataclass
class NounsSummary:
    shards_done: int = 0
    shards_reused: int = 0
    images: int = 0
    captions: int = 0
    words: int = 0
    vocabulary: set[str] = field(default_factory=set)
    skipped: dict[str, int] = field(default_factory=dict)


def extract_nouns_over_shards(
    shards: str,
    extractor,
    filter_name: str,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> NounsSummary:
    """Run `extractor.extract` over every caption of every shard; `progress(1)` per shard."""
    summary = NounsSummary()
    for url in list_shards(shards):
        existing = read_nouns_sidecar(url)
        if not force and existing and existing.get("extractor") == extractor.description:
            summary.shards_reused += 1
            _count(summary, existing["words"])
        else:
            words = _shard_words(url, extractor, summary)
            write_nouns_sidecar(
                url, {"filter": filter_name, "extractor": extractor.description, "words": words}
            )
            summary.shards_done += 1
            _count(summary, words)
        if progress:
            progress(1)
    return summary


def _shard_words(url: str, extractor, summary: NounsSummary) -> dict[str, list[list[str]]]:
    """key → words of each caption; all captions of the shard go to the extractor in one bulk call."""
    skips = SkipCounter("extract-nouns")
    keys, captions, counts = [], [], []
    for sample in iter_samples(url, skips=skips):
        caps = list(sample["meta"].get("captions") or [])
        keys.append(sample["key"])
        counts.append(len(caps))
        captions += caps
    for reason, n in skips.reasons.items():
        summary.skipped[reason] = summary.skipped.get(reason, 0) + n
    flat = extractor.extract(captions) if captions else []
    words, start = {}, 0
    for key, count in zip(keys, counts, strict=True):
        words[key] = flat[start : start + count]
        start += count
    return words


def _count(summary: NounsSummary, words: dict[str, list[list[str]]]) -> None:
    summary.images += len(words)
    for per_caption in words.values():
        summary.captions += len(per_caption)
        for caption_words in per_caption:
            summary.words += len(caption_words)
            summary.vocabulary.update(caption_words)
