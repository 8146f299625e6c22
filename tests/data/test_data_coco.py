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
    write_coco_shards,
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


# --- PNG ↔ segments_info mismatches, caption counting, the full val2017 caption join ---------------


def _copy_panopticapi(panopticapi: CocoPanopticPaths, tmp_path: Path) -> tuple[CocoPanopticPaths, dict]:
    """A writable copy of the real sample (JSON files only; images and PNGs read in place)."""
    pan = json.loads(panopticapi.panoptic_json.read_text())
    caps = json.loads(panopticapi.captions_json.read_text())
    paths = CocoPanopticPaths(
        panopticapi.images_dir, tmp_path / "pan.json", panopticapi.panoptic_dir, tmp_path / "caps.json"
    )
    return paths, {"pan": pan, "caps": caps}


def _save(paths: CocoPanopticPaths, data: dict) -> None:
    paths.panoptic_json.write_text(json.dumps(data["pan"]))
    paths.captions_json.write_text(json.dumps(data["caps"]))


def test_png_id_without_segments_info_skips_the_image_counted(
    panopticapi: CocoPanopticPaths, tmp_path: Path
) -> None:
    """Unlisted pixels would be void, i.e. background to the Dice loss: the image is skipped, counted."""
    paths, data = _copy_panopticapi(panopticapi, tmp_path)
    removed = data["pan"]["annotations"][0]["segments_info"].pop(3)  # still painted in the PNG
    _save(paths, data)
    reader = CocoPanopticReader(paths)
    samples = list(reader)
    assert len(samples) == 1 and reader.skipped == {"panoptic png paints ids without segments_info": 1}
    assert samples[0]["meta.json"]["image_id"] != data["pan"]["annotations"][0]["image_id"]
    with pytest.raises(InputFileError, match=rf"ids {removed['id']}"):
        list(CocoPanopticReader(paths, strict=True))


def test_segments_info_id_absent_from_png_is_dropped_and_counted(
    panopticapi: CocoPanopticPaths, tmp_path: Path
) -> None:
    paths, data = _copy_panopticapi(panopticapi, tmp_path)
    ghost = {"id": 4_000_000, "category_id": 1, "iscrowd": 0, "area": 10, "bbox": [0, 0, 2, 5]}
    data["pan"]["annotations"][1]["segments_info"].append(ghost)
    _save(paths, data)
    reader = CocoPanopticReader(paths)
    samples = list(reader)
    assert [len(s["meta.json"]["segments"]) for s in samples] == [18, 32]  # the ghost is gone
    extra = reader.manifest_extra()
    assert extra["segments"]["seen"] == 18 + 33 and extra["segments"]["used"] == 50
    assert extra["segments"]["skipped"] == {"segments_info id absent from png (dropped)": 1}
    with pytest.raises(InputFileError, match="id 4000000: segments_info id absent from png"):
        list(CocoPanopticReader(paths, strict=True))


def test_captions_for_unlisted_images_and_empty_captions_are_counted(
    panopticapi: CocoPanopticPaths, tmp_path: Path
) -> None:
    paths, data = _copy_panopticapi(panopticapi, tmp_path)
    anns = data["caps"]["annotations"]
    anns.append({"image_id": 123, "id": 1, "caption": "A caption of an image that is not listed."})
    anns.append({"image_id": 142238, "id": 2, "caption": "  \n"})
    _save(paths, data)
    reader = CocoPanopticReader(paths)
    assert [len(s["meta.json"]["captions"]) for s in reader] == [5, 5]
    assert reader.manifest_extra()["captions"] == {
        "seen": 12, "used": 10,
        "skipped": {"caption for an image not in the JSON": 1, "empty caption": 1},
        "examples": {
            "caption for an image not in the JSON": [f"{paths.captions_json}: annotations[10] (image 123)"],
            "empty caption": [f"{paths.captions_json}: annotations[11] (image 142238)"],
        },
    }  # fmt: skip
    with pytest.raises(InputFileError, match=r"annotations\[10\] \(image 123\): caption for an image not in"):
        CocoPanopticReader(paths, strict=True)


def test_unreadable_png_is_a_counted_skip(panopticapi: CocoPanopticPaths, tmp_path: Path) -> None:
    pngs = tmp_path / "pngs"
    shutil.copytree(panopticapi.panoptic_dir, pngs)
    (pngs / "000000142238.png").write_bytes(b"not a png")
    paths = CocoPanopticPaths(panopticapi.images_dir, panopticapi.panoptic_json, pngs, None)
    reader = CocoPanopticReader(paths)
    assert [s["__key__"] for s in reader] == ["000000439180"]
    assert reader.skipped == {"unreadable panoptic png": 1}


def test_full_val2017_caption_join(shared_data: Path, tmp_path: Path) -> None:
    """All 25,014 real val2017 captions through the reader and the shards: each lands with its image id,
    in file order, and the counts equal the JSON's (5,000 images). Images and PNGs are hard links to one
    tiny pair: only the join is under test."""
    from openseg_cli.data.loader import iter_samples
    from openseg_cli.data.shards import read_manifest
    from openseg_cli.data.toy import encode_panoptic_png

    caps_path = shared_data / "coco-captions-val2017" / "captions_val2017.json"
    caps = json.loads(caps_path.read_text())
    expected: dict[int, list[str]] = {}
    for ann in caps["annotations"]:
        expected.setdefault(ann["image_id"], []).append(" ".join(ann["caption"].split()))
    images, pngs = tmp_path / "val2017", tmp_path / "panoptic_val2017"
    images.mkdir(), pngs.mkdir()
    Image.new("RGB", (4, 4), (9, 9, 9)).save(tmp_path / "one.jpg")
    (tmp_path / "one.png").write_bytes(encode_panoptic_png(np.ones((4, 4), dtype=np.int64)))
    listed, annotations = [], []
    for im in caps["images"]:
        (images / im["file_name"]).hardlink_to(tmp_path / "one.jpg")
        png = im["file_name"].replace(".jpg", ".png")
        (pngs / png).hardlink_to(tmp_path / "one.png")
        listed.append({"id": im["id"], "file_name": im["file_name"], "width": 4, "height": 4})
        segment = {"id": 1, "category_id": 1, "iscrowd": 0, "area": 16, "bbox": [0, 0, 4, 4]}
        annotations.append({"image_id": im["id"], "file_name": png, "segments_info": [segment]})
    pan = {"images": listed, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}
    (tmp_path / "pan.json").write_text(json.dumps(pan))
    paths = CocoPanopticPaths(images, tmp_path / "pan.json", pngs, caps_path)
    write_coco_shards(paths, tmp_path / "shards", "val2017", maxcount=2000)
    manifest = read_manifest(tmp_path / "shards")
    assert manifest["counts"] == {"seen": 5000, "written": 5000, "skipped": {}, "skipped_total": 0}
    assert manifest["captions"]["seen"] == manifest["captions"]["used"] == 25_014 == len(caps["annotations"])
    got = {s["meta"]["image_id"]: s["meta"]["captions"] for s in iter_samples(tmp_path / "shards")}
    assert got == expected and sum(map(len, got.values())) == 25_014
