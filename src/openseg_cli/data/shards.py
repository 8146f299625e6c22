"""Write and find WebDataset shards: `{source}-{split}-{index:06d}.tar` + `sizes.json` + `manifest.json`.

Every file is written to a temporary name in the same folder and `os.replace`d, so a reader never sees a
half-written shard. Writing is resumable: each finished shard is recorded in
`{source}-{split}.progress.json`; a second run with the same input and sizes re-reads the input but does
not rewrite recorded shards (`data/tar_writer.py`). One folder holds one (source, split).

`manifest.json`: `schema`, `source`, `split`, `created`, `command` (argv), `categories`, `source_files`
({path: bytes}) and `source_mtimes` ({path: UTC time}), `counts` (`seen` = `written` + `skipped_total`,
`skipped` by reason), `shards` (= sizes.json), `maxcount`, `maxsize`, plus the reader's own counts
(e.g. `records`, `captions`, `segments`: each `seen` = `used` + skipped).
"""

from __future__ import annotations

import glob
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
from openseg_cli.data.tar_writer import SIZES, intact_prefix, write_tar_shards
from openseg_cli.errors import InputFileError

DEFAULT_MAXSIZE = 512 * 1024**2  # bytes per shard, the primary bound: large sequential reads, few files
# Samples per shard: only a safety bound by default (~3k COCO images already fill 512 MiB); lower it for
# small data sets, which need at least workers x ranks shards.
DEFAULT_MAXCOUNT = 100_000
MANIFEST = "manifest.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


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
    return sum(rec["count"] for rec in intact_prefix(Path(out_dir), state.get("shards", [])))


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
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_folder_owner(out_dir, source, split)
    params = {"source": source, "split": split, "maxcount": maxcount, "maxsize": maxsize}
    sizes = write_tar_shards(
        samples, out_dir, f"{source}-{split}", params, encode=_encode_sample, overwrite=overwrite,
        progress=progress,
    )  # fmt: skip
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
    remove_stale_temps(out_dir, MANIFEST)  # atomic_write's temp file of a killed run
    write_json_atomic(out_dir / MANIFEST, manifest)
    return manifest


def _encode_sample(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A schema-v1 sample, validated, with its meta as JSON bytes (InputFileError for a bad one)."""
    sample = validate_sample(raw)
    sample[META_MEMBER] = json.dumps(sample[META_MEMBER], ensure_ascii=False).encode("utf-8")
    return sample


def _counts(sizes: Mapping[str, int], skipped: Mapping[str, int] | None) -> dict[str, Any]:
    skipped = dict(skipped or {})
    written, total = sum(sizes.values()), sum(skipped.values())
    return {"seen": written + total, "written": written, "skipped": skipped, "skipped_total": total}


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
