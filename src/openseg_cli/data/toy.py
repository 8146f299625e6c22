"""A toy dataset in the real COCO panoptic + captions formats: coloured shapes on textured ground.

Things are shapes (circle, square, triangle, star, ring, cross), each kind in its own named colours
(`KIND_COLOURS`), 1-3 per image, drawn in
painter's order (panoptic = visible pixels); stuff is the textured background (grass, sand, water), one
class or two split by a wavy horizon. Captions name every shape and every background class present,
so the toy task is learnable from captions alone. numpy + PIL only; each image has its own RNG stream
(seed, split, index), so output is deterministic and an image does not depend on how many come after it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from openseg_cli.data.captions_toy import make_captions

# (id, name, synonyms, isthing, colour for visualisation); ids have a gap like COCO (things < 92 <= stuff)
TOY_CATEGORIES: tuple[tuple[int, str, str, int, tuple[int, int, int]], ...] = (
    (1, "circle", "disc", 1, (220, 20, 60)),
    (2, "square", "box", 1, (119, 11, 32)),
    (3, "triangle", "", 1, (0, 0, 142)),
    (4, "star", "", 1, (250, 170, 30)),
    (5, "ring", "hoop", 1, (106, 0, 228)),
    (6, "cross", "plus sign", 1, (0, 60, 100)),
    (92, "grass", "lawn", 0, (152, 251, 152)),
    (93, "sand", "beach", 0, (255, 228, 196)),
    (94, "water", "sea", 0, (0, 114, 143)),
)
THINGS = [c for c in TOY_CATEGORIES if c[3]]
STUFF = [c for c in TOY_CATEGORIES if not c[3]]
# Each kind of shape comes in its own colours, so colour and form both tell kinds apart: a tiny model
# trained from scratch in minutes on a CPU can then learn the toy task from captions alone (with one
# shared palette it needed far longer than the demo's budget). Blue, green and beige are left out on
# purpose: they are the colours of water, grass and sand.
KIND_COLOURS = {
    "circle": ("red", "pink"),
    "square": ("purple", "brown"),
    "triangle": ("yellow", "orange"),
    "star": ("white",),
    "ring": ("black",),
    "cross": ("cyan",),
}
COLOURS = {
    "red": (215, 35, 35),
    "pink": (245, 130, 190),
    "purple": (130, 40, 170),
    "brown": (120, 70, 30),
    "yellow": (245, 215, 30),
    "orange": (245, 140, 20),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "cyan": (40, 210, 210),
}
_SPLIT_CODE = {"train2017": 1, "val2017": 2}


def _texture(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Background texture [h, w, 3] float for a stuff class."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    noise = rng.normal(0.0, 1.0, (h, w)).astype(np.float32)
    if kind == "grass":  # green noise with vertical blade streaks
        streak = np.sin(x * 1.3 + rng.uniform(0, 6.3)) * 12 + rng.normal(0, 8, (1, w))
        base, amp = np.array([60, 140, 50], np.float32), (noise * 14 + streak)[..., None]
        return base + amp * np.array([0.6, 1.0, 0.5], np.float32)
    if kind == "sand":  # speckled beige
        speck = (rng.random((h, w)) < 0.06) * -45.0
        return np.array([222, 198, 150], np.float32) + (noise * 8 + speck)[..., None]
    # water: blue waves
    phase = rng.uniform(0, 6.3)
    waves = np.sin(2 * np.pi * (y / 9.0 + 0.25 * np.sin(x / 11.0 + phase))) * 22
    return np.array([40, 95, 185], np.float32) + (waves + noise * 5)[..., None] * np.array([0.5, 0.8, 1.0])


def _polygon(cx: float, cy: float, radii: list[float], angle: float) -> list[tuple[float, float]]:
    n = len(radii)
    return [
        (cx + r * np.cos(angle + 2 * np.pi * i / n), cy + r * np.sin(angle + 2 * np.pi * i / n))
        for i, r in enumerate(radii)
    ]


def _shape_mask(kind: str, h: int, w: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Boolean mask [h, w] of one shape with circumradius ~r centred at (cx, cy)."""
    canvas = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if kind in ("circle", "ring"):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        if kind == "ring":
            q = 0.55 * r
            draw.ellipse((cx - q, cy - q, cx + q, cy + q), fill=0)
    elif kind == "square":
        draw.polygon(_polygon(cx, cy, [r * 1.15] * 4, angle), fill=255)
    elif kind == "triangle":
        draw.polygon(_polygon(cx, cy, [r * 1.25] * 3, angle), fill=255)
    elif kind == "star":
        draw.polygon(_polygon(cx, cy, [r * 1.2, r * 0.5] * 5, angle), fill=255)
    else:  # cross: 12-point plus sign, arms of half-width 0.32 r
        a, b = 0.32 * r, r * 1.1
        pts = [(a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a), (-a, -b), (a, -b), (a, -a), (b, -a)]
        pts += [(b, a), (a, a)]
        c, s = np.cos(angle), np.sin(angle)
        draw.polygon([(cx + px * c - py * s, cy + px * s + py * c) for px, py in pts], fill=255)
    return np.asarray(canvas) > 127


def _place_things(h: int, w: int, rng: np.random.Generator) -> list[tuple[str, str, np.ndarray]]:
    """Draw 1-3 shapes; a placement that would hide > 40% of an earlier shape is retried."""
    count = int(rng.choice([1, 2, 3], p=[0.35, 0.4, 0.25]))
    placed: list[tuple[str, str, np.ndarray]] = []
    visible = np.zeros((h, w), np.int32)  # index+1 of the shape on top, 0 = background
    for _ in range(count):
        reuse = placed and rng.random() < 0.35  # repeated kinds give plural captions
        kind = placed[int(rng.integers(len(placed)))][0] if reuse else THINGS[rng.integers(len(THINGS))][1]
        palette = KIND_COLOURS[kind]
        colour = palette[int(rng.integers(len(palette)))]
        for _try in range(12):
            r = rng.uniform(0.1, 0.21) * min(h, w)  # diameter >= 20% of the short side
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            mask = _shape_mask(kind, h, w, cx, cy, r, rng.uniform(0, 2 * np.pi))
            hidden_ok = all(
                (mask & (visible == i + 1)).sum() <= 0.4 * (visible == i + 1).sum()
                for i in range(len(placed))
            )
            if hidden_ok and mask.any():
                placed.append((kind, colour, mask))
                visible[mask] = len(placed)
                break
    return [(k, c, visible == i + 1) for i, (k, c, _) in enumerate(placed)]


def _stuff_layout(h: int, w: int, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """One stuff class, or two split by a wavy horizon (top, bottom)."""
    names = [s[1] for s in STUFF]
    if rng.random() < 0.7:
        return [(names[int(rng.integers(len(names)))], np.ones((h, w), bool))]
    top, bottom = rng.choice(names, size=2, replace=False)
    x = np.arange(w)
    horizon = h * rng.uniform(0.35, 0.6) + 4 * np.sin(x / rng.uniform(6, 14) + rng.uniform(0, 6.3))
    upper = np.arange(h)[:, None] < horizon[None, :]
    return [(str(top), upper), (str(bottom), ~upper)]


def unique_ids(rng: np.random.Generator, n: int) -> list[int]:
    """n distinct random segment ids in 1..2^24-1 (all three PNG channels get used)."""
    ids: list[int] = []
    while len(ids) < n:
        v = int(rng.integers(1, 256**3))
        if v not in ids:
            ids.append(v)
    return ids


def segment_info(seg_id: int, cat_id: int, mask: np.ndarray) -> dict[str, Any]:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    bbox = [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1]
    return {"id": seg_id, "category_id": cat_id, "iscrowd": 0, "area": int(mask.sum()), "bbox": bbox}


def render_toy_image(seed: int, split: str, index: int, image_size: int = 128) -> dict[str, Any]:
    """Render one toy image: `{"image": uint8 [H,W,3], "ids": int64 [H,W], "segments", "captions"}`.

    The long side is `image_size`, the short side 75-100% of it.
    """
    rng = np.random.default_rng([seed, _SPLIT_CODE.get(split, 3), index])
    long_side, short_side = image_size, int(rng.integers(int(0.75 * image_size), image_size + 1))
    h, w = (short_side, long_side) if rng.random() < 0.6 else (long_side, short_side)
    image = np.zeros((h, w, 3), np.float32)
    ids = np.zeros((h, w), np.int64)
    seg_ids = iter(unique_ids(rng, 8))
    cat_of = {c[1]: c[0] for c in TOY_CATEGORIES}
    layers: list[tuple[int, int, np.ndarray]] = []
    stuff = _stuff_layout(h, w, rng)
    for name, mask in stuff:
        image[mask] = _texture(name, h, w, rng)[mask]
        layers.append((next(seg_ids), cat_of[name], mask))
    things = _place_things(h, w, rng)
    for kind, colour, mask in things:
        shade = rng.normal(0, 6, (int(mask.sum()), 1))
        image[mask] = np.asarray(COLOURS[colour], np.float32) + shade
        layers.append((next(seg_ids), cat_of[kind], mask))
    for seg_id, _cat, mask in layers:  # painter's order: later layers win
        ids[mask] = seg_id
    segments = [segment_info(i, c, ids == i) for i, c, _ in layers if (ids == i).any()]
    segments.sort(key=lambda s: s["category_id"] >= 92)  # things first, like COCO
    stuff_layers = zip(stuff, layers[: len(stuff)], strict=True)
    present_stuff = [name for (name, _m), (i, _c, _) in stuff_layers if (ids == i).any()]
    captions = make_captions([(k, c) for k, c, _ in things], present_stuff, rng)
    return {
        "image": np.clip(image, 0, 255).astype(np.uint8),
        "ids": ids,
        "segments": segments,
        "captions": captions,
    }


def encode_panoptic_png(ids: np.ndarray) -> bytes:
    """Encode an int id map [H,W] as a COCO panoptic RGB PNG (id = R + 256 G + 256^2 B)."""
    rgb = np.stack([ids % 256, (ids // 256) % 256, ids // 65536], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def toy_categories() -> list[dict[str, Any]]:
    """The COCO `categories` records of this toy world."""
    return [
        {"id": i, "name": n, "isthing": t, "color": list(col), "supercategory": "shape" if t else "ground"}
        for i, n, _syn, t, col in TOY_CATEGORIES
    ]


def write_coco_split(
    root: Path,
    split: str,
    count: int,
    first_id: int,
    render: Callable[[int], dict[str, Any]],
    categories: list[dict[str, Any]],
    description: str,
    progress: Callable[[int], None] | None,
) -> int:
    """Write `count` rendered images as one split of the COCO panoptic + captions layout under `root`.

    `render(index)` returns `render_toy_image`'s dict; image ids are first_id + index. Writes
    `{split}/*.jpg`, `annotations/panoptic_{split}.json` + PNG folder (with `categories`) and
    `annotations/captions_{split}.json`. Returns the number of captions written.
    """
    (root / split).mkdir(parents=True, exist_ok=True)
    png_dir = root / "annotations" / f"panoptic_{split}"
    png_dir.mkdir(parents=True, exist_ok=True)
    images, annotations, captions = [], [], []
    for index in range(count):
        image_id = first_id + index
        out = render(index)
        stem = f"{image_id:012d}"
        Image.fromarray(out["image"]).save(root / split / f"{stem}.jpg", quality=92)
        (png_dir / f"{stem}.png").write_bytes(encode_panoptic_png(out["ids"]))
        h, w = out["ids"].shape
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "width": w, "height": h, "license": 0})
        annotations.append(
            {"image_id": image_id, "file_name": f"{stem}.png", "segments_info": out["segments"]}
        )
        for text in out["captions"]:
            captions.append({"image_id": image_id, "id": len(captions) + first_id * 10, "caption": text})
        if progress is not None:
            progress(1)
    info = {"description": description, "version": "1.0"}
    licenses = [{"id": 0, "name": "CC0 (generated)", "url": ""}]
    panoptic = {"info": info, "licenses": licenses, "images": images, "annotations": annotations}
    panoptic["categories"] = categories
    (root / "annotations" / f"panoptic_{split}.json").write_text(json.dumps(panoptic))
    caps = {"info": info, "licenses": licenses, "images": images, "annotations": captions}
    (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(caps))
    return len(captions)


def write_toy_dataset(
    root: str | Path,
    num_train: int,
    num_val: int,
    image_size: int = 128,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write the toy dataset under `root` in the standard COCO panoptic download layout.

    Writes `train2017/*.jpg`, `val2017/*.jpg`, `annotations/panoptic_{split}.json` + PNG folders,
    `annotations/captions_{split}.json` and `classes.txt` (one class per line, synonyms comma-separated,
    in category-id order). `progress(1)` is called once per image. Returns a summary dict.
    """
    if num_train < 0 or num_val < 0 or image_size < 32:
        raise ValueError("num_train/num_val must be >= 0 and image_size >= 32")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    description = f"openseg toy shapes (seed {seed})"
    n_caps = {
        split: write_coco_split(
            root,
            split,
            count,
            first_id,
            lambda index, split=split: render_toy_image(seed, split, index, image_size),
            toy_categories(),
            description,
            progress,
        )
        for split, count, first_id in (("train2017", num_train, 1), ("val2017", num_val, 1_000_001))
    }
    lines = [", ".join([n] + ([s] if s else [])) for _i, n, s, _t, _c in TOY_CATEGORIES]
    (root / "classes.txt").write_text("\n".join(lines) + "\n")
    return {
        "root": str(root),
        "images": {"train2017": num_train, "val2017": num_val},
        "captions": n_caps,
        "categories": [c[1] for c in TOY_CATEGORIES],
        "classes_file": str(root / "classes.txt"),
        "seed": seed,
    }
