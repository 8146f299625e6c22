"""Stream stages of the WebDataset pipelines: rank/worker splitting, per-rank seeding, exact lengths.

Pure torch + webdataset. Seeds mix (seed, rank, worker, epoch), so ranks and workers see different
streams and epochs differ (the same seed on every rank would give identical shuffles).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from itertools import islice
from typing import Any

import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from openseg_cli.data.skips import mix_seed


def worker_position() -> tuple[int, int]:
    """(index, count) of the current DataLoader worker; (0, 1) in the main process."""
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


class WorkerSeed:
    """Seed source for ResampledShards: differs per rank and worker (a class, so workers can pickle it)."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def __call__(self) -> int:
        return self.rank * 1000 + worker_position()[0]


class SplitByRank:
    """Shard urls r, r + world, r + 2 world ... for rank r (explicit rank: no torch.distributed needed)."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    def __call__(self, src: Iterator[Any]) -> Iterator[Any]:
        return islice(src, self.rank, None, self.world_size)


class SeededShuffle:
    """Shuffle buffer seeded per (seed, rank, worker, epoch); the epoch counter lives in the worker."""

    def __init__(self, bufsize: int, seed: int, rank: int) -> None:
        self.bufsize, self.seed, self.rank, self.epoch = bufsize, seed, rank, -1

    def __call__(self, src: Iterator[Any]) -> Iterator[Any]:
        self.epoch += 1
        rng = random.Random(mix_seed(self.seed, self.rank, worker_position()[0], self.epoch, 1))
        return wds.shuffle(self.bufsize, min(self.bufsize, 100), rng=rng)(src)


class TakeShare:
    """End the epoch after this worker's share of `total` batches (shares differ by at most one).

    The DataLoader takes batches from workers in turn, so the rank yields exactly `total` batches.
    """

    def __init__(self, total: int) -> None:
        self.total = total

    def __call__(self, src: Iterator[Any]) -> Iterator[Any]:
        worker, num_workers = worker_position()
        share = self.total // num_workers + (1 if worker < self.total % num_workers else 0)
        return islice(src, share)


class Sized(IterableDataset):
    """A pipeline with an exact `len` (webdataset's `with_length` makes a class that cannot be pickled,
    which DataLoader workers started by "spawn" or "forkserver" need)."""

    def __init__(self, pipeline: wds.DataPipeline, length: int) -> None:
        super().__init__()
        self.pipeline, self.length = pipeline, length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.pipeline)


class SeededMix(IterableDataset):
    """Interleave endless sources, picking source i with probability probs[i] from an RNG seeded per
    (seed, rank, worker, epoch): webdataset's RandomMix draws from the global `random`, the same on
    every rank."""

    def __init__(self, sources: list, probs: list[float], seed: int, rank: int) -> None:
        super().__init__()
        self.sources, self.probs, self.seed, self.rank, self.epoch = sources, probs, seed, rank, -1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.epoch += 1
        rng = random.Random(mix_seed(self.seed, self.rank, worker_position()[0], self.epoch, 4))
        streams = [iter(source) for source in self.sources]
        indices = list(range(len(streams)))
        while True:
            yield next(streams[rng.choices(indices, weights=self.probs)[0]])
