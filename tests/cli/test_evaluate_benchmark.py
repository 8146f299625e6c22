"""The real `openseg evaluate --benchmark` command on prepared benchmark folders, and its bad inputs."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from openseg_cli.data.semantic import LAYOUTS
from tests.cli.helpers import assert_clean_error, assert_ok, run_cli
from tests.engine.benchmark_helpers import write_ade150_sample, write_label, write_synthetic_benchmark
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    write_tiny_checkpoint(path, tiny_recipe("data.crop_size=64"))
    return path


def test_ade150_sample_end_to_end(shared_data, tmp_path, checkpoint) -> None:
    root = write_ade150_sample(shared_data, tmp_path / "datasets")
    out = tmp_path / "out"
    args = ["--benchmark", "ade150", "--data", root, "--size", "64", "--workers", "0", "--examples", "2"]
    result = run_cli("evaluate", checkpoint, *args, "--templates", "san14", "--out", out)
    assert_ok(result)
    doc = json.loads((out / "metrics.json").read_text())
    meta = doc["meta"]
    assert (meta["benchmark"], meta["convention"], meta["mode"], meta["size"]) == (
        "ade150",
        "detectron2",
        "whole",
        64,
    )
    assert meta["images"] == 3 and meta["skips"] == {} and meta["templates"] == "san14"
    assert doc["num_classes"] == 150 and len(doc["per_class"]) == 150
    assert doc["per_class"][12]["name"] == "person"
    assert "val/miou_ade150" in meta["scalars"]
    assert "on 3 images" in result.stdout
    if importlib.util.find_spec("openseg_cli.eval.html_report"):  # the HTML writer is in this build
        html = (out / "report.html").read_text()
        assert "report →" in result.stdout and "ADE_val_00000001" in html and "ADE_val_00000003" in html


def test_data_defaults_to_detectron2_datasets_and_no_report(tmp_path, checkpoint, monkeypatch) -> None:
    write_synthetic_benchmark(tmp_path / "d2", "voc20", [(30, 41), (25, 25), (19, 33)])
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "d2"))
    out = tmp_path / "out"
    args = ["--benchmark", "voc20", "--size", "64", "--sliding-window", "--workers", "0", "--no-report"]
    assert_ok(run_cli("evaluate", checkpoint, *args, "--out", out))
    meta = json.loads((out / "metrics.json").read_text())["meta"]
    assert (meta["benchmark"], meta["mode"], meta["images"]) == ("voc20", "sliding", 3)
    assert meta["data"] == str(tmp_path / "d2") and not (out / "report.html").exists()


def _ade(tmp_path):
    write_synthetic_benchmark(tmp_path / "data", "ade150", [(16, 16), (16, 16)])
    return tmp_path / "data", LAYOUTS[("ade150", "detectron2")]


def _missing_folder(tmp_path):
    return ["--data", tmp_path / "empty"], ["annotations_detectron2/validation", "not found"]


def _missing_label_strict(tmp_path):
    root, layout = _ade(tmp_path)
    (root / layout.label_dir / "img_001.png").unlink()
    return ["--data", root, "--strict"], ["image without label", "img_001.jpg"]


def _label_out_of_range(tmp_path):
    root, layout = _ade(tmp_path)
    write_label(root / layout.label_dir / "img_001.png", np.full((16, 16), 151))
    return ["--data", root], ["img_001.png holds value 151"]


def _wrong_class_count(tmp_path):
    root, _ = _ade(tmp_path)
    (tmp_path / "classes.txt").write_text("cat\ndog, puppy\n")
    return ["--data", root, "--classes", tmp_path / "classes.txt"], ["2 classes but ade150 has 150"]


def _unknown_benchmark(tmp_path):
    return ["--data", tmp_path, "--benchmark", "cityscapes"], ["unknown benchmark 'cityscapes'"]


@pytest.mark.parametrize(
    "case",
    [_missing_folder, _missing_label_strict, _label_out_of_range, _wrong_class_count, _unknown_benchmark],
)
def test_bad_input_gives_one_clean_error(tmp_path, checkpoint, case) -> None:
    extra, needles = case(tmp_path)
    benchmark = [] if "--benchmark" in extra else ["--benchmark", "ade150"]
    args = [*benchmark, *extra, "--size", "64", "--workers", "0", "--out", tmp_path / "out"]
    assert_clean_error(run_cli("evaluate", checkpoint, *args), *needles)


def test_shards_and_benchmark_are_exclusive(tmp_path, checkpoint) -> None:
    result = run_cli("evaluate", checkpoint, "--shards", tmp_path, "--benchmark", "ade150")
    assert_clean_error(result, "exactly one of --shards DIR or --benchmark NAME")
    result = run_cli("evaluate", checkpoint, "--shards", tmp_path, "--devices", "2")
    assert_clean_error(result, "need a prepared --benchmark")


def test_a_missing_label_is_a_counted_skip_without_strict(tmp_path, checkpoint) -> None:
    root, layout = _ade(tmp_path)
    (root / layout.label_dir / "img_001.png").unlink()
    out = tmp_path / "out"
    args = ["--benchmark", "ade150", "--data", root, "--size", "64", "--workers", "0", "--no-report"]
    result = run_cli("evaluate", checkpoint, *args, "--out", out)
    assert_ok(result)
    meta = json.loads((out / "metrics.json").read_text())["meta"]
    assert meta["images"] == 1 and meta["skips"] == {"image without label": 1}
    assert "1 files skipped" in result.stdout
