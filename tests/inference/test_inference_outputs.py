"""Per-query reports and the three files of a prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

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


def test_background_classes_are_written_as_unknown_and_reported_apart(tmp_path):
    """Queries cat, dog; background sky. Labels use the full vocabulary (2 = sky)."""
    labels = torch.tensor([[0, 2, 2], [1, -1, 2]])
    probs = torch.tensor(
        [
            [[0.7, 0.1, 0.2], [0.1, 0.3, 0.1]],  # cat
            [[0.2, 0.1, 0.2], [0.6, 0.3, 0.1]],  # dog
            [[0.1, 0.8, 0.6], [0.3, 0.4, 0.8]],  # sky (background)
        ]
    )
    paths = write_prediction(tmp_path, "a", np.zeros((2, 3, 3), np.uint8), labels, probs, ["cat", "dog"],
                             background=[["sky", "clouds"]])  # fmt: skip
    document = json.loads(paths["json"].read_text())
    assert [q["name"] for q in document["queries"]] == ["cat", "dog"]
    assert [q["area_px"] for q in document["queries"]] == [1, 1]
    (sky,) = document["background"]
    assert sky["index"] == 0 and sky["synonyms"] == ["sky", "clouds"] and sky["area_px"] == 3
    assert sky["mean_score"] == pytest.approx((0.8 + 0.6 + 0.8) / 3)
    assert document["unknown"]["area_px"] == 4  # 3 background + 1 below threshold
    assert read_label_png(paths["labels"]).tolist() == [[0, -1, -1], [1, -1, -1]]
    assert document["labels_png"]["encoding"] == "uint8-palette"


def test_mask_pngs_one_per_query_in_query_order(tmp_path):
    labels, probs, names = _example()
    image = np.zeros((2, 3, 3), np.uint8)
    paths = write_prediction(tmp_path, "img", image, labels, probs, names, masks="png")
    document = json.loads(paths["json"].read_text())
    assert document["files"]["masks"] == "img_masks"
    assert sorted(p.name for p in (tmp_path / "img_masks").iterdir()) == [
        "0-cat.png",
        "1-dog.png",
        "2-grass.png",
    ]
    for query in document["queries"]:
        mask = np.array(Image.open(tmp_path / query["mask"]))
        assert set(np.unique(mask)) <= {0, 255}
        assert np.array_equal(mask == 255, labels.numpy() == query["index"])
        assert int((mask == 255).sum()) == query["area_px"]


def test_rle_masks_round_trip_through_pycocotools(tmp_path):
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(3)
    labels = torch.from_numpy(rng.integers(-1, 3, size=(17, 23)))
    probs = torch.rand(3, 17, 23)
    paths = write_prediction(tmp_path, "r", np.zeros((17, 23, 3), np.uint8), labels, probs,
                             ["a", "b", "c"], masks="rle")  # fmt: skip
    document = json.loads(paths["json"].read_text())
    assert not (tmp_path / "r_masks").exists()
    for query in document["queries"]:
        rle = query["rle"]
        assert rle["size"] == [17, 23] and isinstance(rle["counts"], str)
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        assert np.array_equal(decoded.astype(bool), labels.numpy() == query["index"])
        assert (
            int(decoded.sum())
            == query["area_px"]
            == int(mask_utils.area({**rle, "counts": rle["counts"].encode()}))
        )


@pytest.mark.parametrize(
    ("index", "name", "count", "expected"),
    [(3, "Traffic Light", 12, "03-traffic-light.png"), (0, "../etc/passwd", 2, "0-etc-passwd.png"),
     (1, "日本", 2, "1-query.png"), (0, "x" * 80, 1, "0-" + "x" * 40 + ".png")],
)  # fmt: skip
def test_mask_file_names_are_safe_slugs(index, name, count, expected):
    from openseg_cli.inference.outputs import mask_file_name

    assert mask_file_name(index, name, count) == expected


def test_unknown_mask_format_is_refused(tmp_path):
    labels, probs, names = _example()
    with pytest.raises(ValueError, match="masks must be one of"):
        write_prediction(tmp_path, "x", np.zeros((2, 3, 3), np.uint8), labels, probs, names, masks="zip")
    assert not list(tmp_path.iterdir())
