"""Counting what the readers skip, and deterministic seeds for per-rank/per-worker random streams."""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections import Counter

from openseg_cli.errors import InputFileError

log = logging.getLogger("openseg_cli.data")
# Reasons the loaders give; their counts are shared with DataLoader workers (see `SkipCounter.summary`).
SHARED_REASONS = (
    "corrupt shard",
    "truncated shard",
    "corrupt sample",
    "unreadable image",
    "unlisted panoptic ids",
)


def mix_seed(*values: int) -> int:
    """Combine integers into one 31-bit seed, the same in every process.

    (webdataset's `make_seed` uses `hash()`, which differs between processes for strings.)
    """
    seed = 0x5EED
    for v in values:
        seed = (seed * 1_000_003 + int(v) + 0x9E3779B9) % (2**31 - 1)
    return seed


class SkipCounter:
    """Counts skipped shards/samples with a reason; also a webdataset `handler=` (warn and continue).

    `total` and `summary()` are shared with DataLoader workers (multiprocessing values inherited when they
    start); `reasons` counts only what this process saw. `strict=True` turns every skip into an error.
    Many failures in a row with no good sample in between (e.g. every shard is unreadable while
    resampling forever) → InputFileError instead of a silent spin.
    """

    def __init__(self, name: str, max_consecutive: int = 1000, strict: bool = False) -> None:
        self.name, self.max_consecutive, self.strict = name, max_consecutive, strict
        self._total = mp.Value("q", 0)
        self._shared = mp.Array("q", len(SHARED_REASONS) + 1)  # per reason, over every process; +1: other
        self.reasons: Counter[str] = Counter()
        self._consecutive = 0

    def summary(self) -> dict[str, int]:
        """Reason → count over this process and its DataLoader workers (unlisted reasons: this process's)."""
        with self._shared.get_lock():
            shared = list(self._shared)
        out = {r: n for r, n in zip(SHARED_REASONS, shared, strict=False) if n}
        out.update({r: n for r, n in self.reasons.items() if r not in SHARED_REASONS})
        return out

    @property
    def total(self) -> int:
        return int(self._total.value)

    def count(self, reason: str, detail: str) -> None:
        """Record one skip; log the first few of each reason and then every 1000th.

        With `strict`, raise InputFileError instead (the reason and detail in one line).
        """
        if self.strict:
            raise InputFileError(f"{self.name}: {detail} ({reason}; without --strict: counted and skipped)")
        with self._total.get_lock():
            self._total.value += 1
        slot = SHARED_REASONS.index(reason) if reason in SHARED_REASONS else len(SHARED_REASONS)
        with self._shared.get_lock():
            self._shared[slot] += 1
        self.reasons[reason] += 1
        self._consecutive += 1
        n = self.reasons[reason]
        if n <= 5 or n % 1000 == 0:
            log.warning("%s: skipped (%s, #%d): %s", self.name, reason, n, detail)
        if self._consecutive >= self.max_consecutive:
            raise InputFileError(
                f"{self.name}: {self._consecutive} unreadable shards/samples in a row; last: {detail}"
            )

    def ok(self) -> None:
        """A good sample went through: reset the run of failures."""
        self._consecutive = 0

    def __call__(self, exn: Exception) -> bool:
        """webdataset handler: count the error and continue with the next member or shard."""
        self.count("corrupt shard", f"{type(exn).__name__}: {str(exn)[:300]}")
        return True


class ShardCounts:
    """Pipeline stage after `tarfile_to_samples`: compare samples read per shard with `sizes.json`.

    A tar cut at a member boundary ends early without any error from `tarfile`; only the known count
    shows the loss. Missing samples are counted as "truncated shard" skips. Shards absent from
    `expected` are not checked.
    """

    def __init__(self, expected: dict[str, int], skips: SkipCounter) -> None:
        self.expected, self.skips = expected, skips

    def _close(self, url: str | None, seen: int) -> None:
        want = self.expected.get(url) if url is not None else None
        if want is not None and seen < want:
            for _ in range(want - seen):
                self.skips.count("truncated shard", f"{url}: {seen} of {want} samples readable")

    def __call__(self, src):
        url, seen = None, 0
        for sample in src:
            if sample.get("__url__") != url:
                self._close(url, seen)
                url, seen = sample.get("__url__"), 0
            seen += 1
            yield sample
        self._close(url, seen)
