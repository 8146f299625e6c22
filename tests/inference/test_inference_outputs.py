"""Per-query reports and the three files of a prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from openseg_cli.inference.outputs import atomic_write, query_report, write_prediction
from openseg_cli.inference.visualize import read_label_png


def _example():
    labels = torch.tensor([[0, 0, 2], [2, -1, 2]])
    probs = torch.tensor(
        [
            [[0.8, 0.6, 0.1], [0.2, 0.3, 0.1]],  # class 0
            [[0.1, 0.2, 0.2], [0.1, 0.3, 0.2]],  # class 1: never the label, best 0.3
            [[0.1, 0.2, 0.7], [0.7, 0.4, 0.7]],  # class 2
        ]
    )
    return labels, probs, ["cat", ["dog", "puppy"], "grass"]


def test_query_report_by_hand():
    labels, probs, names = _example()
    report = query_report(labels, probs, names)
    assert [q["name"] for q in report] == ["cat", "dog", "grass"]
    assert report[1]["synonyms"] == ["dog", "puppy"]
    assert [q["area_px"] for q in report] == [2, 0, 3]
    assert [q["area_fraction"] for q in report] == pytest.approx([2 / 6, 0.0, 3 / 6])
    assert [q["mean_score"] for q in report] == pytest.approx([(0.8 + 0.6) / 2, 0.0, (0.7 + 0.7 + 0.7) / 3])
    assert [q["max_score"] for q in report] == pytest.approx([0.8, 0.3, 0.7])


def test_query_report_refuses_mismatched_scores():
    labels, probs, names = _example()
    with pytest.raises(ValueError, match="expected labels"):
        query_report(labels, probs[:2], names)


def test_write_prediction_files(tmp_path):
    labels, probs, names = _example()
    image = np.full((2, 3, 3), 128, dtype=np.uint8)
    paths = write_prediction(tmp_path / "out", "img_1", image, labels, probs, names, meta={"threshold": 0.04})
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "img_1.json",
        "img_1_labels.png",
        "img_1_overlay.png",
    ]
    document = json.loads(paths["json"].read_text())
    assert document["image"] == {"height": 2, "width": 3}
    assert document["labels_png"]["encoding"] == "uint8-palette"
    assert document["meta"] == {"threshold": 0.04}
    labelled = int((labels >= 0).sum())
    assert sum(q["area_px"] for q in document["queries"]) == labelled
    assert document["unknown"]["area_px"] == labels.numel() - labelled
    assert np.array_equal(read_label_png(paths["labels"]), labels.numpy())


def test_write_prediction_refuses_a_path_as_stem(tmp_path):
    labels, probs, names = _example()
    with pytest.raises(ValueError, match="plain file name"):
        write_prediction(tmp_path, "../escape", np.zeros((2, 3, 3), np.uint8), labels, probs, names)


def test_atomic_write_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "file.json"
    target.write_text("old")

    def broken(file):
        file.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]
