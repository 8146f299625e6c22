"""Run the real `openseg` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str | Path, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", COLUMNS="200", PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "openseg_cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def assert_clean_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit, no traceback, an `error:` line on stderr that mentions every needle."""
    assert result.returncode != 0, f"expected failure, got exit 0\n{result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert lines, f"no error line on stderr:\n{result.stderr}"
    text = " ".join(result.stderr.split())
    for needle in needles:
        assert needle in text, f"{needle!r} not in stderr: {text}"
    return text
