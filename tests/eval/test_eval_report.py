"""metrics.json and the CLI table rows."""

from __future__ import annotations

import json
import math

import pytest
import torch

from openseg_cli.eval.grounding import present_classes, to_global_labels
from openseg_cli.eval.metrics import SegmentationMetrics
from openseg_cli.eval.report import format_table, write_metrics_json


def _metrics():
    metric = SegmentationMetrics(4)
    # class 0 perfect, class 1 IoU 1/2, class 2 IoU 0, class 3 has no ground truth.
    metric.update(torch.tensor([[0, 0, 1, 2, 3]]), torch.tensor([[0, 0, 1, 1, 2]]))
    return metric.compute()


def test_write_metrics_json(tmp_path):
    path = write_metrics_json(
        tmp_path / "eval" / "metrics.json",
        _metrics(),
        ["wall", ["sky", "skies"], "road", "cat"],
        {"benchmark": "toy"},
    )
    document = json.loads(path.read_text())  # strict JSON: no NaN
    assert document["meta"] == {"benchmark": "toy"}
    assert document["miou"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert [c["name"] for c in document["per_class"]] == ["wall", "sky", "road", "cat"]
    assert [c["iou"] for c in document["per_class"]] == [1.0, 0.5, 0.0, None]
    assert [c["gt_pixels"] for c in document["per_class"]] == [2, 2, 1, 0]
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary file left


def test_nan_summary_becomes_null(tmp_path):
    metric = SegmentationMetrics(1)
    metric.update(torch.tensor([[0]]), torch.tensor([[-1]]))
    assert math.isnan(metric.compute()["miou"])
    document = json.loads(write_metrics_json(tmp_path / "m.json", metric.compute(), ["a"], {}).read_text())
    assert document["miou"] is None and document["per_class"][0]["iou"] is None


def test_format_table():
    rows = format_table(_metrics(), ["wall", "sky", "road", "cat"], top=1)
    assert rows[0] == ("summary", "mIoU", "50.00")
    assert ("summary", "classes evaluated", "3 / 4") in rows
    assert [r for r in rows if r[0] != "summary"] == [("best", "wall", "100.00"), ("worst", "road", "0.00")]
    all_rows = format_table(_metrics(), ["wall", "sky", "road", "cat"], top=10)
    listed = [r[1] for r in all_rows if r[0] != "summary"]
    assert sorted(listed) == ["road", "sky", "wall"]  # each once; "cat" (no ground truth) left out


def test_class_count_mismatch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="class names"):
        format_table(_metrics(), ["wall"])
    with pytest.raises(ValueError, match="class names"):
        write_metrics_json(tmp_path / "m.json", _metrics(), ["wall"], {})


def test_grounding_vocabulary_round_trip():
    target = torch.tensor([[7, 7, -1], [2, 9, 2]])
    ids = present_classes(target)
    assert ids.tolist() == [2, 7, 9]
    local = torch.tensor([[1, 1, 0], [0, 2, -1]])
    assert to_global_labels(local, ids).tolist() == [[7, 7, 2], [2, 9, -1]]
    with pytest.raises(ValueError, match="only 3 classes"):
        to_global_labels(torch.tensor([3]), ids)
