"""Per-rank output of `pseudo-label`: a Lightning prediction writer feeding `write_shards`, and the merge.

Layout of an output folder (`out/`):
- `out/ranks/r{rank:03d}/{source}-r{rank:03d}-{index:06d}.tar`: each rank's own resumable series, written
  by `data.shards.write_shards` (its own `progress.json`, `sizes.json`, `manifest.json`);
- `out/{source}-r{rank:03d}-{index:06d}.tar`: hard links to those shards (a copy where the file system
  has no hard links) + one merged `sizes.json` and `manifest.json`, written by rank 0 once every rank is
  done, so `list_shards`/`read_manifest`/`count_samples` on `out/` see one ordinary shard folder;
- `out/pseudo-label.json`: the job's settings; a rerun with other settings is refused.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import BasePredictionWriter

from openseg_cli.data.schema import SCHEMA_VERSION
from openseg_cli.data.shards import MANIFEST, SIZES, read_manifest, write_json_atomic, write_shards
from openseg_cli.errors import InputFileError

RANKS_DIR = "ranks"
JOB_FILE = "pseudo-label.json"
_END, _ABORT = object(), object()


def rank_split(rank: int) -> str:
    return f"r{rank:03d}"


def rank_dir(out_dir: Path, rank: int) -> Path:
    return out_dir / RANKS_DIR / rank_split(rank)


class _Aborted(Exception):
    """Prediction stopped with an error: the open shard is dropped, finished ones stay recorded."""


class PseudoShardWriter(BasePredictionWriter):
    """Writes each rank's labelled samples into its own shard series, from a thread running `write_shards`.

    `write_shards` pulls samples from an iterable; Lightning pushes predictions: a bounded queue joins the
    two (the teacher runs ahead by at most `queue_size` samples). At the end every rank waits for the
    others, rank 0 merges, and every rank returns with the merged manifest in place.
    """

    def __init__(self, out_dir: Path, source: str, maxcount: int | None, extra: dict, command=None) -> None:
        super().__init__(write_interval="batch")
        self.out_dir, self.source, self.maxcount = Path(out_dir), source, maxcount
        self.extra, self.command = extra, command
        self.skipped: Counter[str] = Counter()
        self.skips = None  # the rank's loader SkipCounter, set by the data module
        self.progress = None  # callable(n) on rank 0
        self._queue: queue.Queue | None = None  # made in the rank's process (ddp_spawn pickles callbacks)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.manifest: dict[str, Any] | None = None

    def on_predict_start(self, trainer, pl_module) -> None:
        rank = trainer.global_rank
        self._queue, self._error = queue.Queue(maxsize=16), None
        self._thread = threading.Thread(target=self._write, args=(rank,), daemon=True)
        self._thread.start()

    def _write(self, rank: int) -> None:
        maxcount = {"maxcount": self.maxcount} if self.maxcount else {}
        try:
            write_shards(
                self._items(), rank_dir(self.out_dir, rank), self.source, rank_split(rank),
                categories=[], skipped=self.skipped, command=self.command, manifest_extra=self.extra,
                **maxcount,
            )  # fmt: skip
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            self._error = err

    def _items(self):
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _ABORT:
                raise _Aborted
            yield item

    def _put(self, item) -> None:
        """Queue an item, surfacing the writer's error (e.g. input changed) instead of blocking on it."""
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dl_idx):
        if prediction is None:
            return
        self._put(prediction)
        if self.progress is not None and trainer.is_global_zero:
            self.progress(trainer.world_size)  # rank 0's pace stands for every rank's

    def on_predict_end(self, trainer, pl_module) -> None:
        if self.skips is not None:
            self.skipped.update(self.skips.summary())  # read by write_shards after _END
        self._put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        trainer.strategy.barrier("pseudo-label-written")
        if trainer.is_global_zero:
            merge_rank_outputs(self.out_dir, trainer.world_size, self.source, self.extra, self.command)
        trainer.strategy.barrier("pseudo-label-merged")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self._thread is not None and self._thread.is_alive():
            try:
                self._queue.put(_ABORT, timeout=5)
            except queue.Full:
                return  # the writer is stuck; it is a daemon thread and dies with the process
            self._thread.join(timeout=30)


def merge_rank_outputs(out_dir: Path, world_size: int, source: str, extra: dict, command=None) -> dict:
    """Link every rank's shards into `out_dir` and write the merged `sizes.json` and `manifest.json`.

    Idempotent: links already pointing at the current rank shard are kept, stale ones replaced.
    """
    sizes: dict[str, int] = {}
    skipped: Counter[str] = Counter()
    for rank in range(world_size):
        part = read_manifest(rank_dir(out_dir, rank))
        for name, count in part["shards"].items():
            _link(rank_dir(out_dir, rank) / name, out_dir / name)
            sizes[name] = int(count)
        skipped.update(part["counts"].get("skipped", {}))
    for stale in out_dir.glob(f"{source}-r*.tar"):
        if stale.name not in sizes:
            stale.unlink()
    sizes = dict(sorted(sizes.items()))
    write_json_atomic(out_dir / SIZES, sizes)
    manifest = {
        "schema": SCHEMA_VERSION, "source": source, "split": "pseudo", "command": command,
        "categories": [], "counts": {"written": sum(sizes.values()), "skipped": dict(skipped),
                                     "skipped_total": sum(skipped.values())},
        "shards": sizes, "world_size": world_size, **extra,
    }  # fmt: skip
    write_json_atomic(out_dir / MANIFEST, manifest)
    return manifest


def _link(src: Path, dst: Path) -> None:
    if dst.exists() and os.path.samefile(src, dst):
        return
    tmp = dst.with_name(dst.name + ".link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # no hard links here (some network file systems): a copy then
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def check_job(out_dir: Path, settings: dict) -> None:
    """Record the job's settings in `out_dir`, or refuse a rerun whose settings differ from the record, or
    a folder that already holds shards without such a record (another dataset, an older layout)."""
    path = Path(out_dir) / JOB_FILE
    if path.is_file():
        import json

        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as exn:
            raise InputFileError(f"{path}: unreadable ({exn}); delete it or choose another --out") from None
        if old != settings:
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise InputFileError(
                f"{out_dir}: holds a pseudo-label run with other settings ({', '.join(changed)}: "
                f"{[old.get(k) for k in changed]} then, {[settings.get(k) for k in changed]} now); "
                "rerun with the same settings to resume, or choose another --out"
            )
        return
    foreign = [p.name for p in sorted(Path(out_dir).glob("*")) if _is_shard_output(p.name)]
    if foreign:
        raise InputFileError(
            f"{out_dir}: holds shards or a manifest of another run ({', '.join(foreign[:3])}); "
            "choose another --out"
        )
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def _is_shard_output(name: str) -> bool:
    return name.endswith((".tar", ".progress.json")) or name in ("manifest.json", "sizes.json")
