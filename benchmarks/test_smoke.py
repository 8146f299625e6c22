"""Smoke test: the benchmarks run end to end on tiny inputs and write their JSON (about 10 s).

Not part of `make test` (pytest collects tests/ only): `.venv/bin/pytest -q benchmarks/test_smoke.py`.
The figures of such tiny runs mean nothing; only the keys and the exit codes are checked.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _load(name: str):
    sys.path.insert(0, str(HERE))  # for `_common`
    spec = importlib.util.spec_from_file_location(f"openseg_bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loader_benchmark_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "loader.json"
    args = ["--images", "8", "--batch-size", "4", "--repeats", "1", "--image-size", "128", "--crop", "128"]
    assert _load("loader").main([*args, "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["speedup"] > 0 and figures["decode_fraction"] > 0
    assert set(figures["results"]) == {"decode", "openseg loader", "naive mapper"}


def test_nouns_benchmark_writes_json_or_skips(tmp_path: Path) -> None:
    nouns = _load("nouns")
    out = tmp_path / "nouns.json"
    args = ["--captions-count", "8", "--repeats", "1", "--json", str(out)]
    if nouns.missing_inputs(nouns.parse_args(args)):
        assert nouns.main(args) == 0 and not out.exists()
        pytest.skip("stanza model or COCO captions absent")
    assert nouns.main(args) == 0  # 1 would mean batched and per-caption words differ
    figures = json.loads(out.read_text())
    assert figures["identical_words"] and figures["speedup"] > 0


def test_predict_benchmark_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "predict.json"
    tiny = ["model.head_width=16", "model.fpn_dim=16", "model.num_queries=4", "model.decoder_layers=1"]
    args = ["--clip", "openseg-tiny-rn", "--size", "64", "--classes", "5", "--repeats", "1", "--images", "1"]
    args += ["--matmul-n", "128", "--json", str(out), *(f"--set={s}" for s in tiny)]
    assert _load("predict").main(args) == 0
    figures = json.loads(out.read_text())
    assert figures["matmul_fraction"] > 0 and figures["text_cache_speedup"] > 0
    assert figures["forward_gflop"] > 0 and figures["seconds_median"]["predict"] > 0


def test_ingest_benchmark_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    assert _load("ingest").main(["--records", "40", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["memory_growth"] > 0 and set(figures["runs"]) == {"40", "400"}


def test_eval_benchmark_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    tiny = ["model.head_width=16", "model.fpn_dim=16", "model.num_queries=4", "model.decoder_layers=1"]
    args = ["--clip", "openseg-tiny-rn", "--size", "64", "--images", "2", "--height", "48", "--width", "64"]
    args += ["--repeats", "1", "--confusion-images", "2", "--json", str(out), *(f"--set={s}" for s in tiny)]
    assert _load("eval").main(args) == 0
    figures = json.loads(out.read_text())
    assert 0 < figures["forward_fraction"] < 1 and 0 < figures["forward_fraction_cold"] < 1
    assert figures["speedup"] > 0 and figures["benchmark"] == "ade847"
    for run in ("seconds_cold", "seconds_warm"):
        stages = figures[run]
        assert stages["forward"] > 0 and stages["text"] > 0 and stages["upsample"] > 0
        parts = sum(v for k, v in stages.items() if k != "total")
        assert parts == pytest.approx(stages["total"])  # the stages and `other` add up to the wall time
