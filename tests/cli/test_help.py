"""`openseg --help`, `--version` and every sub-command's `--help` work, show their key options, and stay
instant: none of them imports torch, lightning, open_clip or stanza."""

from __future__ import annotations

import subprocess
import sys

import pytest

from openseg_cli import __version__
from tests.cli.helpers import assert_ok, run_cli

# Each command with the options a user looks for first (the README's pipeline uses them).
COMMAND_OPTIONS = {
    "toy-data": ["--out", "--train", "--val", "--size", "--seed"],
    "prepare": ["coco", "narratives", "coco-json", "folder", "ade150", "ade847", "pc59", "pc459", "voc20"],
    "prepare pc459": ["--out", "--convention", "--split-file", "--strict"],
    "prepare coco": [
        "--split", "--out", "--source", "--strict", "--maxcount", "--no-captions",
        "--images", "--panoptic-json", "--panoptic-dir", "--captions", "--maxsize",
    ],
    "prepare narratives": ["--images", "--exclude-ade20k", "--split", "--out", "--strict", "--maxcount",
                           "--maxsize"],
    "prepare folder": ["--captions", "--split", "--out", "--strict", "--maxcount", "--maxsize"],
    "prepare coco-json": ["--images", "--captions", "--split", "--out", "--strict", "--maxsize"],
    "extract-nouns": ["--filter", "--model-dir", "--offline", "--fallback-lexicon", "--force", "--workers",
                      "--out", "--strict", "--gold-eval"],
    "train": ["--set", "--name", "--out", "--resume", "--devices", "--num-nodes", "--max-steps",
              "--accelerator", "--strict"],
    "evaluate": ["--shards", "--classes", "--mask-source", "--size", "--batch-size", "--out", "--device",
                 "--benchmark", "--data", "--convention", "--sliding-window", "--stride", "--strict",
                 "--devices", "--no-report", "--examples", "--clip", "--class-groups"],
    "pseudo-label": ["--teacher", "--min-confidence", "--min-area", "--max-masks", "--out", "--size",
                     "--accelerator", "--devices", "--num-nodes", "--workers", "--strict", "--maxcount"],
    "predict": ["--queries", "-q", "--classes", "--checkpoint", "-c", "--out", "--unknown-threshold",
                "--mask-source", "--device", "--batch-size", "--background", "--background-file", "--masks",
                "--max-pixels", "--strict", "--clip"],
    "export onnx": ["--out", "--size", "--queries", "-q", "--classes", "--templates", "--opset", "--force"],
    "export clip-data": ["--out", "--captions", "--maxcount", "--maxsize", "--overwrite"],
    "clip-train": ["--out", "--model", "--config-file", "--epochs", "--batch-size", "--lr", "--wd",
                   "--warmup", "--workers", "--seed", "--precision", "--device", "--captions", "--maxcount"],
}  # fmt: skip

HEAVY_MODULES = ("torch", "lightning", "open_clip", "stanza", "webdataset", "torchmetrics")


def test_top_level_help_lists_every_command_and_global_option() -> None:
    result = run_cli("--help")
    assert_ok(result)
    commands = ("toy-data", "prepare", "extract-nouns", "train", "clip-train", "evaluate", "pseudo-label",
                "predict", "export")  # fmt: skip
    for command in commands:
        assert command in result.stdout
    assert "--debug" in result.stdout and "--version" in result.stdout


def test_short_help_flag() -> None:
    result = run_cli("-h")
    assert_ok(result)
    assert "predict" in result.stdout


def test_version_prints_the_package_version() -> None:
    result = run_cli("--version")
    assert_ok(result)
    assert result.stdout.strip() == f"openseg {__version__}"


@pytest.mark.parametrize("command", list(COMMAND_OPTIONS))
def test_subcommand_help_shows_its_key_options(command: str) -> None:
    result = run_cli(*command.split(), "--help")
    assert_ok(result)
    words = result.stdout.split()
    for option in COMMAND_OPTIONS[command]:
        # Whole words: "--classes" must not be satisfied by "--no-captions"-like neighbours.
        assert option in words, f"{command} --help lacks {option}:\n{result.stdout}"


_PROBE = """
import sys
from openseg_cli.cli.app import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit as exit:
        assert exit.code in (0, None), (argv, exit.code)
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
assert not heavy, "imported by the help path: " + ", ".join(heavy)
"""


def test_help_and_version_do_not_import_heavy_libraries() -> None:
    """The help path stays instant: heavy imports live inside command functions (house rule)."""
    argvs = [["--version"], ["--help"]] + [[*c.split(), "--help"] for c in COMMAND_OPTIONS]
    code = _PROBE.format(argvs=argvs, heavy=HEAVY_MODULES)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
