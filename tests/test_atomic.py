"""Atomic writes: whole file or nothing, no temp files left, the usual permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from openseg_cli.atomic import atomic_write, atomic_write_json, atomic_write_text, remove_stale_temps


def test_written_file_gets_umask_permissions_not_mkstemps_0600(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "report.html", "<p>hi</p>")
    finally:
        os.umask(mask)
    # mode computed at import from the process umask; 0o022 is the usual one, and what CI runs with
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044  # group and others can read it
    assert path.read_text() == "<p>hi</p>"


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "m.json", {"a": 1})

    def explode(file) -> None:
        file.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    assert path.read_text() == '{\n "a": 1\n}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_stale_temp_files_of_a_killed_writer_are_removed_and_nothing_else(tmp_path: Path) -> None:
    import subprocess
    import sys

    # A writer killed (SIGKILL) in the middle of atomic_write: its temp file stays behind.
    script = (
        "import os, signal, sys\n"
        "from openseg_cli.atomic import atomic_write\n"
        "atomic_write(sys.argv[1], lambda f: (f.write(b'half'), os.kill(os.getpid(), signal.SIGKILL)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a.progress.json")])
    assert done.returncode != 0
    (tmp_path / "a.progress.json.keep").write_text("x")
    (tmp_path / ".other.json.abc.tmp").write_text("not ours")
    leftovers = [p.name for p in tmp_path.glob(".a.progress.json.*.tmp")]
    assert len(leftovers) == 1
    assert remove_stale_temps(tmp_path, "a*") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.json.abc.tmp", "a.progress.json.keep"]
