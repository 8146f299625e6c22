"""ADE20K full (`ADE20K_2021_17_01`) → ADE-847 detectron2 images and labels.

Input (the official ADE20K_2021_17_01 download), under ROOT:
    ADE20K_2021_17_01/images/ADE/{training,validation}/<scene folders>/*.jpg
    … /*_seg.png   RGB; object class id = R // 10 * 256 + G (0 = unlabelled), B = instances
Output, under OUT (default ROOT), split taken from the folder:
    ADE20K_2021_17_01/images_detectron2/<split>/*.jpg
    ADE20K_2021_17_01/annotations_detectron2/<split>/*.tif   uint16 trainId 0..846, 65535 = ignore
The shorter side is resized to 512 when above 512 (image bilinear, label nearest), as MaskFormer's
prepare step does; ids outside the 847-class table (`assets/vocabularies/ade847_ade_ids.json`) → 65535.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from openseg_cli.atomic import atomic_write
from openseg_cli.data.benchmarks.common import (
    Item,
    LabelProblem,
    Plan,
    Spec,
    check_same_size,
    image_size,
    label_file_ok,
    locate_base,
    open_image,
    pair_files,
    place_image,
    require_dir,
    write_label,
)

DATASET = "ADE20K_2021_17_01"
NUM_CLASSES = 847
IGNORE = 65535
SHORT_SIDE = 512
SPLITS = ("training", "validation")
FULL_SPLIT_SIZES = {"training": 25574, "validation": 2000}
_MAX_ADE_ID = 25 * 256 + 255  # R // 10 ≤ 25 for R ≤ 255


@lru_cache(maxsize=1)
def ade847_table() -> list[tuple[int, int, str]]:
    """The shipped 847 rows (ADE full object id, trainId, name), in trainId order."""
    text = (
        resources.files("openseg_cli").joinpath("assets/vocabularies/ade847_ade_ids.json").read_text("utf-8")
    )
    return [(int(ade_id), int(train_id), str(name)) for ade_id, train_id, name in json.loads(text)]


@lru_cache(maxsize=1)
def _lookup() -> np.ndarray:
    """[_MAX_ADE_ID + 1] uint16: ADE full object id → trainId, 65535 for ids outside the table."""
    table = np.full(_MAX_ADE_ID + 1, IGNORE, dtype=np.uint16)
    for ade_id, train_id, _ in ade847_table():
        table[ade_id] = train_id
    return table


def ade_object_ids(seg_rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 `*_seg.png` → [H, W] int32 ADE full object ids (R // 10 * 256 + G)."""
    return (seg_rgb[..., 0].astype(np.int32) // 10) * 256 + seg_rgb[..., 1].astype(np.int32)


def resized_size(width: int, height: int, short_side: int = SHORT_SIDE) -> tuple[int, int]:
    """(W, H) with the shorter side `short_side` when it is longer than that (aspect kept, rounded)."""
    if min(width, height) <= short_side:
        return width, height
    if width >= height:
        return round(width / height * short_side), short_side
    return short_side, round(height / width * short_side)


def resize_nearest(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[H, W] → [size[1], size[0]], nearest neighbour with OpenCV's INTER_NEAREST sampling (floor)."""
    height, width = label.shape
    rows = np.minimum((np.arange(size[1]) * (height / size[1])).astype(np.int64), height - 1)
    cols = np.minimum((np.arange(size[0]) * (width / size[0])).astype(np.int64), width - 1)
    return label[rows[:, None], cols[None, :]]


def convert_ade847(seg_rgb: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """[H, W, 3] seg map → uint16 847-class labels, resized (nearest) to `size` (W, H) when given."""
    labels = _lookup()[ade_object_ids(seg_rgb)]
    return labels if size is None or size == labels.shape[::-1] else resize_nearest(labels, size)


def plan_ade847(root: Path, out: Path | None = None, splits: tuple[str, ...] = ("validation",)) -> Plan:
    """List images and seg maps of `splits`; InputFileError when a split folder is missing."""
    base = locate_base(root, (DATASET,))
    ade_dir = require_dir(base / DATASET / "images" / "ADE", "ADE20K full images/ADE")
    out_root = Path(out) if out is not None else base
    items, problems, counts = [], [], {}
    for split in splits:
        split_dir = require_dir(ade_dir / split, f"ADE20K full {split}")
        images = {p.stem: p for p in split_dir.rglob("*.jpg")}
        labels = {p.name[: -len("_seg.png")]: p for p in split_dir.rglob("*_seg.png")}
        keys, found, split_counts = pair_files(images, labels)
        problems += found
        for name, n in split_counts.items():
            counts[f"{split}_{name}"] = n
        items += [_item(out_root, split, key, images[key], labels[key]) for key in keys]
    spec = Spec(
        name="ade847",
        num_classes=NUM_CLASSES,
        ignore_value=IGNORE,
        label_dtype="uint16",
        convention="detectron2",
        layout={
            **{f"images_{s}": f"{DATASET}/images_detectron2/{s}" for s in splits},
            **{f"labels_{s}": f"{DATASET}/annotations_detectron2/{s}" for s in splits},
        },
        notes=[
            "trainId from assets/vocabularies/ade847_ade_ids.json; other ADE object ids → 65535",
            f"shorter side resized to {SHORT_SIDE} when above (image bilinear, label nearest)",
        ],
    )
    return Plan(
        spec=spec,
        items=items,
        process=_process,
        is_done=_is_done,
        report_path=out_root / DATASET / "annotations_detectron2" / "openseg_prepare_ade847.json",
        out_root=out_root,
        inputs={"images": str(ade_dir), "splits": ",".join(splits)},
        problems=problems,
        counts=counts,
        extra={"full_split_sizes": {s: FULL_SPLIT_SIZES[s] for s in splits}},
    )


def _item(out_root: Path, split: str, key: str, image: Path, label: Path) -> Item:
    return Item(
        key=key,
        image_src=image,
        label_src=label,
        label_out=out_root / DATASET / "annotations_detectron2" / split / f"{key}.tif",
        image_out=out_root / DATASET / "images_detectron2" / split / f"{key}.jpg",
        split=split,
    )


def _process(item: Item) -> None:
    seg = open_image(item.label_src)
    if seg.mode != "RGB":
        raise LabelProblem("wrong label mode", f"{item.label_src.name}: mode {seg.mode}, expected RGB")
    seg_rgb = np.asarray(seg)
    check_same_size(seg_rgb.shape[:2], item.image_src)
    size = resized_size(seg.width, seg.height)
    write_label(item.label_out, convert_ade847(seg_rgb, size))
    if size == seg.size:
        place_image(item.image_src, item.image_out)  # no resize: the original bytes, no re-encoding
        return
    image = open_image(item.image_src)
    resized = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    # PIL's default JPEG quality (75), as the reference prepare step (Image.save without options) writes.
    atomic_write(item.image_out, lambda file: resized.save(file, format="JPEG"))


def _is_done(item: Item) -> bool:
    size = resized_size(*image_size(item.label_src))
    if not label_file_ok(item.label_out, "I;16", size):
        return False
    try:
        return item.image_out is not None and image_size(item.image_out) == size
    except LabelProblem:
        return False
