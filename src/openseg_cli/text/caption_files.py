"""Captions from plain files: text (one caption per line) and JSONL (one JSON object per line).

Formats (chosen by `detect_format` from the suffix, or named explicitly):
- ``text`` (``.txt``): every line is a caption; its record is ``{"line": n}`` (1-based line number).
- ``jsonl`` (``.jsonl``, ``.ndjson``): every line is an object with a string field ``caption``; an
  ``image_id`` (or else ``id``) becomes the record's ``id``. COCO-style ``{"image_id", "caption"}`` lines
  and Localized Narratives records (``dataset_id, image_id, annotator_id, caption, ...``) both fit.

Bad lines never stop a lenient read; each is counted once under a reason, with its line number:
``empty caption`` (blank or whitespace-only text), ``non-UTF-8 line``, ``invalid JSON``,
``not a JSON object``, ``missing caption field`` (absent, or not a string). With ``strict=True`` the first
bad line raises `InputFileError` (``FILE:LINE: reason``). A file that cannot be opened raises
`InputFileError` either way.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openseg_cli.errors import InputFileError, UsageError

FORMATS = ("text", "jsonl")
_SUFFIXES = {".txt": "text", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_EXAMPLES = 5  # line numbers kept per skip reason, for the report


@dataclass
class CaptionRecord:
    """One caption to tag: ``line`` in the input file, ``id`` from a JSONL record (or None)."""

    line: int
    caption: str
    id: Any = None

    def output(self, words: list[str]) -> dict[str, Any]:
        """The output JSONL object: ``{"id"?, "line", "caption", "words"}``."""
        head = {"id": self.id} if self.id is not None else {}
        return {**head, "line": self.line, "caption": self.caption, "words": words}


@dataclass
class LineSkips:
    """Counted bad lines: ``counts[reason]`` and the first line numbers of each reason."""

    counts: Counter[str] = field(default_factory=Counter)
    lines: dict[str, list[int]] = field(default_factory=dict)

    def add(self, reason: str, line: int) -> None:
        self.counts[reason] += 1
        examples = self.lines.setdefault(reason, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(line)

    def describe(self) -> list[str]:
        """One line per reason: ``3 × invalid JSON (lines 4, 9, 12)``."""
        out = []
        for reason, count in sorted(self.counts.items()):
            shown = ", ".join(map(str, self.lines[reason]))
            more = ", ..." if count > len(self.lines[reason]) else ""
            out.append(f"{count} × {reason} (line{'s' if count > 1 else ''} {shown}{more})")
        return out


def detect_format(path: str | os.PathLike[str]) -> str | None:
    """``text`` / ``jsonl`` from the file suffix, None for anything else (e.g. a shard folder)."""
    return _SUFFIXES.get(Path(path).suffix.lower())


def read_caption_file(
    path: str | os.PathLike[str], fmt: str, strict: bool = False, skips: LineSkips | None = None
) -> list[CaptionRecord]:
    """All good captions of the file, in line order; bad lines go to `skips` (see the module docstring).

    Raises `UsageError` for an unknown format, `InputFileError` for an unreadable file or (strict) the
    first bad line.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown caption file format {fmt!r}; choose one of {', '.join(FORMATS)}")
    skips = skips if skips is not None else LineSkips()
    parse = _text_record if fmt == "text" else _jsonl_record
    records = []
    for number, raw in _numbered_lines(Path(path)):
        try:
            records.append(parse(number, raw))
        except _BadLine as bad:
            if strict:
                raise InputFileError(f"{path}:{number}: {bad.reason}{bad.detail}") from None
            skips.add(bad.reason, number)
    return records


class _BadLine(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based number, raw bytes without the line ending); a last line without newline counts too."""
    try:
        handle = path.open("rb")
    except OSError as err:
        raise InputFileError(f"cannot read caption file {path}: {err.strerror or err}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            yield number, raw.rstrip(b"\r\n")


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _BadLine("non-UTF-8 line", f" (byte {err.start})") from None


def _text_record(number: int, raw: bytes) -> CaptionRecord:
    caption = _decode(raw).removeprefix("\ufeff")  # a UTF-8 BOM on line 1 is not part of the caption
    if not caption.strip():
        raise _BadLine("empty caption")
    return CaptionRecord(number, caption)


def _jsonl_record(number: int, raw: bytes) -> CaptionRecord:
    text = _decode(raw).removeprefix("\ufeff")
    if not text.strip():
        raise _BadLine("empty caption", " (blank line)")
    try:
        obj = json.loads(text)
    except ValueError as err:
        raise _BadLine("invalid JSON", f" ({err})") from None
    if not isinstance(obj, dict):
        raise _BadLine("not a JSON object", f" (got {type(obj).__name__})")
    caption = obj.get("caption")
    if not isinstance(caption, str):
        raise _BadLine("missing caption field", ' (need a string "caption")')
    if not caption.strip():
        raise _BadLine("empty caption")
    ident = obj.get("image_id", obj.get("id"))
    return CaptionRecord(number, caption, ident)
