"""A resumable series of numbered tars, `{prefix}-{index:06d}.tar` + `sizes.json`: the writer under
`shards.write_shards` (schema-v1 samples) and `clip_export` (open_clip_train's image + caption samples).

Each tar is written under a temporary name and `os.replace`d, so a reader never sees a half-written one.
`{prefix}.progress.json` records every finished tar with the writer's params; a rerun with the same params
re-reads the input but keeps the intact recorded tars (checking that the input still starts the same way),
so an interrupted run resumes and a finished one is rewritten byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from openseg_cli.atomic import atomic_write_json, remove_stale_temps
from openseg_cli.errors import InputFileError

SIZES = "sizes.json"  # {tar name: samples}: webdataset's and open_clip_train's convention
PROGRESS_SCHEMA = 1
_TAR_BLOCK = 512


def write_tar_shards(
    samples: Iterable[Mapping[str, Any]],
    out_dir: Path,
    prefix: str,
    params: dict[str, Any],
    *,
    encode: Callable[[Mapping[str, Any]], dict[str, Any]],
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """Write `encode(sample)` (`{"__key__", member: bytes}`) for every sample into `{prefix}-{index:06d}.tar`
    in `out_dir` (at most `params["maxcount"]` samples / `params["maxsize"]` bytes each), then `sizes.json`;
    return it ({tar name: samples}).

    Resumable: `{prefix}.progress.json` records each finished tar with `params`; a rerun with the same
    params keeps the intact recorded tars and only checks that the input still starts the same way.
    Raises InputFileError for a bad sample (from `encode`), for tars of another run or other `params`
    (unless `overwrite`), or when resumed input no longer matches the recorded tars.
    """
    if params["maxcount"] < 1 or params["maxsize"] < 1:
        raise InputFileError("maxcount and maxsize must be positive")
    done = _start_or_resume(out_dir, prefix, params, overwrite)
    progress_path = out_dir / f"{prefix}.progress.json"

    def record(rec: dict[str, Any]) -> None:
        done.append(rec)
        atomic_write_json(progress_path, {"schema": PROGRESS_SCHEMA, "params": params, "shards": done})

    # Claim the folder before the first tar lands: a run killed between moving a shard into place and
    # recording it leaves an unrecorded tar, which a rerun must recognise as its own and rewrite.
    atomic_write_json(progress_path, {"schema": PROGRESS_SCHEMA, "params": params, "shards": done})

    writer = TarShardWriter(out_dir, prefix, len(done), params["maxcount"], params["maxsize"], record)
    try:
        _consume(samples, writer, done, out_dir, encode, progress)
    except BaseException:
        writer.abort()  # finished shards stay recorded, so a rerun resumes after them
        raise
    writer.finish()
    sizes = {rec["name"]: rec["count"] for rec in done}
    atomic_write_json(out_dir / SIZES, sizes)
    return sizes


class TarShardWriter:
    """Writes samples (`{"__key__", member: bytes}`) into numbered tars (temp name → os.replace);
    `on_done(record)` after each shard."""

    def __init__(self, out_dir: Path, prefix: str, start: int, maxcount: int, maxsize: int, on_done) -> None:
        self.out_dir, self.prefix, self.index = out_dir, prefix, start
        self.maxcount, self.maxsize, self.on_done = maxcount, maxsize, on_done
        self.tar: tarfile.TarFile | None = None
        self.count = self.size = 0
        self.first_key = self.last_key = ""

    def _path(self) -> Path:
        return self.out_dir / f"{self.prefix}-{self.index:06d}.tar"

    def write(self, sample: dict[str, Any]) -> None:
        if sample["__key__"] == self.last_key:  # webdataset would merge the two into one corrupt sample
            raise InputFileError(
                f"sample key {sample['__key__']!r} twice in a row: two inputs map to one key (a reader bug)"
            )
        members = {k: v for k, v in sample.items() if not k.startswith("__")}
        nbytes = sum(len(v) + 2 * _TAR_BLOCK for v in members.values())
        if self.tar is not None and (self.count >= self.maxcount or self.size + nbytes > self.maxsize):
            self.finish()
        if self.tar is None:
            self.tmp = self._path().with_name(self._path().name + ".tmp")
            # stays open across write() calls; finish()/abort() close it
            self.tar = tarfile.open(self.tmp, "w")  # noqa: SIM115
            self.count = self.size = 0
            self.first_key = sample["__key__"]
        for name in sorted(members):  # fixed order and mtime: identical input → identical bytes
            info = tarfile.TarInfo(f"{sample['__key__']}.{name}")
            info.size, info.mtime, info.mode = len(members[name]), 0, 0o444
            self.tar.addfile(info, io.BytesIO(members[name]))
        # TarFile keeps a TarInfo per member for reading back; a writer never needs them, and with
        # ~100k small samples per shard that list would grow to ~100 MB
        self.tar.members.clear()
        self.count, self.size, self.last_key = self.count + 1, self.size + nbytes, sample["__key__"]

    def abort(self) -> None:
        """Drop the open shard (an error stopped writing): no partial tar is left behind."""
        if self.tar is not None:
            self.tar.close()
            self.tmp.unlink(missing_ok=True)
            self.tar = None

    def finish(self) -> None:
        """Close the open shard (if any), move it into place and report it."""
        if self.tar is None:
            return
        self.tar.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self._path())
        record = {"name": self._path().name, "count": self.count, "bytes": self._path().stat().st_size}
        record.update(first_key=self.first_key, last_key=self.last_key)
        self.tar = None
        self.index += 1
        self.on_done(record)


def _start_or_resume(out_dir: Path, prefix: str, params: dict[str, Any], overwrite: bool) -> list[dict]:
    """Records of shards already complete from an earlier run with the same params; cleans the rest."""
    progress_path = out_dir / f"{prefix}.progress.json"
    ours = sorted(out_dir.glob(f"{prefix}-[0-9][0-9][0-9][0-9][0-9][0-9].tar"))
    done: list[dict] = []
    if progress_path.is_file() and not overwrite:
        try:
            state = json.loads(progress_path.read_text())
        except (OSError, ValueError) as exn:
            raise InputFileError(f"{progress_path}: unreadable progress file ({exn}); delete it") from None
        if state.get("params") != params:
            raise InputFileError(
                f"{out_dir}: holds {prefix} shards written with other settings {state.get('params')}; "
                "overwrite them or choose another folder"
            )
        done = intact_prefix(out_dir, state.get("shards", []))
    elif ours and not overwrite:
        raise InputFileError(
            f"{out_dir}: already holds {prefix}-*.tar shards; overwrite them or choose another folder"
        )
    keep = {rec["name"] for rec in done}
    for path in ours:
        if path.name not in keep:
            path.unlink()
    for tmp in out_dir.glob(f"{prefix}-*.tar.tmp"):  # left by a killed run
        tmp.unlink()
    for name in (f"{prefix}*", SIZES):  # atomic_write's temp files of a killed run
        remove_stale_temps(out_dir, name)
    return done


def intact_prefix(out_dir: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The leading records whose tars exist with their recorded size (the rest will be rewritten)."""
    intact = []
    for rec in records:
        path = out_dir / rec["name"]
        if not path.is_file() or path.stat().st_size != rec.get("bytes"):
            break
        intact.append(rec)
    return intact


def _consume(samples, writer: TarShardWriter, done: list[dict], out_dir: Path, encode, progress) -> None:
    """Encode and write every sample; the first ones, already in recorded shards, are only checked."""
    boundaries = _boundaries(done)
    to_skip, position = sum(r["count"] for r in done), 0
    for raw in samples:
        sample = encode(raw)
        if position < to_skip:  # already in a recorded shard: check we are reading the same input
            expected = boundaries.get(position)
            if expected is not None and expected[0] != sample["__key__"]:
                raise InputFileError(
                    f"{out_dir}: input changed since {expected[1]} was written; overwrite the shards"
                )
            position += 1
        else:
            writer.write(sample)
        if progress is not None:
            progress(1)
    if position < to_skip:
        raise InputFileError(f"{out_dir}: input has fewer samples than the recorded shards; overwrite them")


def _boundaries(done: list[dict[str, Any]]) -> dict[int, tuple[str, str]]:
    """Input position → (key expected there, shard name) for the first and last sample of each shard."""
    out, start = {}, 0
    for rec in done:
        out[start] = (rec["first_key"], rec["name"])
        out[start + rec["count"] - 1] = (rec["last_key"], rec["name"])
        start += rec["count"]
    return out
