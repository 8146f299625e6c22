"""Words of every caption: shard sets (one sidecar per shard) and caption files (one output JSONL).

Shards: one `{shard}.nouns.json` sidecar per shard, resumable at shard granularity: a shard whose sidecar
was written by the same extractor is not redone (`force` redoes it); each sidecar is written atomically.

Caption files (`openseg_cli.text.caption_files`: text or JSONL): the good captions are cut into chunks of
`chunk_size` in line order; each finished chunk is written atomically to ``OUT.parts/chunk-NNNNNN.jsonl``
next to a ``state.json`` naming the input (path, size, mtime), format, extractor and chunk size. A rerun
with the same state skips the chunks on disk and does only the missing ones, so after any interruption
(even SIGKILL) every caption ends up in the output exactly once. When all chunks exist they are joined
into ``OUT`` (atomically) and ``OUT.parts`` is removed. A rerun whose state differs, or an existing
``OUT``, is refused unless `force`.

Both run through `run_tasks`: in this process, or in `workers` spawned processes (results identical).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openseg_cli.atomic import atomic_write, atomic_write_json, atomic_write_text
from openseg_cli.data.loader import iter_samples
from openseg_cli.data.shards import list_shards
from openseg_cli.data.sidecars import read_nouns_sidecar, write_nouns_sidecar
from openseg_cli.data.skips import SkipCounter
from openseg_cli.engine.nouns_parallel import ExtractorSpec, run_tasks
from openseg_cli.errors import InputFileError, UsageError
from openseg_cli.text.caption_files import LineSkips, read_caption_file


@dataclass
class NounsSummary:
    shards_done: int = 0
    shards_reused: int = 0
    images: int = 0
    captions: int = 0
    words: int = 0
    vocabulary: set[str] = field(default_factory=set)
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class FileSummary:
    """What `extract_nouns_from_file` did; `skips` has the bad input lines with their numbers."""

    out: Path
    captions: int = 0
    chunks: int = 0
    chunks_done: int = 0
    chunks_reused: int = 0
    words: int = 0
    vocabulary: set[str] = field(default_factory=set)
    skips: LineSkips = field(default_factory=LineSkips)


def extract_nouns_over_shards(
    shards: str,
    extractor,
    filter_name: str,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    *,
    workers: int = 1,
    spec: ExtractorSpec | None = None,
    strict: bool = False,
) -> NounsSummary:
    """Run `extractor.extract` over every caption of every shard; `progress(1)` per shard.

    `strict`: a shard with skipped samples or empty captions raises `InputFileError` before its sidecar
    is written.
    """
    summary = NounsSummary()
    todo = []
    for url in list_shards(shards):
        existing = read_nouns_sidecar(url)
        if not force and existing and existing.get("extractor") == extractor.description:
            summary.shards_reused += 1
            _count(summary, existing["words"])
            if progress:
                progress(1)
        else:
            todo.append(url)
    for url, (words, skipped) in run_tasks(
        _shard_words, todo, extractor=extractor, spec=spec, workers=workers
    ):
        if strict and skipped:
            detail = ", ".join(f"{n} × {reason}" for reason, n in sorted(skipped.items()))
            raise InputFileError(f"{url}: {detail} (--strict)")
        for reason, n in skipped.items():
            summary.skipped[reason] = summary.skipped.get(reason, 0) + n
        write_nouns_sidecar(url, {"filter": filter_name, "extractor": extractor.description, "words": words})
        summary.shards_done += 1
        _count(summary, words)
        if progress:
            progress(1)
    return summary


def _shard_words(extractor, url: str) -> tuple[dict[str, list[list[str]]], dict[str, int]]:
    """(key → words of each caption, skip counts); all captions of the shard go in one bulk call."""
    skips = SkipCounter("extract-nouns")
    keys, captions, counts = [], [], []
    for sample in iter_samples(url, skips=skips):
        caps = list(sample["meta"].get("captions") or [])
        keys.append(sample["key"])
        counts.append(len(caps))
        captions += caps
    skipped = dict(skips.reasons)
    empty = sum(1 for caption in captions if not str(caption).strip())
    if empty:  # kept as [] so caption i still lines up, but reported
        skipped["empty caption"] = empty
    flat = extractor.extract(captions) if captions else []
    words, start = {}, 0
    for key, count in zip(keys, counts, strict=True):
        words[key] = flat[start : start + count]
        start += count
    return words, skipped


def _count(summary: NounsSummary, words: dict[str, list[list[str]]]) -> None:
    summary.images += len(words)
    for per_caption in words.values():
        summary.captions += len(per_caption)
        for caption_words in per_caption:
            summary.words += len(caption_words)
            summary.vocabulary.update(caption_words)


def extract_nouns_from_file(
    path: str | Path,
    fmt: str,
    out: str | Path,
    extractor,
    *,
    chunk_size: int = 1000,
    workers: int = 1,
    spec: ExtractorSpec | None = None,
    strict: bool = False,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> FileSummary:
    """Write ``{"id"?, "line", "caption", "words"}`` per good caption of `path` to `out` (JSONL).

    `on_start(n_chunks)` is called once the input is read; `progress(1)` per finished chunk.
    Raises `UsageError` (bad chunk size, `out` exists, a different unfinished run), `InputFileError`
    (unreadable input, or a bad line with `strict`).
    """
    if chunk_size < 1:
        raise UsageError(f"--chunk-size must be >= 1, got {chunk_size}")
    path, out = Path(path), Path(out)
    summary = FileSummary(out=out)
    records = read_caption_file(path, fmt, strict=strict, skips=summary.skips)
    chunks = [records[i : i + chunk_size] for i in range(0, len(records), chunk_size)]
    summary.captions, summary.chunks = len(records), len(chunks)
    parts = _prepare_parts(path, fmt, out, extractor.description, chunk_size, len(records), force)
    todo = []
    for index, chunk in enumerate(chunks):
        part = _part_path(parts, index)
        if part.is_file():
            summary.chunks_reused += 1
            _count_lines(summary, _read_part(part, len(chunk)))
        else:
            todo.append((index, [record.caption for record in chunk]))
    if on_start:
        on_start(len(chunks))
    if progress and summary.chunks_reused:
        progress(summary.chunks_reused)
    for (index, _), words in run_tasks(_chunk_words, todo, extractor=extractor, spec=spec, workers=workers):
        lines = [record.output(w) for record, w in zip(chunks[index], words, strict=True)]
        atomic_write_text(_part_path(parts, index), "".join(_jsonl(line) for line in lines))
        summary.chunks_done += 1
        _count_lines(summary, lines)
        if progress:
            progress(1)
    _join_parts(parts, len(chunks), out)
    return summary


def _chunk_words(extractor, task: tuple[int, list[str]]) -> list[list[str]]:
    return extractor.extract(task[1])


def _jsonl(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


def _part_path(parts: Path, index: int) -> Path:
    return parts / f"chunk-{index:06d}.jsonl"


def _prepare_parts(
    path: Path, fmt: str, out: Path, description: str, chunk_size: int, records: int, force: bool
) -> Path:
    """The ``OUT.parts`` folder holding this run's finished chunks (created, reused or reset)."""
    parts = out.with_name(out.name + ".parts")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give the output JSONL file's path")
    try:
        stat = path.stat()
    except OSError as err:
        raise InputFileError(f"cannot read caption file {path}: {err.strerror or err}") from None
    state = {
        "input": str(path.resolve()),
        "input_size": stat.st_size,
        "input_mtime_ns": stat.st_mtime_ns,
        "format": fmt,
        "extractor": description,
        "chunk_size": chunk_size,
        "captions": records,
    }
    if force:
        shutil.rmtree(parts, ignore_errors=True)
        out.unlink(missing_ok=True)
    elif parts.is_dir():
        previous = _read_state(parts)
        if previous != state:
            changed = sorted(k for k in state if previous.get(k) != state[k])
            raise UsageError(
                f"{parts} holds an unfinished run with a different {', '.join(changed)}; "
                "pass --force to start over"
            )
        return parts
    elif out.exists():
        raise UsageError(f"{out} already exists (a finished run?); pass --force to redo it or choose --out")
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_json(parts / "state.json", state)
    return parts


def _read_state(parts: Path) -> dict[str, Any]:
    try:
        state = json.loads((parts / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # an unreadable state never matches: the user is asked to --force
    return state if isinstance(state, dict) else {}


def _read_part(part: Path, expected: int) -> list[dict[str, Any]]:
    """A finished chunk; a wrong line count (edited by hand) is an error, not a silent gap."""
    try:
        # split on "\n" only: captions may hold U+2028/U+0085, which str.splitlines would also split at
        text = part.read_bytes().decode("utf-8")
        lines = [json.loads(line) for line in text.split("\n") if line]
    except (OSError, ValueError) as err:
        raise InputFileError(f"{part}: unreadable finished chunk ({err}); pass --force to redo") from None
    if len(lines) != expected:
        raise InputFileError(f"{part}: {len(lines)} lines, expected {expected}; pass --force to redo")
    return lines


def _count_lines(summary: FileSummary, lines: list[dict[str, Any]]) -> None:
    for line in lines:
        summary.words += len(line["words"])
        summary.vocabulary.update(line["words"])


def _join_parts(parts: Path, count: int, out: Path) -> None:
    """Concatenate the chunks in order into `out` atomically, then drop the parts folder."""

    def write(handle) -> None:
        for index in range(count):
            with _part_path(parts, index).open("rb") as part:
                shutil.copyfileobj(part, handle)

    atomic_write(out, write)
    shutil.rmtree(parts, ignore_errors=True)
