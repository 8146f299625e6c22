"""Join captions that arrive in any order to their images, with flat memory, and probe image files.

Caption files (Localized Narratives JSONL, a user's TSV/CSV/JSONL) list one caption per line, and the
lines of one image are not guaranteed to be adjacent (several annotators per image; files concatenated).
Grouping them needs an index over the whole file. A Python dict `{image: [captions]}` grows with the data
set (~100 bytes + the caption per record: hundreds of MB for Open Images), so `CaptionJoin` keeps the
index in a temporary on-disk SQLite database (standard library) instead: rows are inserted in batches,
and `groups()` streams them back sorted by (group, image, order) — an external sort-merge whose Python
memory is one batch plus one image's captions, whatever the number of records. The sort order is also
what makes shard writing deterministic and therefore resumable.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openseg_cli.errors import InputFileError

_BATCH = 1000  # rows per executemany: amortises the SQLite calls; bounds the Python-side buffer (~300 KB)


class CaptionJoin:
    """An on-disk multimap (group, image) → captions in insertion order; use as a context manager.

    `group` separates namespaces that may share image ids (e.g. LN's `dataset_id`); use "" when there is
    one. `work_dir`: where the temporary database lives (default: the system temp folder); it is deleted
    on `close()`.
    """

    def __init__(self, work_dir: str | Path | None = None) -> None:
        if work_dir is not None:
            Path(work_dir).mkdir(parents=True, exist_ok=True)
        self._dir = Path(tempfile.mkdtemp(prefix=".caption-join-", dir=work_dir))
        self._db = sqlite3.connect(self._dir / "join.sqlite")
        # One-shot scratch data: durability is not needed, and sorting spills to temp files, not RAM.
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
            "PRAGMA cache_size=-4096;"
            "CREATE TABLE caps (grp TEXT, image TEXT, ord INTEGER, caption TEXT);"
            "CREATE TABLE files (name TEXT PRIMARY KEY);"
        )
        self._rows: list[tuple[str, str, int, str]] = []
        self._order = 0

    def add(self, group: str, image: str, caption: str) -> None:
        """Record one caption of `image` (order = call order)."""
        self._rows.append((group, image, self._order, caption))
        self._order += 1
        if len(self._rows) >= _BATCH:
            self._flush()

    def add_file_name(self, name: str) -> None:
        """Record a file found on disk (see `names_without_captions`)."""
        self._db.execute("INSERT OR IGNORE INTO files VALUES (?)", (name,))

    def _flush(self) -> None:
        if self._rows:
            self._db.executemany("INSERT INTO caps VALUES (?, ?, ?, ?)", self._rows)
            self._rows.clear()

    def _ready(self) -> None:
        self._flush()
        self._db.execute("CREATE INDEX IF NOT EXISTS by_image ON caps (grp, image, ord)")

    def count_images(self) -> int:
        """Number of distinct (group, image) pairs recorded."""
        self._ready()
        return int(
            self._db.execute("SELECT COUNT(*) FROM (SELECT 1 FROM caps GROUP BY grp, image)").fetchone()[0]
        )

    def groups(self) -> Iterator[tuple[str, str, list[str]]]:
        """Yield `(group, image, captions)` sorted by group then image, captions in insertion order."""
        self._ready()
        current: tuple[str, str] | None = None
        captions: list[str] = []
        for grp, image, caption in self._db.execute(
            "SELECT grp, image, caption FROM caps ORDER BY grp, image, ord"
        ):
            if (grp, image) != current:
                if current is not None:
                    yield current[0], current[1], captions
                current, captions = (grp, image), []
            captions.append(caption)
        if current is not None:
            yield current[0], current[1], captions

    def names_without_captions(self) -> int:
        """Recorded file names that no caption's image (any group) refers to."""
        self._ready()
        query = "SELECT COUNT(*) FROM files WHERE name NOT IN (SELECT image FROM caps)"
        return int(self._db.execute(query).fetchone()[0])

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> CaptionJoin:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class ImageFile:
    """An image on disk, checked: its bytes (unchanged), shard member extension and size in pixels."""

    data: bytes
    ext: str  # "jpg" | "png" (from the decoded header, not the file name)
    width: int
    height: int


_FORMATS = {"JPEG": "jpg", "PNG": "png"}


def probe_image(path: Path) -> ImageFile | str:
    """Read `path` and check its header with PIL; return an `ImageFile` or the skip reason.

    Reasons: "missing image", "unreadable image" (not an image, truncated header), "unsupported image
    format" (a readable image that is neither JPEG nor PNG: shards hold only those, bytes never re-encoded).
    """
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "missing image"
    except (IsADirectoryError, PermissionError):
        return "unreadable image"
    try:
        with Image.open(io.BytesIO(data)) as im:
            ext, (width, height) = _FORMATS.get(str(im.format)), im.size
    except (UnidentifiedImageError, OSError, ValueError):
        return "unreadable image"
    if ext is None:
        return "unsupported image format"
    return ImageFile(data, ext, int(width), int(height))


def check_files(paths: list[Path], what: str) -> None:
    """Raise InputFileError naming the first of `paths` that is not a readable file."""
    for path in paths:
        if not Path(path).is_file():
            raise InputFileError(f"{path}: {what} not found")


def check_dirs(paths: list[Path], what: str) -> None:
    """Raise InputFileError naming the first of `paths` that is not a folder."""
    for path in paths:
        if not Path(path).is_dir():
            raise InputFileError(f"{path}: {what} not found")


def source_sizes(paths: list[Path]) -> dict[str, int]:
    """{path: bytes} of the input files, for the manifest."""
    return {str(p): Path(p).stat().st_size for p in paths}


class SkipTally:
    """Counted skips by reason, with the first few places of each (for the CLI summary and manifest).

    `strict=True`: the first skip raises InputFileError "`where`: `reason`" instead (one line).
    """

    def __init__(self, strict: bool = False, examples: int = 3) -> None:
        self.strict, self.max_examples = strict, examples
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def skip(self, reason: str, where: str) -> None:
        if self.strict:
            raise InputFileError(f"{where}: {reason}")
        self.counts[reason] = self.counts.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < self.max_examples:
            shown.append(where)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self, seen: int) -> dict:
        """Counts: `{"seen", "used" (= seen - skipped), "skipped": {reason: n}, "examples"}`."""
        return {
            "seen": seen,
            "used": seen - self.total,
            "skipped": dict(self.counts),
            "examples": self.examples,
        }


def stream_samples(
    items: Iterable[Any],
    make_sample: Callable[[Any], dict[str, Any] | None],
    progress: Callable[[int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The readers' loop: `make_sample(item)` per item (None = skipped, the reader counted why), and
    `progress(1)` per item, written or skipped."""
    for item in items:
        sample = make_sample(item)
        if progress is not None:
            progress(1)
        if sample is not None:
            yield sample
