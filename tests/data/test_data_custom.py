"""A user's own data: COCO instance JSON → panoptic samples (checked against pycocotools on the real
coco-val2017-mini set), and an image folder + captions file → caption-only samples."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from openseg_cli.data.captions_folder import CaptionsFolderReader, sample_key
from openseg_cli.data.coco_instances import CocoInstancesReader
from openseg_cli.data.decode import decode_panoptic
from openseg_cli.data.loader import iter_samples
from openseg_cli.data.prepare_io import write_reader_shards
from openseg_cli.errors import InputFileError


@pytest.fixture(scope="module")
def mini(shared_data: Path) -> dict:
    d = shared_data / "coco-val2017-mini"
    ann = d / "annotations" / "instances_val2017_subset.json"
    caps = d / "annotations" / "captions_val2017_subset.json"
    return {"ann": ann, "caps": caps, "images": d / "val2017", "json": json.loads(ann.read_text())}


def _masks(data: dict, image: dict) -> dict[int, np.ndarray]:
    """pycocotools' own masks of an image's annotations: annotation id → bool [H, W]."""
    h, w = image["height"], image["width"]
    out = {}
    for ann in data["annotations"]:
        if ann["image_id"] == image["id"]:
            seg = ann["segmentation"]
            rles = mask_utils.frPyObjects(seg, h, w)
            out[ann["id"]] = mask_utils.decode(mask_utils.merge(rles) if isinstance(rles, list) else rles) > 0
    return out


def test_instances_match_pycocotools_on_real_images(mini: dict, tmp_path: Path) -> None:
    reader = CocoInstancesReader(mini["ann"], mini["images"], mini["caps"])
    manifest = write_reader_shards(reader, tmp_path / "s", "val2017", maxcount=5)
    assert manifest["counts"] == {"seen": 16, "written": 16, "skipped": {}, "skipped_total": 0}
    assert len(manifest["shards"]) == 4 and manifest["annotations"]["seen"] == 94
    assert [c["id"] for c in manifest["categories"]] == sorted(c["id"] for c in mini["json"]["categories"])
    images = {im["id"]: im for im in mini["json"]["images"]}
    hidden = manifest["annotations"]["skipped"].get("instance hidden by overlapping instances", 0)
    written_segments = checked_alone = 0
    for sample in iter_samples(tmp_path / "s"):
        meta, image = sample["meta"], images[sample["meta"]["image_id"]]
        assert sample["image"] == (mini["images"] / image["file_name"]).read_bytes()
        assert len(meta["captions"]) == 5
        ids = np.asarray(decode_panoptic(sample["panoptic"], sample["key"]))  # [H, W]
        masks = _masks(mini["json"], image)
        union = np.logical_or.reduce(list(masks.values()))
        assert int((ids > 0).sum()) == int(union.sum())  # every annotated pixel belongs to one segment
        assert sorted(np.unique(ids[ids > 0]).tolist()) == sorted(s["id"] for s in meta["segments"])
        anns = {a["id"]: a for a in mini["json"]["annotations"] if a["image_id"] == image["id"]}
        for seg in meta["segments"]:
            pixels = ids == seg["id"]
            assert seg["area"] == int(pixels.sum())
            # the pycocotools mask this segment came from: same class, contains every visible pixel
            source = [
                a
                for a, m in masks.items()
                if (m | ~pixels).all() and anns[a]["category_id"] == seg["category_id"]
            ]
            assert source, seg
            alone = [a for a in source if not any((masks[a] & m).any() for b, m in masks.items() if b != a)]
            checked_alone += len(alone)
            for a in alone:  # no overlap: area equals pycocotools' own mask area
                assert (
                    seg["area"]
                    == int(masks[a].sum())
                    == int(mask_utils.area(mask_utils.encode(np.asfortranarray(masks[a].astype(np.uint8)))))
                )
            ys, xs = np.nonzero(pixels)
            assert seg["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert seg["iscrowd"] == 0
        written_segments += len(meta["segments"])
    assert written_segments + hidden == 94
    print(f"segments {written_segments}, hidden {hidden}, compared with pycocotools' area {checked_alone}")
    assert checked_alone >= 40  # most real instances do not overlap: the area check is not vacuous


def test_crowd_rle_kept_and_painted_below(mini: dict, tmp_path: Path) -> None:
    """A crowd region in uncompressed RLE (as COCO stores crowds) keeps iscrowd=1 and loses the pixels
    that real instances cover."""
    data = copy.deepcopy(mini["json"])
    image = next(im for im in data["images"] if im["id"] == 802)
    h, w = image["height"], image["width"]
    rect = np.zeros((h, w), dtype=np.uint8)
    rect[100:300, 50:350] = 1
    rle = mask_utils.encode(np.asfortranarray(rect))
    counts = []  # uncompressed RLE: run lengths in column-major order
    flat, value, run = rect.flatten(order="F"), 0, 0
    for v in flat:
        if v == value:
            run += 1
        else:
            counts.append(run)
            value, run = v, 1
    counts.append(run)
    crowd = {"id": 900100000802, "image_id": 802, "category_id": 1, "iscrowd": 1,
             "segmentation": {"counts": counts, "size": [h, w]}, "area": int(mask_utils.area(rle)),
             "bbox": [50, 100, 300, 200]}  # fmt: skip
    data["annotations"].append(crowd)
    data["images"] = [image]
    (tmp_path / "ann.json").write_text(json.dumps(data))
    reader = CocoInstancesReader(tmp_path / "ann.json", mini["images"])
    (sample,) = list(reader.iter_samples())
    crowd_segs = [s for s in sample["meta.json"]["segments"] if s["iscrowd"]]
    assert len(crowd_segs) == 1 and crowd_segs[0]["category_id"] == 1
    others = np.logical_or.reduce(list(_masks(mini["json"], image).values()))
    assert crowd_segs[0]["area"] == int((rect.astype(bool) & ~others).sum()) > 0
    assert len(sample["meta.json"]["segments"]) == 3


def test_instance_bad_input_is_counted_or_refused(mini: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(mini["json"])
    data["images"][0]["width"] = f"{data['images'][0]['width']}px"  # malformed: cannot match the file
    third = data["images"][2]["id"]
    bad = next(a for a in data["annotations"] if a["image_id"] == third)
    bad["segmentation"] = [[1, 2]]  # a polygon of one point
    data["annotations"].append(dict(data["annotations"][6], id=1, image_id=42))  # unlisted image
    data["images"][1]["file_name"] = "missing.jpg"
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    caps = json.loads(mini["caps"].read_text())
    caps["annotations"] += [
        {"image_id": 7, "id": 1, "caption": "x"},
        {"image_id": 802, "id": 2, "caption": ""},
    ]
    (tmp_path / "caps.json").write_text(json.dumps(caps))
    reader = CocoInstancesReader(path, mini["images"], tmp_path / "caps.json")
    manifest = write_reader_shards(reader, tmp_path / "s", "train")
    assert manifest["counts"]["skipped"] == {"image size differs from the JSON": 1, "missing image": 1}
    assert manifest["counts"]["written"] == 14
    ann = manifest["annotations"]
    assert ann["skipped"]["annotation for an image not in the JSON"] == 1
    assert ann["skipped"]["bad segmentation (no polygon with 3 points or more)"] == 1
    assert ann["seen"] == ann["used"] + sum(ann["skipped"].values())
    assert manifest["captions"]["skipped"] == {"caption for an image not in the JSON": 1, "empty caption": 1}
    with pytest.raises(InputFileError, match=r"ann.json: 1: annotation for an image not in the JSON"):
        CocoInstancesReader(path, mini["images"], strict=True)  # the first problem, at load time
    data["annotations"].pop()  # without the unlisted one, the first problem is in the first image read
    path.write_text(json.dumps(data))
    with pytest.raises(InputFileError, match=r"val2017/missing.jpg: missing image$"):
        list(CocoInstancesReader(path, mini["images"], strict=True).iter_samples())
    pan = {"images": [], "annotations": [{"image_id": 1, "segments_info": []}], "categories": []}
    (tmp_path / "pan.json").write_text(json.dumps(pan))
    with pytest.raises(InputFileError, match="a COCO panoptic JSON; use `openseg prepare coco`"):
        CocoInstancesReader(tmp_path / "pan.json", mini["images"])
    data["annotations"][0]["category_id"] = 999
    path.write_text(json.dumps(data))
    with pytest.raises(InputFileError, match="category id 999 not in 'categories'"):
        CocoInstancesReader(path, mini["images"])
    data["annotations"][0]["category_id"] = data["categories"][0]["id"]
    data["images"].append(dict(data["images"][3]))  # one id listed twice: two samples, one key
    path.write_text(json.dumps(data))
    with pytest.raises(InputFileError, match="listed twice"):
        CocoInstancesReader(path, mini["images"])


# --- image folder + captions file ---------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (10, 6), (1, 2, 3)).save(root / "a.jpg")
    Image.new("RGB", (5, 5), (1, 2, 3)).save(root / "sub" / "b.1.png")
    Image.new("RGB", (4, 4), (1, 2, 3)).save(root / "uncaptioned.jpg")
    (root / "notes.jpg").write_text("not an image")
    Image.new("RGB", (4, 4)).save(root / "c.gif")  # readable but not JPEG/PNG
    return root


CAPTION_FILES = {
    "caps.tsv": "a.jpg\tA red square.\nsub/b.1.png\tA tiny block.\nno tab here\na.jpg\t  \n"
    "a.jpg\tThe same red square, again.\nmissing.jpg\tNothing.\nnotes.jpg\tText.\n",
    "caps.csv": 'file_name,caption\na.jpg,A red square.\nsub/b.1.png,"A tiny block."\nthree,col,umns\n'
    'a.jpg,""\na.jpg,"The same red square, again."\nmissing.jpg,Nothing.\nnotes.jpg,Text.\n',
    "caps.jsonl": '{"file_name": "a.jpg", "caption": "A red square."}\n'
    '{"file_name": "sub/b.1.png", "captions": ["A tiny block."]}\n{"file_name": "a.jpg", "cap\n'
    '{"file_name": "a.jpg", "caption": ""}\n'
    '{"file_name": "a.jpg", "caption": "The same red square, again."}\n'
    '{"file_name": "missing.jpg", "caption": "Nothing."}\n{"file_name": "notes.jpg", "caption": "Text."}\n',
}
BAD_LINE = {
    "caps.tsv": "line without a tab",
    "caps.csv": "row without 2 columns",
    "caps.jsonl": "invalid JSON line",
}


@pytest.mark.parametrize("name", list(CAPTION_FILES))
def test_folder_formats_join_and_counts(folder: Path, tmp_path: Path, name: str) -> None:
    captions = tmp_path / name
    captions.write_text(CAPTION_FILES[name])
    reader = CaptionsFolderReader(folder, captions)
    manifest = write_reader_shards(reader, tmp_path / "s", "train")
    got = {s["key"]: s for s in iter_samples(tmp_path / "s")}
    assert sorted(got) == ["a_jpg", "sub_b_1_png"]
    assert got["a_jpg"]["meta"]["captions"] == ["A red square.", "The same red square, again."]
    assert (
        got["sub_b_1_png"]["image_ext"] == "png"
        and got["sub_b_1_png"]["image"] == (folder / "sub" / "b.1.png").read_bytes()
    )
    assert (got["a_jpg"]["meta"]["width"], got["a_jpg"]["meta"]["height"]) == (10, 6)
    assert manifest["records"]["seen"] == 7 and manifest["records"]["used"] == 5
    assert manifest["records"]["skipped"] == {BAD_LINE[name]: 1, "empty caption": 1}
    assert manifest["counts"]["skipped"] == {"missing image": 1, "unreadable image": 1}
    assert manifest["counts"]["seen"] == manifest["images_listed"] == 4
    assert manifest["images_without_captions"] == 1  # uncaptioned.jpg (c.gif has no image suffix)
    line = 4 if name.endswith(".csv") else 3  # the CSV has a header row
    with pytest.raises(InputFileError, match=f"{name}:{line}: {BAD_LINE[name]}"):
        CaptionsFolderReader(folder, captions, strict=True)


def test_folder_bad_inputs(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="captions file must end in"):
        CaptionsFolderReader(folder, folder / "a.jpg")
    with pytest.raises(InputFileError, match="captions file not found"):
        CaptionsFolderReader(folder, tmp_path / "none.tsv")
    (tmp_path / "gif.tsv").write_text("c.gif\tA gif.\n")
    reader = CaptionsFolderReader(folder, tmp_path / "gif.tsv")
    assert list(reader.iter_samples()) == [] and reader.skipped == {"unsupported image format": 1}
    reader.close()
    assert sample_key("sub/dog.v2.jpg") == "sub_dog_v2_jpg"
    assert sample_key("a.jpg") != sample_key("a.png")
