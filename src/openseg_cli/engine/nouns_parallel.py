"""Run caption-word extraction tasks in worker processes, each with its own extractor.

`ExtractorSpec` says how to build an extractor (stanza or the lexicon fallback) so that a spawned
process can build its own; `run_tasks(fn, tasks, ...)` calls ``fn(extractor, task)`` for every task and
yields ``(task, result)`` as results arrive (any order: callers write one output per task).

With ``workers == 1`` everything runs in this process with the extractor given. With more, a
``spawn`` process pool is used (fork would copy a process that may hold torch's OpenMP threads, a known
deadlock), each worker with one torch/OpenMP thread: on a shared 2-core machine stanza stalled for
minutes with two threads per process (measured in text/nouns.py). At most ``2 * workers`` tasks are in
flight, so a large input is not pickled to the pool all at once. Results do not depend on the number of
workers: each caption's words depend only on the caption (tests check 1 vs 2 workers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from openseg_cli.errors import OpenSegError, UsageError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ExtractorSpec:
    """Everything needed to build the same extractor in another process (picklable).

    ``lexicon`` set = the offline `LexiconExtractor` over those names instead of stanza.
    ``use_gpu`` is passed to stanza (``--device cuda``).
    """

    filter: str = "noun"
    model_dir: str | None = None
    offline: bool = False
    use_gpu: bool = False
    lexicon: tuple[str, ...] | None = None

    def build(self, num_threads: int | None = 1):
        """The extractor; raises `StanzaModelsMissing` / `UsageError` like `NounExtractor.from_options`."""
        if self.lexicon is not None:
            from openseg_cli.text.lexicon import LexiconExtractor

            return LexiconExtractor(list(self.lexicon))
        from openseg_cli.text.nouns import NounExtractor

        return NounExtractor.from_options(
            self.model_dir, offline=self.offline, filter=self.filter, use_gpu=self.use_gpu,
            num_threads=num_threads,
        )  # fmt: skip


_WORKER_EXTRACTOR: Any = None  # the extractor of a pool worker, built once by `_init_worker`


def _init_worker(spec: ExtractorSpec) -> None:
    # Set before torch is imported in this fresh (spawned) process, so OpenMP starts with one thread.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    if spec.lexicon is None:  # the lexicon fallback needs neither torch nor stanza
        import logging

        import torch

        torch.set_num_threads(1)
        logging.getLogger("stanza").setLevel(logging.WARNING)
    global _WORKER_EXTRACTOR
    _WORKER_EXTRACTOR = spec.build(num_threads=1)


def _call_in_worker(fn: Callable[[Any, T], R], task: T) -> R:
    return fn(_WORKER_EXTRACTOR, task)


def run_tasks(
    fn: Callable[[Any, T], R],
    tasks: Iterable[T],
    *,
    extractor: Any,
    spec: ExtractorSpec | None,
    workers: int = 1,
) -> Iterator[tuple[T, R]]:
    """Yield ``(task, fn(extractor, task))`` for every task; `fn` must be a module-level function.

    Raises `UsageError` for ``workers < 1`` or workers > 1 without a `spec`; an `OpenSegError` raised
    in a worker is re-raised here as is; a worker that dies (killed, out of memory) raises
    `OpenSegError` with one line.
    """
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if workers == 1:
        for task in tasks:
            yield task, fn(extractor, task)
        return
    if spec is None:
        raise UsageError("parallel extraction needs an ExtractorSpec to build worker extractors")
    yield from _run_pool(fn, iter(tasks), spec, workers)


def _run_pool(fn, tasks: Iterator[T], spec: ExtractorSpec, workers: int) -> Iterator[tuple[T, Any]]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(spec,))
    pending: dict[Future, T] = {}
    try:
        while True:
            for task in tasks:
                pending[pool.submit(_call_in_worker, fn, task)] = task
                if len(pending) >= 2 * workers:
                    break
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                yield task, future.result()
    except BrokenProcessPool as err:
        raise OpenSegError(f"a nouns worker process died ({err}); rerun to resume") from None
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
