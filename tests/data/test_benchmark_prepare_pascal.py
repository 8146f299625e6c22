"""`prepare pc59` / `prepare pc459`: synthetic PASCAL Context files in the real schema, known answers.

The download is built here: `trainval/<id>.mat` holding `LabelMap` (uint16 [H, W], labels.txt ids),
`labels.txt` with 459 "id: name" lines, tiny VOC2010 JPEGs and `pascalcontext_val.txt`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from openseg_cli.data.benchmarks import plan_pascal_context, run_plan
from openseg_cli.data.benchmarks.pascal_context import PC59_LABEL_IDS
from openseg_cli.errors import InputFileError, UsageError

# labels.txt ids → PC-59 label, by hand from the sorted 59-id list (397 "table" is the 50th id).
LABEL_MAP = np.array([[2, 9, 458, 397], [0, 1, 459, 115]], dtype=np.uint16)
PC59_EXPECTED = np.array([[0, 1, 58, 49], [255, 255, 255, 23]], dtype=np.uint8)
PC459_EXPECTED = np.array([[1, 8, 457, 396], [-1, 0, 458, 114]])  # -1 = ignore of the convention


def write_pascal_context(root: Path, label_maps: dict[str, np.ndarray], val_ids: list[str]) -> Path:
    """`root/VOCdevkit/VOC2010` with one JPEG and one .mat per label map, labels.txt and the val list."""
    voc = root / "VOCdevkit" / "VOC2010"
    (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (voc / "trainval").mkdir(exist_ok=True)
    for key, label_map in label_maps.items():
        height, width = label_map.shape
        Image.new("RGB", (width, height), (40, 90, 200)).save(voc / "JPEGImages" / f"{key}.jpg")
        scipy.io.savemat(voc / "trainval" / f"{key}.mat", {"LabelMap": label_map})
    (voc / "labels.txt").write_text("".join(f"{i}: class{i}\n" for i in range(1, 460)))
    (voc / "pascalcontext_val.txt").write_text("\n".join(val_ids) + "\n")
    return root


@pytest.fixture
def pc_root(tmp_path) -> Path:
    # 2008_000003 is a train image (not in the val list): counted, not prepared.
    maps = {"2008_000002": LABEL_MAP, "2008_000003": LABEL_MAP, "2008_000007": LABEL_MAP[:, ::-1].copy()}
    return write_pascal_context(tmp_path / "data", maps, ["2008_000002", "2008_000007"])


def test_pc59_catseg_known_answers(pc_root):
    report = run_plan(plan_pascal_context(pc_root, "pc59"))
    out = pc_root / "VOCdevkit" / "VOC2010" / "annotations_detectron2" / "pc59_val"
    label = Image.open(out / "2008_000002.png")
    assert label.mode == "L"
    np.testing.assert_array_equal(np.asarray(label), PC59_EXPECTED)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "2008_000007.png")), PC59_EXPECTED[:, ::-1])
    assert sorted(p.name for p in out.iterdir()) == ["2008_000002.png", "2008_000007.png"]
    counts = report["counts"]
    assert (counts["split_list"], counts["not_in_split"], counts["written"]) == (2, 1, 2)
    assert report["convention"] == "catseg" and report["ignore_value"] == 255
    assert report["class_names"][:2] == ["class2", "class9"] and len(report["class_names"]) == 59
    assert (out.parent / "openseg_prepare_pc59.json").is_file()


@pytest.mark.parametrize(("convention", "ignore"), [("catseg", 459), ("san", 65535)])
def test_pc459_conventions_known_answers(pc_root, convention, ignore):
    report = run_plan(plan_pascal_context(pc_root, "pc459", convention=convention))
    folder = (
        "VOCdevkit/VOC2010/annotations_detectron2/pc459_val"
        if convention == "catseg"
        else "pcontext_full/val/label"
    )
    image = Image.open(pc_root / folder / "2008_000002.tif")
    label = np.asarray(image)
    assert image.mode == "I;16" and label.dtype == np.uint16
    np.testing.assert_array_equal(label, np.where(PC459_EXPECTED < 0, ignore, PC459_EXPECTED))
    assert (report["convention"], report["ignore_value"], report["num_classes"]) == (convention, ignore, 459)
    san_images = pc_root / "pcontext_full" / "val" / "image"
    assert san_images.is_dir() == (convention == "san")
    if convention == "san":
        assert sorted(p.name for p in san_images.iterdir()) == ["2008_000002.jpg", "2008_000007.jpg"]


def test_pc59_san_layout(pc_root):
    run_plan(plan_pascal_context(pc_root, "pc59", convention="san"))
    val = pc_root / "pcontext" / "val"
    np.testing.assert_array_equal(np.asarray(Image.open(val / "label" / "2008_000002.png")), PC59_EXPECTED)
    assert (val / "image" / "2008_000002.jpg").read_bytes() == (
        pc_root / "VOCdevkit" / "VOC2010" / "JPEGImages" / "2008_000002.jpg"
    ).read_bytes()
    assert json.loads((val / "openseg_prepare_pc59.json").read_text())["convention"] == "san"


def test_pc59_ids_are_the_published_list(shared_data):
    published = (shared_data / "class-names" / "pc59_label_ids_in_pc459.txt").read_text().split()
    assert [int(i) for i in published] == [0, *PC59_LABEL_IDS]


def test_pascal_context_bad_files_are_counted_then_strict(pc_root):
    voc = pc_root / "VOCdevkit" / "VOC2010"
    scipy.io.savemat(voc / "trainval" / "2008_000010.mat", {"LabelMap": np.full((2, 4), 460, np.uint16)})
    scipy.io.savemat(voc / "trainval" / "2008_000011.mat", {"LabelMap": np.ones((2, 4), np.float64)})
    (voc / "trainval" / "2008_000012.mat").write_bytes(b"not a mat file at all")
    scipy.io.savemat(voc / "trainval" / "2008_000013.mat", {"Other": np.ones((2, 4), np.uint16)})
    scipy.io.savemat(voc / "trainval" / "2008_000014.mat", {"LabelMap": np.ones((3, 3), np.uint16)})
    for key in ("2008_000010", "2008_000011", "2008_000012", "2008_000013", "2008_000014", "2008_000015"):
        Image.new("RGB", (4, 2)).save(voc / "JPEGImages" / f"{key}.jpg")  # 000015: image without label
    ids = ["2008_000002", "2008_000007", *(f"2008_0000{n}" for n in range(10, 16)), "2008_000099"]
    (voc / "pascalcontext_val.txt").write_text("\n".join(ids))
    report = run_plan(plan_pascal_context(pc_root, "pc459"))
    assert report["counts"]["written"] == 2
    assert report["counts"]["skipped_by_reason"] == {
        "class id out of range": 1,
        "image without label": 1,
        "malformed .mat": 1,
        "missing from download": 1,
        "size mismatch": 1,
        "unreadable file": 1,
        "wrong label dtype": 1,
    }
    with pytest.raises(InputFileError, match="image without label: 2008_000015"):
        run_plan(plan_pascal_context(pc_root, "pc459"), strict=True)


def test_pascal_context_missing_inputs(tmp_path, pc_root):
    with pytest.raises(InputFileError, match="VOCdevkit/VOC2010"):
        plan_pascal_context(tmp_path / "nothing", "pc59")
    voc = pc_root / "VOCdevkit" / "VOC2010"
    with pytest.raises(UsageError, match="convention"):
        plan_pascal_context(voc, "pc59", convention="mmseg")
    (voc / "pascalcontext_val.txt").rename(voc / "elsewhere.txt")
    with pytest.raises(InputFileError, match="val list not found"):
        plan_pascal_context(voc, "pc59")
    assert len(plan_pascal_context(voc, "pc59", split_file=voc / "elsewhere.txt").items) == 2
    (voc / "labels.txt").write_text("1: accordion\n2 aeroplane\n")
    with pytest.raises(InputFileError, match="expected 'id: name'"):
        plan_pascal_context(voc, "pc59", split_file=voc / "elsewhere.txt")
    (voc / "labels.txt").write_text("1: accordion\n2: aeroplane\n")
    with pytest.raises(InputFileError, match="expected ids 1..459"):
        plan_pascal_context(voc, "pc59", split_file=voc / "elsewhere.txt")
