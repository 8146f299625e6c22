"""The toy dataset: real COCO panoptic/captions formats, consistent masks, captions naming what is drawn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openseg_cli.data.captions_toy import plural
from openseg_cli.data.toy import TOY_CATEGORIES, render_toy_image, write_toy_dataset

SPLITS = ("train2017", "val2017")


def _ids(png: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def test_files_in_coco_layout(toy_root: Path) -> None:
    for split, n in zip(SPLITS, (24, 10), strict=True):
        assert len(list((toy_root / split).glob("*.jpg"))) == n
        assert len(list((toy_root / "annotations" / f"panoptic_{split}").glob("*.png"))) == n
        pan = json.loads((toy_root / "annotations" / f"panoptic_{split}.json").read_text())
        caps = json.loads((toy_root / "annotations" / f"captions_{split}.json").read_text())
        assert {"images", "annotations", "categories"} <= pan.keys()
        assert len(pan["images"]) == len(pan["annotations"]) == n
        per_image = {im["id"]: 0 for im in pan["images"]}
        for c in caps["annotations"]:
            per_image[c["image_id"]] += 1
        assert all(3 <= k <= 5 for k in per_image.values())
        assert {c["name"]: c["isthing"] for c in pan["categories"]}["grass"] == 0
    lines = (toy_root / "classes.txt").read_text().splitlines()
    assert [ln.split(",")[0] for ln in lines] == [c[1] for c in sorted(TOY_CATEGORIES)]
    assert lines[0] == "circle, disc"


@pytest.mark.parametrize("split", SPLITS)
def test_segments_match_png(toy_root: Path, split: str) -> None:
    pan = json.loads((toy_root / "annotations" / f"panoptic_{split}.json").read_text())
    images = {im["id"]: im for im in pan["images"]}
    for ann in pan["annotations"]:
        ids = _ids(toy_root / "annotations" / f"panoptic_{split}" / ann["file_name"])
        im = images[ann["image_id"]]
        assert ids.shape == (im["height"], im["width"])
        listed = {s["id"] for s in ann["segments_info"]}
        assert set(np.unique(ids).tolist()) == listed  # toy images have no void pixels
        for seg in ann["segments_info"]:
            mask = ids == seg["id"]
            assert seg["area"] == int(mask.sum())
            ys, xs = np.nonzero(mask)
            assert seg["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        things = [s for s in ann["segments_info"] if s["category_id"] < 92]
        assert 1 <= len(things) <= 3
        long_side = max(ids.shape)
        assert max(max(s["bbox"][2:]) for s in things) >= 0.15 * long_side  # shapes are clearly visible
        assert all(s["area"] >= 0.005 * ids.size for s in things)


def test_captions_name_every_shape_and_background(toy_root: Path) -> None:
    names = {c[0]: c[1] for c in TOY_CATEGORIES}
    pan = json.loads((toy_root / "annotations" / "panoptic_train2017.json").read_text())
    caps = json.loads((toy_root / "annotations" / "captions_train2017.json").read_text())
    by_image: dict[int, list[str]] = {}
    for c in caps["annotations"]:
        by_image.setdefault(c["image_id"], []).append(c["caption"].lower())
    for ann in pan["annotations"]:
        present = {names[s["category_id"]] for s in ann["segments_info"]}
        for caption in by_image[ann["image_id"]]:
            for name in present:
                assert name in caption or plural(name) in caption, (name, caption)
            assert len(set(by_image[ann["image_id"]])) == len(by_image[ann["image_id"]])  # no repeats


def test_plural_when_two_of_a_kind() -> None:
    found = []
    for index in range(60):
        out = render_toy_image(0, "train2017", index)
        kinds = [s["category_id"] for s in out["segments"] if s["category_id"] < 92]
        if len(kinds) != len(set(kinds)):
            found.append(" ".join(out["captions"]))
    assert found, "no image with two shapes of one kind in 60 images"
    assert any(w in " ".join(found) for w in ("two ", "three ", "one "))


def test_deterministic_given_seed(tmp_path: Path) -> None:
    write_toy_dataset(tmp_path / "a", 3, 2, image_size=64, seed=7)
    write_toy_dataset(tmp_path / "b", 3, 2, image_size=64, seed=7)
    write_toy_dataset(tmp_path / "c", 3, 2, image_size=64, seed=8)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 3 + 2 + 3 + 2 + 4 + 1
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    jpg = Path("train2017") / "000000000001.jpg"
    assert (tmp_path / "a" / jpg).read_bytes() != (tmp_path / "c" / jpg).read_bytes()


def test_progress_called_per_image(tmp_path: Path) -> None:
    calls: list[int] = []
    summary = write_toy_dataset(tmp_path, 2, 1, image_size=48, progress=calls.append)
    assert sum(calls) == 3
    assert summary["images"] == {"train2017": 2, "val2017": 1}
