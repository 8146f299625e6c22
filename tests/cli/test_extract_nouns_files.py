"""`openseg extract-nouns` on caption files through the real CLI: resume after SIGKILL, bad input,
--strict, --gold-eval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.helpers import assert_clean_error, assert_ok, run_cli


@pytest.fixture()
def lexicon_args(tmp_path: Path) -> list[str]:
    """The offline lexicon fallback (no stanza model in an empty folder): fast, deterministic words."""
    classes = tmp_path / "classes.txt"
    classes.write_text("dog\ncat\nsofa\nclock tower\n")
    return ["--offline", "--model-dir", str(tmp_path / "no-models"), "--fallback-lexicon", str(classes)]


BAD_JSONL = b"\n".join([
    b'{"image_id": 1, "caption": "Two dogs on a sofa."}',
    b"{broken",
    b'{"image_id": 2}',
    b'{"image_id": 3, "caption": ""}',
    b'{"image_id": 4, "caption": "A cat under a clock tower."}',
    b'{"image_id": 5, "caption": "caf\xe9"}',
])  # fmt: skip


def test_bad_lines_are_counted_with_line_numbers(tmp_path: Path, lexicon_args: list[str]) -> None:
    source = tmp_path / "caps.jsonl"
    source.write_bytes(BAD_JSONL)
    result = run_cli("extract-nouns", source, *lexicon_args)
    assert_ok(result)
    out = [json.loads(line) for line in (tmp_path / "caps.jsonl.words.jsonl").read_text().splitlines()]
    assert out == [
        {"id": 1, "line": 1, "caption": "Two dogs on a sofa.", "words": ["dog", "sofa"]},
        {"id": 4, "line": 5, "caption": "A cat under a clock tower.", "words": ["cat", "clock tower"]},
    ]
    text = " ".join(result.stdout.split())
    for needle in ("1 × invalid JSON (line 2)", "1 × missing caption field (line 3)",
                   "1 × empty caption (line 4)", "1 × non-UTF-8 line (line 6)"):  # fmt: skip
        assert needle in text, text


def test_strict_and_usage_errors_are_one_clean_line(tmp_path: Path, lexicon_args: list[str]) -> None:
    source = tmp_path / "caps.jsonl"
    source.write_bytes(BAD_JSONL)
    assert_clean_error(
        run_cli("extract-nouns", source, *lexicon_args, "--strict"), "caps.jsonl:2: invalid JSON"
    )
    assert not (tmp_path / "caps.jsonl.words.jsonl").exists()
    assert_clean_error(run_cli("extract-nouns", tmp_path / "absent.txt"), "caption file not found")
    assert_clean_error(run_cli("extract-nouns"), "INPUT", "--gold-eval")
    assert_clean_error(run_cli("extract-nouns", source, "--workers", "0"), "--workers")
    assert_clean_error(run_cli("extract-nouns", source, "--device", "tpu"), "cpu or cuda")


@pytest.mark.stanza
def test_sigkill_then_rerun_gives_the_uninterrupted_output(
    tmp_path: Path, stanza_model_dir: Path, shared_data: Path
) -> None:
    annotations = json.loads((shared_data / "coco-captions-val2017" / "captions_val2017.json").read_text())
    source = tmp_path / "coco.txt"
    source.write_text(
        "".join(a["caption"].replace("\n", " ") + "\n" for a in annotations["annotations"][:600])
    )
    out, parts = tmp_path / "words.jsonl", tmp_path / "words.jsonl.parts"
    model = ["--offline", "--model-dir", str(stanza_model_dir)]
    args = ["extract-nouns", str(source), "--out", str(out), *model, "--chunk-size", "60"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    process = subprocess.Popen([sys.executable, "-m", "openseg_cli", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while (
        not (parts / "chunk-000000.jsonl").exists() and process.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    landed = len(list(parts.glob("chunk-*.jsonl")))
    assert not out.exists() and 1 <= landed < 10, f"killed too late or too early: {landed} chunks"

    result = run_cli(*args)
    assert_ok(result)
    assert f"({landed} already done)" in " ".join(result.stdout.split())
    assert not parts.exists()

    from openseg_cli.engine.nouns import extract_nouns_from_file
    from openseg_cli.engine.nouns_parallel import ExtractorSpec

    reference = tmp_path / "reference.jsonl"
    extractor = ExtractorSpec(model_dir=str(stanza_model_dir), offline=True).build(num_threads=1)
    extract_nouns_from_file(source, "text", reference, extractor, chunk_size=60)
    assert out.read_bytes() == reference.read_bytes()
    lines = [json.loads(line)["line"] for line in out.read_text().splitlines()]
    assert lines == list(range(1, 601))  # every caption exactly once, in order


@pytest.mark.stanza
def test_gold_eval_prints_precision_and_recall(stanza_model_dir: Path, shared_data: Path) -> None:
    conllu = shared_data / "ud-english-ewt" / "en_ewt-ud-test.conllu"
    common = ["--offline", "--model-dir", stanza_model_dir, "--gold-eval", conllu]
    result = run_cli("extract-nouns", *common, "--gold-limit", "100")
    assert_ok(result)
    text = " ".join(result.stdout.split())
    assert "(100 sentences)" in text
    precision = float(text.split("precision ")[1].split(",")[0])
    recall = float(text.split("recall ")[1].split(",")[0])
    assert 0.5 < precision < 1 and 0.5 < recall < 1  # the small model: ~0.7 / ~0.8 on the whole file
    assert_clean_error(run_cli("extract-nouns", *common, "--filter", "all"), "noun filter only")
