"""Words for the grounding loss: from a shard's nouns sidecar (or `meta["words"]`), sampled per step."""

from __future__ import annotations

import json
import random
import tarfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from openseg_cli.data.schema import META_MEMBER
from openseg_cli.data.sidecars import nouns_sidecar_path, read_nouns_sidecar
from openseg_cli.errors import InputFileError


def _no_nouns(url: str | Path) -> InputFileError:
    folder = Path(url).parent
    return InputFileError(f"no nouns for shard {url}: run `openseg extract-nouns {folder}`")


def _first_meta(url: str | Path) -> dict[str, Any] | None:
    """The meta of a shard's first sample (None if there is none or it cannot be read)."""
    try:
        with tarfile.open(url, "r") as tar:
            for member in tar:
                if member.name.endswith("." + META_MEMBER):
                    f = tar.extractfile(member)
                    return json.loads(f.read()) if f is not None else None
    except (OSError, tarfile.TarError, ValueError):
        return None
    return None


def check_words_available(urls: list[str], spec: str | Path) -> None:
    """Training needs words: every shard has a nouns sidecar, or its samples carry `meta["words"]`."""
    for url in urls:
        if nouns_sidecar_path(url).is_file():
            continue
        meta = _first_meta(url)
        if not (isinstance(meta, dict) and "words" in meta):
            raise _no_nouns(url)


class WordSampler:
    """Picks the words of one training sample.

    `caption_sampling`: "one" (one caption with words, at random) or "all" (union over captions).
    Each word is kept with `keep_prob`, at least one is kept if there were any; at most `max_words`
    (a random subset, original order). Sidecars are cached per shard (LRU of `cache_size`).
    """

    def __init__(self, caption_sampling: str, keep_prob: float, max_words: int, cache_size: int = 32):
        self.caption_sampling, self.keep_prob, self.max_words = caption_sampling, keep_prob, max_words
        self.cache_size = cache_size
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _sidecar(self, url: str) -> dict[str, Any]:
        if url in self._cache:
            self._cache.move_to_end(url)
            return self._cache[url]
        data = read_nouns_sidecar(url)
        if data is None:
            raise _no_nouns(url)
        self._cache[url] = data
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return data

    def caption_words(self, key: str, url: str | None, meta: Mapping[str, Any]) -> list[list[str]]:
        """Word lists, one per caption, for sample `key`: `meta["words"]` first, else the sidecar."""
        if "words" in meta:
            return meta["words"]
        if url is None:
            raise InputFileError(f"sample {key}: no words and no shard to find a nouns sidecar for")
        per_caption = self._sidecar(url)["words"].get(key)
        if per_caption is None:
            raise InputFileError(
                f"no nouns for sample {key} in {nouns_sidecar_path(url)}: rerun `openseg extract-nouns "
                f"{Path(url).parent}`"
            )
        return per_caption

    def sample(self, key: str, url: str | None, meta: Mapping[str, Any], rng: random.Random) -> list[str]:
        """The words of this sample for one step (may be [] when no caption has a word)."""
        lists = [ws for ws in self.caption_words(key, url, meta) if ws]
        if not lists:
            return []
        if self.caption_sampling == "one":
            words = list(dict.fromkeys(rng.choice(lists)))
        else:
            words = list(dict.fromkeys(w for ws in lists for w in ws))
        kept = [w for w in words if rng.random() < self.keep_prob] or [rng.choice(words)]
        if len(kept) > self.max_words:
            chosen = set(rng.sample(range(len(kept)), self.max_words))
            kept = [w for i, w in enumerate(kept) if i in chosen]
        return kept
