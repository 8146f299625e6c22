"""COCO panoptic reader on the real panopticapi samples, and its failure modes on broken input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openseg_cli.data.coco import (
    CocoPanopticPaths,
    CocoPanopticReader,
    clean_class_name,
    coco_paths,
    load_json,
)
from openseg_cli.data.decode import class_lookup, decode_sample
from openseg_cli.errors import InputFileError


@pytest.fixture(scope="module")
def panopticapi(shared_data: Path) -> CocoPanopticPaths:
    d = shared_data / "coco-panoptic-panopticapi"
    return CocoPanopticPaths(
        images_dir=d / "input_images",
        panoptic_json=d / "panoptic_examples.json",
        panoptic_dir=d / "panoptic_examples",
        captions_json=d / "captions_val2017_subset.json",
    )


def test_real_samples_unchanged_and_joined(panopticapi: CocoPanopticPaths) -> None:
    reader = CocoPanopticReader(panopticapi)
    samples = list(reader)
    assert [s["__key__"] for s in samples] == ["000000142238", "000000439180"]
    truth = {a["image_id"]: a for a in json.loads(panopticapi.panoptic_json.read_text())["annotations"]}
    for s in samples:
        meta = s["meta.json"]
        assert s["image.jpg"] == (panopticapi.images_dir / meta["file_name"]).read_bytes()
        png = panopticapi.panoptic_dir / truth[meta["image_id"]]["file_name"]
        assert s["panoptic.png"] == png.read_bytes()
        assert len(meta["captions"]) == 5 and all(isinstance(c, str) and c for c in meta["captions"])
        assert meta["segments"] == [
            {k: seg[k] for k in ("id", "category_id", "iscrowd", "area", "bbox")}
            for seg in truth[meta["image_id"]]["segments_info"]
        ]
        rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        for seg in meta["segments"]:
            assert seg["area"] == int((ids == seg["id"]).sum())
    assert len(samples[0]["meta.json"]["segments"]) == 18 and len(samples[1]["meta.json"]["segments"]) == 32
    assert reader.skipped == {}


def test_categories_contiguous_and_clean(panopticapi: CocoPanopticPaths) -> None:
    cats = CocoPanopticReader(panopticapi).categories
    assert len(cats) == 133 and [c["index"] for c in cats] == list(range(133))
    assert [c["id"] for c in cats] == sorted(c["id"] for c in cats)
    names = {c["coco_name"]: c["name"] for c in cats}
    assert names["grass-merged"] == "grass" and names["sky-other-merged"] == "sky"
    assert names["wall-brick"] == "wall brick" and names["door-stuff"] == "door"
    assert names["sports ball"] == "sports ball"
    assert not any("-" in n or "merged" in n for n in names.values())


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("building-other-merged", "building"),
        ("water-other", "water"),
        ("floor-wood", "floor wood"),
        ("tv", "tv"),
    ],
)
def test_clean_class_name(raw: str, clean: str) -> None:
    assert clean_class_name(raw) == clean


def test_decode_real_sample(panopticapi: CocoPanopticPaths) -> None:
    reader = CocoPanopticReader(panopticapi)
    sample = next(iter(reader))
    d = decode_sample(sample, class_lookup(reader.categories))
    meta = sample["meta.json"]
    assert d.image.shape == (meta["height"], meta["width"], 3) and d.image.dtype == torch.uint8
    non_crowd = [s for s in meta["segments"] if not s["iscrowd"]]
    assert d.segment_classes.numel() == len(non_crowd) == int(d.segment_map.max())
    person = next(c["index"] for c in reader.categories if c["name"] == "person")
    assert int(d.segment_classes[0]) == person  # first segment of image 142238 is a person
    crowd = [s for s in meta["segments"] if s["iscrowd"]]
    assert crowd, "image 142238 has a crowd segment"
    assert int((d.semantic >= 0).sum()) == sum(s["area"] for s in meta["segments"])
    assert int((d.segment_map > 0).sum()) == sum(s["area"] for s in non_crowd)


def test_png_image_and_explicit_paths(shared_data: Path, tmp_path: Path) -> None:
    """HF fixture: a PNG image and a bare `segments_info`, wrapped into a panoptic JSON (see SOURCE.md)."""
    hf = shared_data / "coco-panoptic-hf-fixture"
    cats = json.loads(
        (shared_data / "coco-panoptic-panopticapi" / "panoptic_coco_categories.json").read_text()
    )
    segs = json.loads((hf / "coco_panoptic_annotations.txt").read_text())
    pan = {
        "images": [{"id": 39769, "file_name": "000000039769.png", "width": 640, "height": 480}],
        "annotations": [{"image_id": 39769, "file_name": "000000039769.png", "segments_info": segs}],
        "categories": cats,
    }
    (tmp_path / "pan.json").write_text(json.dumps(pan))
    paths = CocoPanopticPaths(
        hf, tmp_path / "pan.json", hf / "coco_panoptic", hf / "captions_val2017_subset.json"
    )
    (sample,) = list(CocoPanopticReader(paths))
    assert sample["image.png"] == (hf / "000000039769.png").read_bytes()
    assert len(sample["meta.json"]["captions"]) == 5 and len(sample["meta.json"]["segments"]) == 6


def _copy_toy(toy_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "coco"
    shutil.copytree(toy_root, root)
    return root


def test_missing_files_are_counted_skips(toy_root: Path, tmp_path: Path) -> None:
    root = _copy_toy(toy_root, tmp_path)
    (root / "train2017" / "000000000002.jpg").unlink()
    (root / "annotations" / "panoptic_train2017" / "000000000003.png").unlink()
    caps = json.loads((root / "annotations" / "captions_train2017.json").read_text())
    caps["annotations"] = [c for c in caps["annotations"] if c["image_id"] != 4]
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps(caps))
    reader = CocoPanopticReader(coco_paths(root, "train2017"))
    keys = [s["__key__"] for s in reader]
    assert len(keys) == 24 - 3 and "000000000002" not in keys and "000000000005" in keys
    assert reader.skipped == {"missing image": 1, "missing panoptic png": 1, "no captions": 1}
    with pytest.raises(InputFileError, match="000000000002.jpg: missing image"):
        list(CocoPanopticReader(coco_paths(root, "train2017"), strict=True))


def test_malformed_json_is_one_clear_line(toy_root: Path, tmp_path: Path) -> None:
    root = _copy_toy(toy_root, tmp_path)
    path = root / "annotations" / "panoptic_train2017.json"
    path.write_text(path.read_text()[:500])
    with pytest.raises(InputFileError) as err:
        CocoPanopticReader(coco_paths(root, "train2017"))
    message = str(err.value)
    assert str(path) in message and "malformed panoptic JSON" in message and "\n" not in message
    path.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(InputFileError, match="no list 'categories'"):
        CocoPanopticReader(coco_paths(root, "train2017"))


def test_missing_parts_and_unknown_category(toy_root: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="image folder not found"):
        CocoPanopticReader(coco_paths(tmp_path / "nowhere", "train2017"))
    with pytest.raises(InputFileError, match="not found"):
        load_json(tmp_path / "absent.json", "captions JSON")
    root = _copy_toy(toy_root, tmp_path)
    path = root / "annotations" / "panoptic_val2017.json"
    pan = json.loads(path.read_text())
    pan["annotations"][0]["segments_info"][0]["category_id"] = 999
    path.write_text(json.dumps(pan))
    with pytest.raises(InputFileError, match=r"category id\(s\) \[999\]"):
        list(CocoPanopticReader(coco_paths(root, "val2017")))
