"""Run folders: `runs/<command>/<name>[N]/`, never overwriting an earlier run (ultralytics' convention)."""

from __future__ import annotations

import re
from pathlib import Path

from openseg_cli.errors import UsageError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_run_name(name: str) -> str:
    """`name` when it is a plain folder name; UsageError for slashes, leading dots or spaces."""
    if not _SAFE_NAME.match(name):
        raise UsageError(f"run name {name!r} must be letters, digits, '.', '_' or '-' (no slashes or spaces)")
    return name


def new_run_dir(command: str, name: str, root: str | Path = "runs") -> Path:
    """Create and return `root/command/name`, or `name2`, `name3`… when it exists already.

    Raises `UsageError` for a name that is not a plain folder name (slashes, leading dots, spaces).
    """
    check_run_name(name)
    parent = Path(root) / command
    parent.mkdir(parents=True, exist_ok=True)
    candidate, index = parent / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            index += 1
            candidate = parent / f"{name}{index}"


def output_dir(out: str | Path | None, command: str, name: str) -> Path:
    """`--out` when given (created, may exist: resumable jobs write into it), else a fresh run folder."""
    if out is None:
        return new_run_dir(command, name)
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return path
