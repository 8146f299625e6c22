"""eval/ and inference/ are used by the engine and the CLI, so they must not import either's libraries.

A source scan (milliseconds) rather than a fresh interpreter (seconds); the packages they import in turn
(losses, models, errors) keep the same rule, so direct imports are what these two packages control.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "openseg_cli"
BANNED = {"lightning", "pytorch_lightning", "typer", "rich", "openseg_cli.engine", "openseg_cli.cli"}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["eval", "inference"])
def test_no_lightning_typer_rich_engine_or_cli(package):
    files = sorted((SRC / package).glob("*.py"))
    assert files
    for path in files:
        bad = {n for n in _imports(path) if any(n == b or n.startswith(b + ".") for b in BANNED)}
        assert not bad, f"{path.name} imports {sorted(bad)}"
