"""`prepare voc20` on synthetic palette PNGs (known answers), and the shared preparer pieces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openseg_cli.data.benchmarks import plan_voc20, run_plan
from openseg_cli.data.benchmarks.common import locate_base, pair_files, write_label
from openseg_cli.errors import InputFileError

VOC_LABEL = np.array([[0, 1, 20, 255], [15, 15, 0, 7]], dtype=np.uint8)
VOC20_EXPECTED = np.array([[255, 0, 19, 255], [14, 14, 255, 6]], dtype=np.uint8)


def palette_png(path: Path, ids: np.ndarray) -> None:
    """A VOC-style label: mode P with a colour palette, pixel values = class ids."""
    image = Image.new("P", ids.shape[::-1])
    image.putdata(ids.astype(np.uint8).ravel().tolist())
    image.putpalette([c for i in range(256) for c in (i * 7 % 256, i * 13 % 256, i * 29 % 256)])
    image.save(path)


def write_voc(root: Path, labels: dict[str, np.ndarray], val_ids: list[str]) -> Path:
    """`root/VOCdevkit/VOC2012` with a JPEG and a palette PNG per label, and the segmentation val list."""
    voc = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    for key, ids in labels.items():
        Image.new("RGB", ids.shape[::-1], (120, 30, 60)).save(voc / "JPEGImages" / f"{key}.jpg")
        palette_png(voc / "SegmentationClass" / f"{key}.png", ids)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(val_ids) + "\n")
    return root


@pytest.fixture
def voc_root(tmp_path) -> Path:
    return write_voc(tmp_path / "data", {"2007_000033": VOC_LABEL, "2007_000042": VOC_LABEL.T.copy()},
                     ["2007_000033", "2007_000042"])  # fmt: skip


def test_palette_png_keeps_ids(tmp_path):
    palette_png(tmp_path / "x.png", VOC_LABEL)
    image = Image.open(tmp_path / "x.png")
    assert image.mode == "P"
    np.testing.assert_array_equal(np.asarray(image), VOC_LABEL)


def test_voc20_known_answers(voc_root):
    report = run_plan(plan_voc20(voc_root))
    out = voc_root / "VOCdevkit" / "VOC2012" / "annotations_detectron2" / "val"
    label = Image.open(out / "2007_000033.png")
    assert label.mode == "L"
    np.testing.assert_array_equal(np.asarray(label), VOC20_EXPECTED)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "2007_000042.png")), VOC20_EXPECTED.T)
    assert (report["num_classes"], report["ignore_value"], report["counts"]["written"]) == (20, 255, 2)
    assert json.loads((out.parent / "openseg_prepare_voc20.json").read_text())["benchmark"] == "voc20"


def test_voc20_bad_labels(voc_root):
    voc = voc_root / "VOCdevkit" / "VOC2012"
    labels = voc / "SegmentationClass"
    bad = {
        "2007_000050": VOC_LABEL.copy(),  # becomes RGB below
        "2007_000051": np.array([[0, 21], [3, 4]], np.uint8),  # 21 is not a VOC id
        "2007_000052": np.array([[0, 255], [0, 0]], np.uint8),  # nothing left to evaluate
        "2007_000053": VOC_LABEL.copy(),  # image missing below
    }
    for key, ids in bad.items():
        Image.new("RGB", ids.shape[::-1]).save(voc / "JPEGImages" / f"{key}.jpg")
        palette_png(labels / f"{key}.png", ids)
    Image.open(labels / "2007_000050.png").convert("RGB").save(labels / "2007_000050.png")
    (voc / "JPEGImages" / "2007_000053.jpg").unlink()
    (labels / "2007_000042.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    split = ["2007_000033", "2007_000042", *bad]
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(split))
    report = run_plan(plan_voc20(voc_root))
    assert report["counts"]["written"] == 1
    assert report["counts"]["skipped_by_reason"] == {
        "class id out of range": 1,
        "label without image": 1,
        "no labelled pixels": 1,
        "unreadable file": 1,
        "wrong label mode": 1,
    }
    assert {p["key"] for p in report["problems"]} == set(split) - {"2007_000033"}
    with pytest.raises(InputFileError, match="label without image: 2007_000053"):
        run_plan(plan_voc20(voc_root), strict=True)


def test_voc20_missing_inputs(tmp_path, voc_root):
    with pytest.raises(InputFileError, match="VOCdevkit/VOC2012"):
        plan_voc20(tmp_path)
    voc = voc_root / "VOCdevkit" / "VOC2012"
    (voc / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(InputFileError, match="val.txt"):
        plan_voc20(voc)


def test_locate_base_accepts_every_level(voc_root):
    base = locate_base(voc_root, ("VOCdevkit", "VOC2012"))
    for given in (voc_root, voc_root / "VOCdevkit", voc_root / "VOCdevkit" / "VOC2012"):
        assert locate_base(given, ("VOCdevkit", "VOC2012")) == base
    with pytest.raises(InputFileError, match="not found"):
        locate_base(voc_root / "absent", ("VOCdevkit", "VOC2012"))


def test_pair_files_reports_every_kind_of_gap():
    images = {"a": Path("a.jpg"), "b": Path("b.jpg"), "t": Path("t.jpg")}
    labels = {"a": Path("a.png"), "c": Path("c.png"), "t": Path("t.png")}
    keys, problems, counts = pair_files(images, labels, ["a", "b", "c", "d"])
    assert keys == ["a"]
    assert [(reason, key) for reason, key, _ in problems] == [
        ("image without label", "b"),
        ("label without image", "c"),
        ("missing from download", "d"),
    ]
    assert counts == {"images_found": 3, "labels_found": 3, "paired": 1, "split_list": 4, "not_in_split": 1}


def test_uint16_tiff_round_trips_and_uint8_png(tmp_path):
    label16 = np.array([[0, 458, 459], [65535, 1000, 7]], dtype=np.uint16)
    write_label(tmp_path / "x.tif", label16)
    back = Image.open(tmp_path / "x.tif")
    assert back.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(back), label16)
    write_label(tmp_path / "x.png", label16.astype(np.uint8))
    assert Image.open(tmp_path / "x.png").mode == "L"
    with pytest.raises(TypeError):
        write_label(tmp_path / "x.bin", label16.astype(np.int32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png", "x.tif"]  # no temporary files left
