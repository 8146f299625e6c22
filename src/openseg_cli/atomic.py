"""Atomic file writes: write to a temporary file beside the target, then `os.replace` it into place.

A reader (or a resumed job) sees the old file or the whole new one, never a half-written one; a write that
fails leaves no temporary file behind. Pure standard library, so every package may use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; a finished output should get the usual 0666 & ~umask, like open() gives.
_FILE_MODE = 0o666 & ~_read_umask()


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call `write(file)` on a binary temporary file beside `path`, fsync it, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            os.fchmod(file.fileno(), _FILE_MODE)
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """UTF-8 text, atomically."""
    return atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, obj: Any, indent: int = 1, allow_nan: bool = True) -> Path:
    """JSON (non-ASCII kept as is), atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=allow_nan))


def remove_stale_temps(folder: str | Path, name_glob: str = "*") -> int:
    """Delete the temporary files `atomic_write` leaves when its process is killed (SIGKILL, power loss:
    its own cleanup never runs) for targets matching `name_glob` in `folder`; returns how many.

    Call it only where no other process is writing those targets (a resumed job's own folder).
    """
    removed = 0
    for tmp in Path(folder).glob(f".{name_glob}.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed += 1
    return removed
