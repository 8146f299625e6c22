"""A folder of images + one captions file → caption-only schema-v1 samples (no masks).

Captions file formats, chosen by its suffix (one caption per line; an image may have several lines):
- `.tsv` / `.txt`: `file_name<TAB>caption` (split at the first tab);
- `.csv`: two columns `file_name,caption` (quoted as CSV); a first row `file_name,caption` is a header;
- `.jsonl`: `{"file_name": ..., "caption": ...}` (or `"captions": [...]`).
`file_name` is relative to the image folder (sub-folders allowed). Lines of one image need not be
adjacent: the join is an on-disk sort-merge (`CaptionJoin`), so memory stays flat. Images in the folder
that no caption names are counted (`images_without_captions`), not written.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from openseg_cli.data.caption_join import (
    CaptionJoin,
    ImageFile,
    SkipTally,
    check_dirs,
    check_files,
    probe_image,
    source_sizes,
    stream_samples,
)
from openseg_cli.data.schema import SCHEMA_VERSION
from openseg_cli.errors import InputFileError

CAPTION_FORMATS = (".tsv", ".txt", ".csv", ".jsonl")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
_KEY_BAD = re.compile(r"[^A-Za-z0-9_-]")


def _jsonl_rows(text: str) -> list[tuple[str, str]] | str:
    try:
        rec = json.loads(text)
    except ValueError:
        return "invalid JSON line"
    if not isinstance(rec, dict) or not isinstance(rec.get("file_name"), str):
        return "record without file_name"
    caps = rec.get("captions", [rec.get("caption")]) if "captions" in rec else [rec.get("caption")]
    if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
        return "record without caption"
    return [(rec["file_name"], c) for c in caps]


def _csv_rows(f) -> Iterator[tuple[int, list[tuple[str, str]] | str]]:
    for number, row in enumerate(csv.reader(f), 1):
        if not any(cell.strip() for cell in row):
            continue
        if number == 1 and [c.strip().lower() for c in row[:2]] == ["file_name", "caption"]:
            continue  # header
        yield number, [(row[0], row[1])] if len(row) == 2 else "row without 2 columns"


def caption_rows(path: Path) -> Iterator[tuple[int, list[tuple[str, str]] | str]]:
    """Stream `(line or CSV row number, [(file_name, caption)] or skip reason)` from a captions file."""
    suffix = path.suffix.lower()
    if suffix not in CAPTION_FORMATS:
        raise InputFileError(f"{path}: captions file must end in {', '.join(CAPTION_FORMATS)}")
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        if suffix == ".csv":
            yield from _csv_rows(f)
            return
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue  # blank lines are not records
            if suffix == ".jsonl":
                yield lineno, _jsonl_rows(line)
            elif "\t" not in line:
                yield lineno, "line without a tab"
            else:
                name, caption = line.rstrip("\r\n").split("\t", 1)
                yield lineno, [(name, caption)]


def sample_key(file_name: str) -> str:
    """`sub/dog.1.jpg` → `sub_dog_1_jpg`: the relative path, suffix included (so `a.jpg` and `a.png`
    stay two samples), made a valid sample key."""
    return _KEY_BAD.sub("_", file_name) or "_"


class CaptionsFolderReader:
    """Index the captions file, then yield one caption-only sample per captioned image (name order).

    Tallies: `records` (invalid line, no file name, empty caption), `images` (missing, unreadable,
    unsupported format). `strict=True` raises InputFileError at the first of any. Call `close()`.
    """

    categories: list[dict[str, Any]] = []

    def __init__(
        self,
        folder: str | Path,
        captions: str | Path,
        *,
        source: str = "folder",
        strict: bool = False,
        work_dir: str | Path | None = None,
    ) -> None:
        self.folder, self.captions_file, self.source = Path(folder), Path(captions), source
        check_dirs([self.folder], "image folder")
        check_files([self.captions_file], "captions file")
        self.records, self.images = SkipTally(strict), SkipTally(strict)
        self.records_seen = self.captions_written = 0
        self._join = CaptionJoin(work_dir)
        try:
            self._index()
            self._num_images = self._join.count_images()
            self.images_without_captions = self._count_uncaptioned()
        except BaseException:
            self.close()
            raise

    def _index(self) -> None:
        for number, rows in caption_rows(self.captions_file):
            where = f"{self.captions_file}:{number}"
            if isinstance(rows, str):
                self.records_seen += 1
                self.records.skip(rows, where)
                continue
            for name, caption in rows:
                self.records_seen += 1
                name, caption = name.strip().replace("\\", "/"), " ".join(caption.split())
                if not name:
                    self.records.skip("record without file_name", where)
                elif not caption:
                    self.records.skip("empty caption", where)
                else:
                    self._join.add("", name, caption)

    def _count_uncaptioned(self) -> int:
        for path in self.folder.rglob("*"):
            if path.suffix.lower() in _IMAGE_SUFFIXES and path.is_file():
                self._join.add_file_name(path.relative_to(self.folder).as_posix())
        return self._join.names_without_captions()

    def __len__(self) -> int:
        """Distinct images named by the usable caption lines (samples written + images skipped)."""
        return self._num_images

    @property
    def skipped(self) -> dict[str, int]:
        return self.images.counts

    @property
    def source_files(self) -> dict[str, int]:
        return source_sizes([self.captions_file])

    def _sample(self, name: str, captions: list[str]) -> dict[str, Any] | None:
        path = self.folder / name
        found = probe_image(path)
        if not isinstance(found, ImageFile):
            return self.images.skip(found, str(path))
        self.captions_written += len(captions)
        meta = {
            "schema": SCHEMA_VERSION, "source": self.source, "image_id": name, "file_name": name,
            "width": found.width, "height": found.height, "captions": captions, "segments": [],
            "pseudo": False,
        }  # fmt: skip
        return {"__key__": sample_key(name), f"image.{found.ext}": found.data, "meta.json": meta}

    def iter_samples(self, progress: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
        """Samples sorted by file name; `progress(1)` per captioned image, written or skipped."""
        return stream_samples(self._join.groups(), lambda group: self._sample(*group[1:]), progress)

    def manifest_extra(self) -> dict[str, Any]:
        return {
            "images_listed": len(self),
            "image_dir": str(self.folder),
            "images_without_captions": self.images_without_captions,
            "records": self.records.summary(self.records_seen),
            "captions_written": self.captions_written,
            "skip_examples": self.images.examples,
        }

    def close(self) -> None:
        self._join.close()
