"""Run the real `openseg` command in a subprocess, as a user would (`run_cli`), or through the same
`cli.app.main(argv)` in this process (`run_main`: same error handling and output, no interpreter start-up,
for cases that would otherwise spend most of their time importing torch)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import traceback
from contextlib import redirect_stderr, redirect_stdout
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


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_main(*args: str | Path) -> subprocess.CompletedProcess:
    """`openseg ARGS` through `main(argv)` in this process, as a CompletedProcess for the same asserts."""
    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            from openseg_cli.cli.app import main

            main([str(a) for a in args])
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else int(exit.code is not None)
        except BaseException:  # noqa: BLE001 - an escaped exception is what a user would see as a traceback
            err.write(traceback.format_exc())
            code = 1
    stdout, stderr = (_ANSI.sub("", s.getvalue()) for s in (out, err))
    return subprocess.CompletedProcess(list(map(str, args)), code, stdout, stderr)


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
