"""text/ is pure python + stanza: no lightning, typer or rich; stanza and torch load only with a pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openseg_cli.text

FORBIDDEN = ("lightning", "pytorch_lightning", "typer", "rich", "stanza", "torch")


def test_import_is_light() -> None:
    code = (
        "import sys, openseg_cli.text, openseg_cli.text.gold, openseg_cli.text.nouns;"
        f"print(sorted(m for m in {FORBIDDEN!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_sources_never_import_app_layers() -> None:
    folder = Path(openseg_cli.text.__file__).parent
    for path in folder.glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                assert words[1].split(".")[0] not in ("lightning", "pytorch_lightning", "typer", "rich"), path
