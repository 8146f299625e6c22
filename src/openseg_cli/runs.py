"""Run folders: `runs/<command>/<name>[N]/`, never overwriting an earlier run (ultralytics' convention)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
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


OWNER_FILE = ".owner.lock"


@contextmanager
def run_owner(run_dir: str | Path, command: str) -> Iterator[None]:
    """Own `run_dir` while the block runs: an exclusive lock on `run_dir/.owner.lock` holding our pid.

    A second job pointed at the same folder (e.g. two `train --out X` at once) gets a UsageError naming
    the folder and the owner's pid, instead of both writing the same checkpoints and logs. The lock is the
    process's: a killed job frees it, so a rerun resumes. No-op where `fcntl` is missing (Windows).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux/macOS
        yield
        return
    path = Path(run_dir) / OWNER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise UsageError(
                f"{run_dir} is in use by another openseg {command} ({owner}); wait for it to finish, or "
                "pass another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
