"""Plumbing shared by the `prepare` readers (COCO instances, Localized Narratives, captions folder).

A reader has `iter_samples(progress)`, `source`, `categories`, `source_files` ({path: bytes}),
`skipped` (live {reason: count} of images) and `manifest_extra()` (its other counts, read after the last
sample), and optionally `close()`. `write_reader_shards` turns one into shards; `parse_size` reads the
`--maxsize` values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openseg_cli.data.shards import DEFAULT_MAXCOUNT, DEFAULT_MAXSIZE, write_shards

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_size(text: str | int) -> int:
    """Bytes from `300000000`, "500MB", "512MiB", "1.5G" (k/M/G/T: powers of 1000, with "i": of 1024).

    Raises ValueError naming the bad text (the CLI turns it into a usage error).
    """
    if isinstance(text, int):
        return text
    match = _SIZE_RE.match(str(text))
    if not match or (match.group(2) or "").lower().startswith("i"):
        raise ValueError(f"bad size {text!r}: use bytes or a number with k/M/G (e.g. 512MB, 1GiB)")
    unit = (match.group(2) or "").lower()
    scale = 1024 ** (" kmgt".index(unit[0])) if "i" in unit else _SIZE_UNITS[unit[:1]]
    return int(float(match.group(1)) * scale)


def write_reader_shards(
    reader: Any,
    out_dir: str | Path,
    split: str,
    *,
    maxcount: int | None = None,
    maxsize: int | None = None,
    command: str | list[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """`write_shards` for a reader: `iter_samples(progress)`, `source`, `categories`, `source_files`,
    `skipped` (live reason → count) and `manifest_extra()` (called after the last sample).

    The reader's `close()`, if it has one, is called at the end, also on failure.
    """
    try:
        return write_shards(
            reader.iter_samples(progress=progress), out_dir, reader.source, split,
            categories=reader.categories, source_files=reader.source_files, skipped=reader.skipped,
            command=command, maxcount=maxcount or DEFAULT_MAXCOUNT, maxsize=maxsize or DEFAULT_MAXSIZE,
            manifest_extra=reader.manifest_extra, overwrite=overwrite,
        )  # fmt: skip
    finally:
        if hasattr(reader, "close"):
            reader.close()
