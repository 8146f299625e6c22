"""`prepare ade150` / `prepare ade847` on the real ADE20K samples of ../shared/data: independent answers.

ade150: labels = challenge id - 1 with 0 → 255, and the classes per image of the samples' SOURCE.md.
ade847: the 2048+ px training samples (prepared once per module): uint16 TIFF, shorter side 512, the
labelled fractions and class counts of SOURCE.md, and class names equal to the whole objects of each
image's `.json` read through the public id table (not the shipped asset).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openseg_cli.data.benchmarks import plan_ade150, plan_ade847, run_plan
from openseg_cli.data.benchmarks.ade847 import ade847_table, resize_nearest, resized_size
from openseg_cli.errors import InputFileError

ADE150_CLASSES = {  # ../shared/data/ade20k-150-sceneparsing/SOURCE.md
    "ADE_val_00000001": {"wall", "building", "sky", "tree", "road", "grass", "plant"},
    "ADE_val_00000002": {"wall", "building", "sky", "tree", "earth", "plant"},
    "ADE_val_00000003": {
        "wall", "building", "sky", "tree", "road", "sidewalk", "car", "signboard", "bus", "streetlight",
        "escalator", "van",
    },
}  # fmt: skip
# ../shared/data/ade20k-full-2021-samples/SOURCE.md: (classes, labelled fraction at full resolution)
ADE847_FACTS = {
    "ADE_train_00016869": (13, 0.972),
    "ADE_train_00016900": (16, 0.983),
    "ADE_train_00016964": (14, 0.883),
}


@pytest.fixture
def ade150_root(shared_data, tmp_path) -> Path:
    shutil.copytree(
        shared_data / "ade20k-150-sceneparsing" / "ADEChallengeData2016", tmp_path / "ADEChallengeData2016"
    )
    return tmp_path


def test_ade150_labels_are_id_minus_one_with_ignore(ade150_root, shared_data):
    report = run_plan(plan_ade150(ade150_root))
    names = [n.strip() for n in (shared_data / "class-names" / "ade150.txt").read_text().splitlines()]
    ds = ade150_root / "ADEChallengeData2016"
    for key, expected_names in ADE150_CLASSES.items():
        source = np.asarray(Image.open(ds / "annotations" / "validation" / f"{key}.png"), dtype=np.int64)
        prepared_image = Image.open(ds / "annotations_detectron2" / "validation" / f"{key}.png")
        prepared = np.asarray(prepared_image)
        assert prepared_image.mode == "L" and prepared.dtype == np.uint8
        np.testing.assert_array_equal(prepared, (source - 1) % 256)  # 0 → 255, 1..150 → 0..149
        assert {names[c] for c in np.unique(prepared) if c != 255} == expected_names
    assert report["counts"]["written"] == 3 and report["counts"]["skipped"] == 0
    assert (report["num_classes"], report["ignore_value"], report["label_dtype"]) == (150, 255, "uint8")
    saved = json.loads((ds / "annotations_detectron2" / "openseg_prepare_ade150.json").read_text())
    assert saved["counts"] == report["counts"] and saved["complete"] is False


def test_ade150_resumes_and_rewrites_only_what_is_missing(ade150_root):
    run_plan(plan_ade150(ade150_root))
    out_dir = ade150_root / "ADEChallengeData2016" / "annotations_detectron2" / "validation"
    (out_dir / "ADE_val_00000002.png").unlink()
    Image.new("L", (5, 5)).save(out_dir / "ADE_val_00000003.png")  # wrong size: not "correct", redone
    report = run_plan(plan_ade150(ade150_root))
    assert (report["counts"]["written"], report["counts"]["already_prepared"]) == (2, 1)
    assert Image.open(out_dir / "ADE_val_00000003.png").size == (400, 300)
    assert not [p for p in out_dir.parent.rglob("*") if p.name.endswith(".tmp")]


def test_ade150_separate_out_root_gets_images_too(ade150_root, tmp_path):
    out = tmp_path / "prepared"
    run_plan(plan_ade150(ade150_root / "ADEChallengeData2016", out=out))  # ROOT may be the folder itself
    images = sorted(p.name for p in (out / "ADEChallengeData2016" / "images" / "validation").iterdir())
    labels = sorted(
        p.stem for p in (out / "ADEChallengeData2016/annotations_detectron2/validation").iterdir()
    )
    assert [Path(n).stem for n in images] == labels == sorted(ADE150_CLASSES)


def test_ade150_bad_inputs_are_counted_or_strict(ade150_root):
    ds = ade150_root / "ADEChallengeData2016"
    labels = ds / "annotations" / "validation"
    shutil.copy(labels / "ADE_val_00000001.png", labels / "ADE_val_00000008.png")  # label without image
    Image.new("RGB", (400, 300)).save(ds / "annotations" / "validation" / "ADE_val_00000003.png")  # RGB
    Image.new("L", (8, 8)).save(ds / "images" / "validation" / "ADE_val_00000009.jpg")  # image only
    bad = np.full((364, 500), 151, dtype=np.uint8)  # class id out of range
    Image.fromarray(bad).save(ds / "annotations" / "validation" / "ADE_val_00000002.png")
    report = run_plan(plan_ade150(ade150_root), strict=False)
    assert report["counts"]["written"] == 1  # ADE_val_00000001 is still good
    assert report["counts"]["skipped_by_reason"] == {
        "class id out of range": 1,
        "image without label": 1,
        "label without image": 1,
        "wrong label mode": 1,
    }
    with pytest.raises(InputFileError, match="--strict"):
        run_plan(plan_ade150(ade150_root), strict=True)


def test_ade150_missing_folder_names_it(tmp_path):
    with pytest.raises(InputFileError, match="ADEChallengeData2016"):
        plan_ade150(tmp_path)
    (tmp_path / "ADEChallengeData2016" / "images" / "validation").mkdir(parents=True)
    with pytest.raises(InputFileError, match="annotations/validation"):
        plan_ade150(tmp_path)


@pytest.fixture(scope="module")
def ade847(shared_data, tmp_path_factory):
    """The three 2048+ px samples prepared once: (dataset root copy, report, source folder)."""
    root = tmp_path_factory.mktemp("ade847")
    source = shared_data / "ade20k-full-2021-samples" / "ADE20K_2021_17_01"
    shutil.copytree(source, root / "ADE20K_2021_17_01")
    report = run_plan(plan_ade847(root, splits=("training",)))
    return root / "ADE20K_2021_17_01", report, source / "images" / "ADE" / "training" / "urban" / "street"


def _public_table(shared_data: Path) -> dict[int, tuple[int, str]]:
    rows = json.loads((shared_data / "class-names" / "ade847_categories_with_ade_ids.json").read_text())
    return {r["id"]: (r["trainId"], r["name"]) for r in rows}


def test_ade847_outputs_are_uint16_tiffs_with_short_side_512(ade847):
    ds, report, source = ade847
    assert report["counts"]["written"] == 3 and report["counts"]["skipped"] == 0
    for key in ADE847_FACTS:
        label_image = Image.open(ds / "annotations_detectron2" / "training" / f"{key}.tif")
        image = Image.open(ds / "images_detectron2" / "training" / f"{key}.jpg")
        width, height = Image.open(source / f"{key}.jpg").size
        assert label_image.mode == "I;16" and np.asarray(label_image).dtype == np.uint16
        assert min(label_image.size) == 512 and label_image.size == image.size
        assert abs(label_image.size[0] / label_image.size[1] - width / height) < 2 / 512


def test_ade847_fractions_and_classes_match_the_public_table(ade847, shared_data):
    ds, _, source = ade847
    table = _public_table(shared_data)
    names = {train_id: name for train_id, name in table.values()}
    for key, (num_classes, fraction) in ADE847_FACTS.items():
        rgb = np.asarray(Image.open(source / f"{key}_seg.png").convert("RGB")).astype(np.int64)
        ids = rgb[..., 0] // 10 * 256 + rgb[..., 1]
        full_res_fraction = np.isin(ids, list(table)).mean()
        prepared = np.asarray(Image.open(ds / "annotations_detectron2" / "training" / f"{key}.tif"))
        labelled = prepared != 65535
        assert abs(full_res_fraction - fraction) < 0.0006  # SOURCE.md rounds to 0.1 %
        assert abs(labelled.mean() - full_res_fraction) < 0.01  # nearest resize moves it a little
        present = set(np.unique(prepared[labelled]).tolist())
        assert len(present) == num_classes and max(present) < 847
        annotation = json.loads((source / f"{key}.json").read_text(encoding="latin-1"))["annotation"]
        whole = [o for o in annotation["object"] if o["parts"]["part_level"] == 0]
        in_table = [o for o in whole if o["name_ndx"] in table]
        assert all(table[o["name_ndx"]][1] == o["name"] for o in in_table)  # ids mean the same names
        assert {names[t] for t in present} == {o["name"] for o in in_table}


def test_ade847_resize_rule_and_nearest_sampling():
    assert resized_size(2048, 1536) == (683, 512)
    assert resized_size(1467, 2200) == (512, 768)
    assert resized_size(500, 300) == (500, 300)  # not enlarged
    label = np.arange(16).reshape(4, 4)
    np.testing.assert_array_equal(resize_nearest(label, (2, 2)), [[0, 2], [8, 10]])


def test_shipped_table_equals_public_table_and_covers_ade150(shared_data):
    shipped = {ade_id: (train_id, name) for ade_id, train_id, name in ade847_table()}
    assert shipped == _public_table(shared_data)
    assert [t for _, t, _ in ade847_table()] == list(range(847))
    lines = (shared_data / "ade20k-150-sceneparsing" / "convertFromADE" / "mapFromADE.txt").read_text()
    rows = [tuple(map(int, line.split())) for line in lines.splitlines() if line.strip()]
    # 153 rows: classes 15, 36 and 89 list two ADE ids each. Every class has an id in the table; of
    # class 89's two ids only 247 is (246 is not), so 152 of the 153 ids are.
    ids_of: dict[int, set[int]] = {}
    for idx, ade_id in rows:
        ids_of.setdefault(idx, set()).add(ade_id)
    assert sorted(ids_of) == list(range(1, 151))
    assert all(ids & set(shipped) for ids in ids_of.values())
    assert {ade_id for _, ade_id in rows} - set(shipped) == {246}


def test_ade847_missing_split_folder_and_unpaired_files(ade847, tmp_path):
    with pytest.raises(InputFileError, match="validation"):
        plan_ade847(ade847[0].parent)  # the samples have no validation folder
    street = tmp_path / "ADE20K_2021_17_01" / "images" / "ADE" / "validation" / "x"
    street.mkdir(parents=True)
    Image.new("RGB", (6, 4)).save(street / "ADE_val_1.jpg")  # no seg map
    Image.new("L", (6, 4)).save(street / "ADE_val_2_seg.png")  # no image
    Image.new("RGB", (6, 4)).save(street / "ADE_val_3.jpg")
    Image.new("L", (6, 4)).save(street / "ADE_val_3_seg.png")  # grey, not the RGB encoding
    plan = plan_ade847(tmp_path)
    with pytest.raises(InputFileError, match="no sample could be prepared"):
        run_plan(plan)
    report = json.loads(plan.report_path.read_text())
    assert report["counts"]["skipped_by_reason"] == {
        "image without label": 1,
        "label without image": 1,
        "wrong label mode": 1,
    }
