"""The open-vocabulary toy world: 18 classes in three groups, in the real COCO panoptic + captions formats.

Groups (written to `class_groups.json`, read by `openseg evaluate --class-groups`):
- **seen**: masks in the training annotations and named in training captions;
- **caption_only**: drawn in training images and named in their captions, but their pixels are void in
  the training panoptic PNGs (image-level labels only: the paper's central claim);
- **unseen**: in no OpenSeg training image or caption; only in the CLIP corpus and in val.

Colour never identifies a class: every shape and every ground takes any colour of one shared palette
(`toy_drawing.PALETTE`), shapes differ from their ground by colour distance only. Grounds are patterns
(blades, waves, speckles, bricks, grain, pebbles); an image has one ground or two split by a wavy
horizon, drawn from the allowed ones, so no ground sits in every image.

Splits: `train2017` (seen + caption_only; only seen segments listed), `val2017` (all groups, every
segment listed: full semantic labels), and `clip/` (all groups, images + `captions.tsv` only: the corpus
a toy CLIP is pretrained on; besides scenes it holds close-ups of one shape and photos of a ground alone,
`_shot`). Shapes stand roughly upright (`TILT`). Each image has its own RNG stream (seed, split, index).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from openseg_cli.data.captions_openvocab import close_up_captions, ground_captions, make_captions
from openseg_cli.data.toy import segment_info, unique_ids, write_coco_split
from openseg_cli.data.toy_drawing import PALETTE, colour_distance, shape_mask, texture

GROUPS = ("seen", "caption_only", "unseen")


@dataclass(frozen=True)
class ToyClass:
    id: int  # COCO category id: things < 92 <= stuff, like COCO
    name: str
    isthing: bool
    group: str  # one of GROUPS


CLASSES: tuple[ToyClass, ...] = (
    ToyClass(1, "circle", True, "seen"),
    ToyClass(2, "square", True, "seen"),
    ToyClass(3, "triangle", True, "seen"),
    ToyClass(4, "star", True, "seen"),
    ToyClass(5, "ring", True, "caption_only"),
    ToyClass(6, "cross", True, "caption_only"),
    ToyClass(7, "heart", True, "caption_only"),
    ToyClass(8, "arrow", True, "caption_only"),
    ToyClass(9, "crescent", True, "unseen"),
    ToyClass(10, "flower", True, "unseen"),
    ToyClass(11, "bolt", True, "unseen"),
    ToyClass(12, "diamond", True, "unseen"),
    ToyClass(92, "grass", False, "seen"),
    ToyClass(93, "water", False, "seen"),
    ToyClass(94, "sand", False, "caption_only"),
    ToyClass(95, "brick", False, "caption_only"),
    ToyClass(96, "wood", False, "unseen"),
    ToyClass(97, "gravel", False, "unseen"),
)
# Which groups an image of each split may draw, and which groups get listed segments.
_DRAWN = {"train2017": ("seen", "caption_only"), "val2017": GROUPS, "clip": GROUPS}
_LABELLED = {"train2017": ("seen",), "val2017": GROUPS, "clip": ()}
_SPLIT_CODE = {"train2017": 11, "val2017": 12, "clip": 13}
_MIN_CONTRAST = 120.0  # RGB distance between a shape's colour and the grounds it sits on
# 40% of the CLIP corpus is object-centric (one large shape on one ground, captioned mostly by the shape),
# like much of the web's alt-text data: a toy CLIP trained on scenes alone, whose captions always name
# the ground, learned the grounds (75% accuracy) and no shape (chance) in its few CPU minutes.
_CLOSE_UPS = 0.4
_GROUND_ONLY = 0.1  # and a tenth shows a ground alone, captioned by it
THING_RADIUS = (0.13, 0.25)  # of the short side
# Shapes stand roughly upright (±17°), as objects do in photos: with any rotation, a CPU-minutes CNN
# learned 12 shape classes at half the rate (supervised: 52% vs 75% accuracy after 400 steps).
TILT = 0.3


def class_groups() -> dict[str, list[str]]:
    """{group: [class names]} in GROUPS order: the `class_groups.json` of this world."""
    return {g: [c.name for c in CLASSES if c.group == g] for g in GROUPS}


def _categories(groups: tuple[str, ...]) -> list[dict[str, Any]]:
    colours = list(PALETTE.values())
    return [
        {
            "id": c.id,
            "name": c.name,
            "isthing": int(c.isthing),
            "color": list(colours[i % len(colours)]),
            "supercategory": "shape" if c.isthing else "ground",
        }
        for i, c in enumerate(CLASSES)
        if c.group in groups
    ]


def _grounds(
    h: int, w: int, names: list[str], rng: np.random.Generator, single: bool = False
) -> list[tuple[str, str, np.ndarray]]:
    """One ground (60%, or always when `single`) or two split by a wavy horizon: [(class, colour, mask)]."""
    colours = list(PALETTE)
    if single or rng.random() < 0.6:
        return [
            (
                names[int(rng.integers(len(names)))],
                colours[int(rng.integers(len(colours)))],
                np.ones((h, w), bool),
            )
        ]
    top, bottom = rng.choice(names, size=2, replace=False)
    c_top, c_bottom = rng.choice(colours, size=2)
    x = np.arange(w)
    horizon = h * rng.uniform(0.35, 0.6) + 4 * np.sin(x / rng.uniform(6, 14) + rng.uniform(0, 6.3))
    upper = np.arange(h)[:, None] < horizon[None, :]
    return [(str(top), str(c_top), upper), (str(bottom), str(c_bottom), ~upper)]


def _shape_colour(ground_colours: list[str], rng: np.random.Generator) -> str:
    """A palette colour far enough from every ground colour of the image to be seen."""
    options = [c for c in PALETTE if all(colour_distance(c, g) >= _MIN_CONTRAST for g in ground_colours)]
    return options[int(rng.integers(len(options)))]


def _things(h: int, w: int, names: list[str], ground_colours: list[str], rng: np.random.Generator, shot: str):
    """Shapes [(class, colour, visible mask)]: 1-3 in a "scene", one large one (radius 22-33% of the short
    side) in a "close_up", none on a "ground" photo. A placement hiding > 40% of an earlier one is retried.
    """
    if shot == "ground":
        return []
    count = 1 if shot == "close_up" else int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
    radius = (0.22, 0.33) if shot == "close_up" else THING_RADIUS
    placed: list[tuple[str, str, np.ndarray]] = []
    visible = np.zeros((h, w), np.int32)  # index+1 of the shape on top, 0 = ground
    for _ in range(count):
        reuse = placed and rng.random() < 0.3  # repeated kinds give plural captions
        kind = placed[int(rng.integers(len(placed)))][0] if reuse else names[int(rng.integers(len(names)))]
        colour = _shape_colour(ground_colours, rng)
        for _try in range(12):
            r = rng.uniform(*radius) * min(h, w)
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            mask = shape_mask(kind, h, w, cx, cy, r, rng.uniform(-TILT, TILT))
            covers = [
                (mask & (visible == i + 1)).sum() / max(1, (visible == i + 1).sum())
                for i in range(len(placed))
            ]
            if mask.sum() >= 0.01 * h * w and all(f <= 0.4 for f in covers):
                placed.append((kind, colour, mask))
                visible[mask] = len(placed)
                break
    return [(k, c, visible == i + 1) for i, (k, c, _) in enumerate(placed)]


def _shot(split: str, rng: np.random.Generator) -> str:
    """What the image shows: a "scene" (OpenSeg's splits always), or, in the CLIP corpus, sometimes a
    "close_up" of one shape or a photo of a "ground" alone."""
    if split != "clip":
        return "scene"
    draw = rng.random()
    return "close_up" if draw < _CLOSE_UPS else "ground" if draw < _CLOSE_UPS + _GROUND_ONLY else "scene"


def render_openvocab_image(seed: int, split: str, index: int, image_size: int = 128) -> dict[str, Any]:
    """One image of `split` (train2017 | val2017 | clip): `{"image": uint8 [H, W, 3], "ids": int64 [H, W]
    (0 = void), "segments": COCO segments_info, "captions": [str]}`. KeyError for another split.

    The long side is `image_size`, the short side 75-100% of it. Only the segments of the split's
    labelled groups are listed and painted in `ids`; captions name every class drawn.
    """
    drawn, labelled = _DRAWN[split], _LABELLED[split]
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], index])
    long_side, short_side = image_size, int(rng.integers(int(0.75 * image_size), image_size + 1))
    h, w = (short_side, long_side) if rng.random() < 0.6 else (long_side, short_side)
    allowed = [c for c in CLASSES if c.group in drawn]
    shot = _shot(split, rng)
    grounds = _grounds(h, w, [c.name for c in allowed if not c.isthing], rng, single=shot != "scene")
    things = _things(h, w, [c.name for c in allowed if c.isthing], [g[1] for g in grounds], rng, shot)
    image = np.zeros((h, w, 3), np.float32)
    for name, colour, mask in grounds:
        image[mask] = texture(name, colour, h, w, rng)[mask]
    for _name, colour, mask in things:
        image[mask] = np.asarray(PALETTE[colour], np.float32) + rng.normal(0, 6, (int(mask.sum()), 1))
    by_name = {c.name: c for c in CLASSES}
    covered = np.zeros((h, w), bool)
    for _name, _c, mask in things:
        covered |= mask
    layers = [(name, mask & ~covered) for name, _c, mask in grounds]
    layers += [(name, mask) for name, _c, mask in things]
    layers = [(by_name[n], m) for n, m in layers if m.any()]
    ids = np.zeros((h, w), np.int64)
    segments = []
    for seg_id, (cls, mask) in zip(unique_ids(rng, len(layers)), layers, strict=True):
        if cls.group in labelled:
            ids[mask] = seg_id
            segments.append(segment_info(seg_id, cls.id, mask))
    segments.sort(key=lambda s: s["category_id"] >= 92)  # things first, like COCO
    present = {cls.name for cls, _m in layers}
    shapes = [(k, c) for k, c, _ in things if k in present]
    ground_names = [g for g, _c, _m in grounds if g in present]
    if shot == "ground":
        captions = ground_captions(ground_names[0], rng)
    elif shot == "close_up" and len(shapes) == 1:
        captions = close_up_captions(*shapes[0], ground_names[0], rng)
    else:
        captions = make_captions(shapes, ground_names, rng, short=split == "clip")
    return {
        "image": np.clip(image, 0, 255).astype(np.uint8),
        "ids": ids,
        "segments": segments,
        "captions": captions,
    }


def _write_clip_corpus(root: Path, count: int, seed: int, size: int, progress) -> int:
    """`clip/images/*.jpg` + `clip/captions.tsv` (file_name<TAB>caption, several lines per image)."""
    folder = root / "clip" / "images"
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(count):
        out = render_openvocab_image(seed, "clip", index, size)
        name = f"{index:08d}.jpg"
        Image.fromarray(out["image"]).save(folder / name, quality=92)
        lines += [f"{name}\t{text}" for text in out["captions"]]
        if progress is not None:
            progress(1)
    (root / "clip" / "captions.tsv").write_text("\n".join(lines) + "\n")
    return len(lines)


def write_openvocab_dataset(
    root: str | Path,
    num_train: int,
    num_val: int,
    num_clip: int,
    image_size: int = 128,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write the open-vocabulary toy world under `root`.

    COCO layout for `train2017`/`val2017` (the train panoptic JSON lists only the seen categories: they
    are the ones with masks), the CLIP corpus in `clip/`, `classes.txt` (every class, category-id order)
    and `class_groups.json`. `progress(1)` per image. ValueError for negative counts or image_size < 32.
    """
    if min(num_train, num_val, num_clip) < 0 or image_size < 32:
        raise ValueError("image counts must be >= 0 and image_size >= 32")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    description = f"openseg open-vocabulary toy shapes (seed {seed})"
    captions = {}
    for split, count, first_id in (("train2017", num_train, 1), ("val2017", num_val, 1_000_001)):
        captions[split] = write_coco_split(
            root,
            split,
            count,
            first_id,
            lambda index, split=split: render_openvocab_image(seed, split, index, image_size),
            _categories(_LABELLED[split]),
            description,
            progress,
        )
    captions["clip"] = _write_clip_corpus(root, num_clip, seed, image_size, progress)
    (root / "classes.txt").write_text("\n".join(c.name for c in CLASSES) + "\n")
    (root / "class_groups.json").write_text(json.dumps(class_groups(), indent=1) + "\n")
    return {
        "root": str(root),
        "images": {"train2017": num_train, "val2017": num_val, "clip": num_clip},
        "captions": captions,
        "categories": [c.name for c in CLASSES],
        "classes_file": str(root / "classes.txt"),
        "groups_file": str(root / "class_groups.json"),
        "seed": seed,
    }
