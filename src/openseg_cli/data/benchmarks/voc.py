"""PASCAL VOC 2012 validation → VOC-20 detectron2 labels (background excluded).

Input (VOCtrainval_11-May-2012.tar), under ROOT: `VOCdevkit/VOC2012/` with
    JPEGImages/*.jpg
    SegmentationClass/*.png           palette PNG (mode P) or grey (mode L): 0 background, 1..20, 255 boundary
    ImageSets/Segmentation/val.txt    1,449 ids (or --split-file)
Output, under OUT (default ROOT):
    VOCdevkit/VOC2012/annotations_detectron2/val/*.png   uint8: classes 0..19, background/boundary → 255
    VOCdevkit/VOC2012/JPEGImages/*.jpg                   linked/copied when OUT ≠ ROOT
A label with no class pixel left (only background/boundary) is skipped, as CAT-Seg's prepare step does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from openseg_cli.data.benchmarks.common import (
    Item,
    LabelProblem,
    Plan,
    Spec,
    check_same_size,
    check_values,
    image_placed,
    image_size,
    label_file_ok,
    locate_base,
    open_image,
    pair_files,
    paired_items,
    place_image,
    read_split_file,
    require_dir,
    write_label,
)
from openseg_cli.errors import InputFileError

VOC2012 = ("VOCdevkit", "VOC2012")
NUM_CLASSES = 20
IGNORE = 255
FULL_VAL_SIZE = 1449
LABEL_DIR = "VOCdevkit/VOC2012/annotations_detectron2/val"
IMAGE_DIR = "VOCdevkit/VOC2012/JPEGImages"
_ALLOWED = np.array([*range(NUM_CLASSES + 1), 255])


def voc20_lookup() -> np.ndarray:
    """[256] uint8: VOC id → VOC-20 label (1..20 → 0..19; 0 background and 255 boundary → 255)."""
    table = np.full(256, IGNORE, dtype=np.uint8)
    table[1 : NUM_CLASSES + 1] = np.arange(NUM_CLASSES, dtype=np.uint8)
    return table


def plan_voc20(root: Path, out: Path | None = None, split_file: Path | None = None) -> Plan:
    """List the val ids and their files; InputFileError when a folder or the split list is missing."""
    base = locate_base(root, VOC2012)
    voc = base.joinpath(*VOC2012)
    images_dir = require_dir(voc / "JPEGImages", "VOC2012 JPEGImages")
    labels_dir = require_dir(voc / "SegmentationClass", "VOC2012 SegmentationClass")
    split_path = Path(split_file) if split_file else voc / "ImageSets" / "Segmentation" / "val.txt"
    if not split_path.is_file():
        raise InputFileError(f"{split_path}: VOC2012 segmentation val list not found")
    split_ids = read_split_file(split_path)
    out_root = Path(out) if out is not None else base
    images = {p.stem: p for p in images_dir.glob("*.jpg")}
    labels = {p.stem: p for p in labels_dir.glob("*.png")}
    keys, problems, counts = pair_files(images, labels, split_ids)
    place = out_root.resolve() != base.resolve()
    image_dir = out_root / IMAGE_DIR if place else None
    items = paired_items(keys, images, labels, out_root / LABEL_DIR, image_dir, ".png")
    spec = Spec(
        name="voc20",
        num_classes=NUM_CLASSES,
        ignore_value=IGNORE,
        label_dtype="uint8",
        convention="detectron2",
        layout={"images": IMAGE_DIR, "labels": LABEL_DIR},
        notes=["labels 0..19 = VOC ids 1..20; background (0) and boundary (255) → 255"],
    )
    return Plan(
        spec=spec,
        items=items,
        process=_process,
        is_done=_is_done,
        report_path=(out_root / LABEL_DIR).parent / "openseg_prepare_voc20.json",
        out_root=out_root,
        inputs={"images": str(images_dir), "labels": str(labels_dir), "split_file": str(split_path)},
        problems=problems,
        counts=counts,
        extra={"full_split_size": FULL_VAL_SIZE},
    )


def _process(item: Item) -> None:
    image = open_image(item.label_src)
    if image.mode not in ("P", "L"):
        raise LabelProblem(
            "wrong label mode", f"{item.label_src.name}: mode {image.mode}, expected P (palette ids) or L"
        )
    label = np.asarray(image)
    check_values(np.unique(label), _ALLOWED, item.label_src)
    check_same_size(label.shape, item.image_src)
    converted = voc20_lookup()[label]
    if (converted == IGNORE).all():
        raise LabelProblem("no labelled pixels", f"{item.label_src.name}: only background/boundary")
    write_label(item.label_out, converted)
    place_image(item.image_src, item.image_out)


def _is_done(item: Item) -> bool:
    return label_file_ok(item.label_out, "L", image_size(item.label_src)) and image_placed(
        item.image_src, item.image_out
    )
