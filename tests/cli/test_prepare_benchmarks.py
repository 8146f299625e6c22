"""The real `openseg prepare ade150|ade847|pc59|pc459|voc20` commands: outputs, reports, clean errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.cli.helpers import assert_clean_error, assert_ok, run_cli
from tests.data.test_benchmark_prepare_pascal import LABEL_MAP, PC59_EXPECTED, write_pascal_context
from tests.data.test_benchmark_prepare_voc import VOC_LABEL, write_voc

INPUT = 3  # InputFileError's exit code


def test_ade150_on_real_samples_then_resume(shared_data, tmp_path):
    shutil.copytree(
        shared_data / "ade20k-150-sceneparsing" / "ADEChallengeData2016", tmp_path / "ADEChallengeData2016"
    )
    first = run_cli("prepare", "ade150", tmp_path)
    assert_ok(first)
    assert "3 prepared (3 written" in " ".join(first.stdout.split())
    second = run_cli("prepare", "ade150", tmp_path)
    assert_ok(second)
    assert "3 already there" in " ".join(second.stdout.split())
    report_path = tmp_path / "ADEChallengeData2016" / "annotations_detectron2" / "openseg_prepare_ade150.json"
    report = json.loads(report_path.read_text())
    assert report["counts"]["already_prepared"] == 3 and report["command"][1:3] == ["prepare", "ade150"]


def test_pc59_and_pc459_conventions(tmp_path):
    root = write_pascal_context(tmp_path, {"2008_000002": LABEL_MAP}, ["2008_000002"])
    assert_ok(run_cli("prepare", "pc59", root))
    label = np.asarray(Image.open(root / "VOCdevkit/VOC2010/annotations_detectron2/pc59_val/2008_000002.png"))
    np.testing.assert_array_equal(label, PC59_EXPECTED)
    result = run_cli("prepare", "pc459", root, "--convention", "san", "--out", tmp_path / "san")
    assert_ok(result)
    assert "pc459 (san, ignore 65535, uint16)" in " ".join(result.stdout.split())
    tif = np.asarray(Image.open(tmp_path / "san" / "pcontext_full" / "val" / "label" / "2008_000002.tif"))
    assert tif.dtype == np.uint16 and tif[1, 0] == 65535 and tif[0, 0] == 1


def test_voc20_strict_stops_at_the_first_problem(tmp_path):
    bad = VOC_LABEL.copy()
    bad[0, 0] = 42
    root = write_voc(tmp_path, {"2007_000033": VOC_LABEL, "2007_000042": bad}, ["2007_000033", "2007_000042"])
    lenient = run_cli("prepare", "voc20", root)
    assert_ok(lenient)
    assert "1 × class id out of range" in " ".join(lenient.stdout.split())
    strict = run_cli("prepare", "voc20", root, "--strict")
    assert strict.returncode == INPUT
    assert_clean_error(strict, "class id out of range", "2007_000042", "--strict")


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("ade150", "ADEChallengeData2016"),
        ("ade847", "ADE20K_2021_17_01"),
        ("pc59", "VOCdevkit/VOC2010"),
        ("pc459", "VOCdevkit/VOC2010"),
        ("voc20", "VOCdevkit/VOC2012"),
    ],
)
def test_missing_download_is_one_clean_line(tmp_path, command, needle):
    result = run_cli("prepare", command, tmp_path)
    assert result.returncode == INPUT
    text = assert_clean_error(result, needle)
    assert text.count("error:") == 1


def test_bad_convention_is_a_usage_error(tmp_path):
    result = run_cli("prepare", "pc459", tmp_path, "--convention", "mmseg")
    assert result.returncode == 2 and "Traceback" not in result.stderr
