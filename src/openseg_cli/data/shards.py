"""Write and find WebDataset shards: `{source}-{split}-{index:06d}.tar` + `sizes.json` + `manifest.json`.

Every file is written to a temporary name in the same folder and `os.replace`d, so a reader never sees a
half-written shard. Writing is resumable: each finished shard is recorded in
`{source}-{split}.progress.json`; a second run with the same input and sizes re-reads the input but does
not rewrite recorded shards. One folder holds one (source, split).

`manifest.json`: `schema`, `source`, `split`, `created`, `command` (argv), `categories`, `source_files`
({path: bytes}) and `source_mtimes` ({path: UTC time}), `counts` (`seen` = `written` + `skipped_total`,
`skipped` by reason), `shards` (= sizes.json), `maxcount`, `maxsize`, plus the reader's own counts
(e.g. `records`, `captions`, `segments`: each `seen` = `used` + skipped).
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from openseg_cli.atomic import atomic_write_json, remove_stale_temps
from openseg_cli.data.schema import META_MEMBER, SCHEMA_VERSION, validate_sample
from openseg_cli.errors import InputFileError

DEFAULT_MAXSIZE = 512 * 1024**2  # bytes per shard, the primary bound: large sequential reads, few files
# Samples per shard: only a safety bound by default (~3k COCO images already fill 512 MiB); lower it for
# small data sets, which need at least workers x ranks shards.
DEFAULT_MAXCOUNT = 100_000
MANIFEST = "manifest.json"
SIZES = "sizes.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
_TAR_BLOCK = 512


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write JSON to a temporary file beside `path`, then `os.replace` it (readers see old or new)."""
    atomic_write_json(path, obj)


def source_mtimes(paths: Iterable[str]) -> dict[str, str]:
    """{path: modification time (UTC, ISO 8601)} for the input files that exist."""
    out = {}
    for path in paths:
        try:
            stamp = os.stat(path).st_mtime
        except OSError:
            continue
        out[str(path)] = datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds")
    return out


def shard_name(source: str, split: str, index: int) -> str:
    return f"{source}-{split}-{index:06d}.tar"


class _TarShardWriter:
    """Writes samples into numbered tars (temp name → os.replace); `on_done(record)` after each shard."""

    def __init__(self, out_dir: Path, prefix: str, start: int, maxcount: int, maxsize: int, on_done) -> None:
        self.out_dir, self.prefix, self.index = out_dir, prefix, start
        self.maxcount, self.maxsize, self.on_done = maxcount, maxsize, on_done
        self.tar: tarfile.TarFile | None = None
        self.count = self.size = 0
        self.first_key = self.last_key = ""

    def _path(self) -> Path:
        return self.out_dir / f"{self.prefix}-{self.index:06d}.tar"  # = shard_name(source, split, index)

    def write(self, sample: dict[str, Any]) -> None:
        if sample["__key__"] == self.last_key:  # webdataset would merge the two into one corrupt sample
            raise InputFileError(
                f"sample key {sample['__key__']!r} twice in a row: two inputs map to one key (a reader bug)"
            )
        members = {k: v for k, v in sample.items() if not k.startswith("__")}
        members[META_MEMBER] = json.dumps(members[META_MEMBER], ensure_ascii=False).encode("utf-8")
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
        done = _intact_prefix(out_dir, state.get("shards", []))
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
    for name in (f"{prefix}*", SIZES, MANIFEST):  # atomic_write's temp files of a killed run
        remove_stale_temps(out_dir, name)
    return done


def _intact_prefix(out_dir: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The leading records whose tars exist with their recorded size (the rest will be rewritten)."""
    intact = []
    for rec in records:
        path = out_dir / rec["name"]
        if not path.is_file() or path.stat().st_size != rec.get("bytes"):
            break
        intact.append(rec)
    return intact


def completed_samples(out_dir: str | Path, source: str, split: str) -> int:
    """How many leading input samples a rerun of `write_shards` into `out_dir` will only check, not write.

    Lets an expensive producer (the pseudo-label teacher) skip its work for them; 0 when nothing is
    recorded or the progress file is unreadable (`write_shards` then reports the problem itself).
    """
    progress_path = Path(out_dir) / f"{source}-{split}.progress.json"
    try:
        state = json.loads(progress_path.read_text())
    except (OSError, ValueError):
        return 0
    return sum(rec["count"] for rec in _intact_prefix(Path(out_dir), state.get("shards", [])))


def write_shards(
    samples: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    source: str,
    split: str,
    *,
    categories: list[dict[str, Any]],
    source_files: Mapping[str, int] | None = None,
    skipped: Mapping[str, int] | None = None,
    command: str | list[str] | None = None,
    maxcount: int = DEFAULT_MAXCOUNT,
    maxsize: int = DEFAULT_MAXSIZE,
    manifest_extra: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write schema-v1 `samples` into shards in `out_dir`; return the manifest written.

    `categories`: manifest entries (`{"index", "id", "name", "isthing", ...}`, see `coco.build_categories`).
    `skipped`: reason → count, read *after* the samples are exhausted (a reader's live Counter works);
    `manifest_extra` may be a function, called then too (for counts a reader finishes while streaming).
    `source_files`: {path: bytes}; their mtimes are added as `source_mtimes`.
    `progress(1)` per sample consumed. Raises InputFileError for a bad sample, for a folder holding shards
    of another run (unless `overwrite`), or when resumed input no longer matches the recorded shards.
    """
    if not (_NAME_RE.match(source) and _NAME_RE.match(split)):
        raise InputFileError(f"source {source!r} and split {split!r} must be letters, digits or '_'")
    if maxcount < 1 or maxsize < 1:
        raise InputFileError("maxcount and maxsize must be positive")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_folder_owner(out_dir, source, split)
    prefix = f"{source}-{split}"
    params = {"source": source, "split": split, "maxcount": maxcount, "maxsize": maxsize}
    done = _start_or_resume(out_dir, prefix, params, overwrite)
    progress_path = out_dir / f"{prefix}.progress.json"

    def record(rec: dict[str, Any]) -> None:
        done.append(rec)
        write_json_atomic(progress_path, {"schema": SCHEMA_VERSION, "params": params, "shards": done})

    # Claim the folder before the first tar lands: a run killed between moving a shard into place and
    # recording it leaves an unrecorded tar, which a rerun must recognise as its own and rewrite.
    write_json_atomic(progress_path, {"schema": SCHEMA_VERSION, "params": params, "shards": done})

    writer = _TarShardWriter(out_dir, prefix, len(done), maxcount, maxsize, record)
    try:
        _consume(samples, writer, done, out_dir, progress)
    except BaseException:
        writer.abort()  # finished shards stay recorded, so a rerun resumes after them
        raise
    writer.finish()
    sizes = {rec["name"]: rec["count"] for rec in done}
    write_json_atomic(out_dir / SIZES, sizes)
    extra = manifest_extra() if callable(manifest_extra) else manifest_extra
    manifest = {
        "schema": SCHEMA_VERSION,
        "source": source,
        "split": split,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "categories": list(categories),
        "source_files": dict(source_files or {}),
        "source_mtimes": source_mtimes(source_files or {}),
        "counts": _counts(sizes, skipped),
        "shards": sizes,
        "maxcount": maxcount,
        "maxsize": maxsize,
        **(extra or {}),
    }
    write_json_atomic(out_dir / MANIFEST, manifest)
    return manifest


def _counts(sizes: Mapping[str, int], skipped: Mapping[str, int] | None) -> dict[str, Any]:
    skipped = dict(skipped or {})
    written, total = sum(sizes.values()), sum(skipped.values())
    return {"seen": written + total, "written": written, "skipped": skipped, "skipped_total": total}


def _consume(samples, writer: _TarShardWriter, done: list[dict], out_dir: Path, progress) -> None:
    """Validate and write every sample; the first ones, already in recorded shards, are only checked."""
    boundaries = _boundaries(done)
    to_skip, position = sum(r["count"] for r in done), 0
    for raw in samples:
        sample = validate_sample(raw)
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


def _check_folder_owner(out_dir: Path, source: str, split: str) -> None:
    path = out_dir / MANIFEST
    if path.is_file():
        old = read_manifest(out_dir)
        if (old.get("source"), old.get("split")) != (source, split):
            raise InputFileError(
                f"{out_dir}: holds {old.get('source')}/{old.get('split')} shards; "
                "use one folder per source and split"
            )


def read_manifest(shards: str | Path) -> dict[str, Any]:
    """The manifest of a shard folder (or of the folder of the first shard of a pattern).

    Raises InputFileError when it is missing, malformed or of another schema version.
    """
    path = Path(shards)
    folder = path if path.is_dir() else Path(list_shards(shards)[0]).parent
    file = folder / MANIFEST
    if not file.is_file():
        raise InputFileError(f"{folder}: no {MANIFEST} (not a shard folder written by openseg?)")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exn:
        raise InputFileError(f"{file}: malformed manifest ({exn})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA_VERSION:
        raise InputFileError(f"{file}: schema {manifest.get('schema')!r}, expected {SCHEMA_VERSION}")
    return manifest


def list_shards(spec: str | Path) -> list[str]:
    """Shard paths, sorted: a folder (its `*.tar`), one `.tar` file, a brace pattern or a glob.

    Several specs can be joined with `::` (webdataset's convention). Raises InputFileError when nothing
    matches.
    """
    from webdataset.shardlists import expand_urls  # brace + `::` expansion, as webdataset reads it

    found: list[str] = []
    for part in expand_urls(str(spec)):
        path = Path(part)
        if path.is_dir():
            found += [str(p) for p in sorted(path.glob("*.tar"))]
        elif path.is_file():
            found.append(str(path))
        elif any(c in part for c in "*?["):
            found += sorted(glob.glob(part))
        else:
            raise InputFileError(f"{part}: no such shard file or folder")
    if not found:
        raise InputFileError(f"{spec}: no shard files (*.tar) found")
    return found


def read_sizes(shards: list[str]) -> dict[str, int]:
    """{shard path: sample count} for the shards listed in the `sizes.json` of their folders."""
    out: dict[str, int] = {}
    for folder in {str(Path(s).parent) for s in shards}:
        try:
            sizes = json.loads((Path(folder) / SIZES).read_text())
        except (OSError, ValueError):
            continue  # no or unreadable sizes.json: those shards are not checked
        out.update({str(Path(folder) / name): int(n) for name, n in sizes.items()})
    return {s: out[str(Path(s))] for s in shards if str(Path(s)) in out}


def count_samples(shard: str | Path) -> int:
    """Samples in one shard: from `sizes.json` beside it, else by reading the tar headers."""
    shard = Path(shard)
    sizes_path = shard.parent / SIZES
    if sizes_path.is_file():
        try:
            sizes = json.loads(sizes_path.read_text())
            if shard.name in sizes:
                return int(sizes[shard.name])
        except (OSError, ValueError):
            pass  # fall back to counting
    try:
        with tarfile.open(shard, "r") as tar:
            return sum(1 for m in tar if m.name.endswith("." + META_MEMBER))
    except (OSError, tarfile.TarError) as exn:
        raise InputFileError(f"{shard}: unreadable shard ({exn})") from None
