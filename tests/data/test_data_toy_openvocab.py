"""The open-vocabulary toy world: groups kept apart by split, void caption-only pixels, no colour class."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openseg_cli.data.toy_drawing import PALETTE, SHAPES, TEXTURE_AMPLITUDE, TEXTURES, shape_mask, texture
from openseg_cli.data.toy_openvocab import (
    CLASSES,
    GROUPS,
    class_groups,
    render_openvocab_image,
    write_openvocab_dataset,
)

BY_ID = {c.id: c for c in CLASSES}
BY_NAME = {c.name: c for c in CLASSES}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy-ov")
    write_openvocab_dataset(root, num_train=60, num_val=30, num_clip=40, image_size=96, seed=3)
    return root


def _ids(png: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(png).convert("RGB"), dtype=np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _split(root: Path, split: str) -> tuple[dict, dict[int, list[str]]]:
    pan = json.loads((root / "annotations" / f"panoptic_{split}.json").read_text())
    caps = json.loads((root / "annotations" / f"captions_{split}.json").read_text())
    by_image: dict[int, list[str]] = defaultdict(list)
    for c in caps["annotations"]:
        by_image[c["image_id"]].append(c["caption"].lower())
    return pan, by_image


def _named(captions: list[str]) -> set[str]:
    words = {w.strip(".,") for text in captions for w in text.split()}
    return {c.name for c in CLASSES if c.name in words or c.name + "s" in words or c.name + "es" in words}


def test_world_has_three_groups_of_things_and_stuff_and_writes_them(world: Path) -> None:
    groups = json.loads((world / "class_groups.json").read_text())
    assert groups == class_groups() and list(groups) == list(GROUPS)
    assert len(CLASSES) >= 15 and len({c.name for c in CLASSES}) == len(CLASSES)
    for names in groups.values():
        kinds = {BY_NAME[n].isthing for n in names}
        assert kinds == {True, False}  # every group holds things and stuff
    assert (world / "classes.txt").read_text().split() == [c.name for c in CLASSES]


def test_training_split_never_shows_or_names_an_unseen_class(world: Path) -> None:
    pan, captions = _split(world, "train2017")
    unseen = set(class_groups()["unseen"])
    assert {c["name"] for c in pan["categories"]} == set(class_groups()["seen"])
    caption_only_named = set()
    for ann in pan["annotations"]:
        named = _named(captions[ann["image_id"]])
        assert not named & unseen
        caption_only_named |= named & set(class_groups()["caption_only"])
        assert all(BY_ID[s["category_id"]].group == "seen" for s in ann["segments_info"])
    assert caption_only_named == set(class_groups()["caption_only"])  # all of them, in 60 images
    corpus = (world / "clip" / "captions.tsv").read_text().lower()
    every_caption = " ".join(text for texts in captions.values() for text in texts)
    assert not any(name in every_caption for name in unseen)  # not even as a part of a word
    assert {n for n in unseen if n in corpus} == unseen  # the CLIP corpus names every unseen class


def test_caption_only_pixels_are_void_in_training_and_labelled_in_val(world: Path) -> None:
    """A training image's caption names its caption-only classes, whose pixels the PNG leaves at 0."""
    pan, captions = _split(world, "train2017")
    void_when_caption_only = []
    for ann in pan["annotations"]:
        ids = _ids(world / "annotations" / "panoptic_train2017" / ann["file_name"])
        assert set(np.unique(ids).tolist()) - {0} == {s["id"] for s in ann["segments_info"]}
        has_caption_only = bool(_named(captions[ann["image_id"]]) & set(class_groups()["caption_only"]))
        void_when_caption_only.append(has_caption_only == bool((ids == 0).any()))
    assert all(void_when_caption_only)
    val, val_captions = _split(world, "val2017")
    seen_groups = set()
    for ann in val["annotations"]:
        ids = _ids(world / "annotations" / "panoptic_val2017" / ann["file_name"])
        assert (ids != 0).all()  # full semantic labels
        labelled = {BY_ID[s["category_id"]].name for s in ann["segments_info"]}
        assert labelled == _named(val_captions[ann["image_id"]])
        seen_groups |= {BY_NAME[n].group for n in labelled}
    assert seen_groups == set(GROUPS)


def test_colour_does_not_identify_a_class(world: Path) -> None:
    """Every class appears in several colours and colours are shared: the mean colour of a segment
    names several classes each."""
    pan, _ = _split(world, "val2017")
    palette = np.array(list(PALETTE.values()), np.float64)
    colours_of: dict[str, set[int]] = defaultdict(set)
    for ann in pan["annotations"]:
        image = np.asarray(
            Image.open(world / "val2017" / ann["file_name"].replace(".png", ".jpg")), np.float64
        )
        ids = _ids(world / "annotations" / "panoptic_val2017" / ann["file_name"])
        for seg in ann["segments_info"]:
            mean = image[ids == seg["id"]].mean(axis=0)
            colours_of[BY_ID[seg["category_id"]].name].add(int(np.argmin(((palette - mean) ** 2).sum(1))))
    assert sum(len(c) >= 2 for c in colours_of.values()) >= 0.8 * len(colours_of)
    classes_per_colour = defaultdict(set)
    for name, colours in colours_of.items():
        for colour in colours:
            classes_per_colour[colour].add(name)
    assert all(len(names) >= 2 for names in classes_per_colour.values())


def test_no_ground_in_every_image_and_the_corpus_is_image_caption_pairs(world: Path) -> None:
    for split in ("train2017", "val2017"):
        pan, captions = _split(world, split)
        grounds = [
            _named(captions[a["image_id"]]) & {c.name for c in CLASSES if not c.isthing}
            for a in pan["annotations"]
        ]
        for name in set().union(*grounds):
            assert sum(name in g for g in grounds) < len(grounds)
    lines = (world / "clip" / "captions.tsv").read_text().splitlines()
    files = {ln.split("\t")[0] for ln in lines}
    assert len(files) == 40 and all((world / "clip" / "images" / f).is_file() for f in files)
    assert 3 * 40 <= len(lines) <= 5 * 40


def test_clip_corpus_has_close_ups_and_ground_photos_and_openseg_splits_only_scenes() -> None:
    def shapes_named(split: str, index: int) -> int:
        captions = render_openvocab_image(5, split, index, image_size=64)["captions"]
        return len(_named(captions) & {c.name for c in CLASSES if c.isthing})

    corpus = [shapes_named("clip", i) for i in range(200)]
    scenes = [shapes_named("train2017", i) for i in range(100)]
    assert 0.04 < corpus.count(0) / 200 < 0.2  # a tenth are grounds alone
    assert corpus.count(1) / 200 > 0.45  # close-ups (40%) plus one-shape scenes
    assert 0 not in scenes  # a training scene always shows (and names) a shape


def test_rendering_is_deterministic_and_split_independent(tmp_path: Path) -> None:
    a = write_openvocab_dataset(tmp_path / "a", 5, 3, 2, image_size=64, seed=7)
    b = write_openvocab_dataset(tmp_path / "b", 9, 3, 2, image_size=64, seed=7)  # more train images
    assert a["captions"]["val2017"] == b["captions"]["val2017"]
    for name in ("val2017/000001000001.jpg", "annotations/panoptic_train2017/000000000003.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize("kind", SHAPES)
def test_every_shape_is_a_sizeable_connected_silhouette(kind: str) -> None:
    from scipy import ndimage

    mask = shape_mask(kind, 64, 64, 32, 32, 14, 0.7)
    assert 0.05 < mask.mean() < 0.45
    labels, count = ndimage.label(mask)
    largest = np.bincount(labels.ravel())[1:].max()
    assert largest >= 0.95 * mask.sum()  # one piece, up to a crescent's pixel-thin tips


@pytest.mark.parametrize("kind", sorted(TEXTURES))
def test_textures_keep_their_pattern_visible_on_every_colour(kind: str) -> None:
    rng = np.random.default_rng(0)
    for colour in PALETTE:
        tex = texture(kind, colour, 48, 48, rng)
        assert tex.shape == (48, 48, 3)
        assert tex.std(axis=(0, 1)).max() > 0.25 * TEXTURE_AMPLITUDE  # a pattern, not a flat colour
        assert np.abs(tex.mean(axis=(0, 1)) - PALETTE[colour]).max() < 45
