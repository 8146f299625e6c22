"""Atomic writes: whole file or nothing, no temp files left, the usual permissions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from openseg_cli.atomic import atomic_write, atomic_write_json, atomic_write_text


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
