"""ADE20K-150 (SceneParsing, `ADEChallengeData2016`) validation → detectron2 labels.

Input (the official ADEChallengeData2016.zip), under ROOT:
    ADEChallengeData2016/images/validation/*.jpg
    ADEChallengeData2016/annotations/validation/*.png   uint8 (mode L), 0 = other, 1..150 = class
Output, under OUT (default ROOT):
    ADEChallengeData2016/annotations_detectron2/validation/*.png   uint8, label - 1, 0 → 255 (ignore)
    ADEChallengeData2016/images/validation/*.jpg                   linked/copied when OUT ≠ ROOT
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
    require_dir,
    write_label,
)

DATASET = "ADEChallengeData2016"
NUM_CLASSES = 150
IGNORE = 255
FULL_VAL_SIZE = 2000  # images in the official validation split
LABEL_DIR = f"{DATASET}/annotations_detectron2/validation"
IMAGE_DIR = f"{DATASET}/images/validation"


def convert_ade150(label: np.ndarray) -> np.ndarray:
    """[H, W] challenge ids (0 = other, 1..150) → uint8 detectron2 labels (0..149, 255 = ignore)."""
    return np.where(label == 0, IGNORE, label.astype(np.int32) - 1).astype(np.uint8)


def plan_ade150(root: Path, out: Path | None = None) -> Plan:
    """List the validation images and annotations under `root`; InputFileError when a folder is missing."""
    base = locate_base(root, (DATASET,))
    images_dir = require_dir(base / IMAGE_DIR, "ADE20K-150 validation images")
    labels_dir = require_dir(
        base / DATASET / "annotations" / "validation", "ADE20K-150 validation annotations"
    )
    out_root = Path(out) if out is not None else base
    images = {p.stem: p for p in images_dir.glob("*.jpg")}
    labels = {p.stem: p for p in labels_dir.glob("*.png")}
    keys, problems, counts = pair_files(images, labels)
    place = out_root.resolve() != base.resolve()
    image_dir = out_root / IMAGE_DIR if place else None
    items = paired_items(keys, images, labels, out_root / LABEL_DIR, image_dir, ".png")
    spec = Spec(
        name="ade150",
        num_classes=NUM_CLASSES,
        ignore_value=IGNORE,
        label_dtype="uint8",
        convention="detectron2",
        layout={"images": IMAGE_DIR, "labels": LABEL_DIR},
        notes=["labels = challenge id - 1; id 0 ('other') → 255"],
    )
    return Plan(
        spec=spec,
        items=items,
        process=_process,
        is_done=_is_done,
        report_path=out_root / DATASET / "annotations_detectron2" / "openseg_prepare_ade150.json",
        out_root=out_root,
        inputs={"images": str(images_dir), "labels": str(labels_dir)},
        problems=problems,
        counts=counts,
        extra={"full_split_size": FULL_VAL_SIZE, "complete": counts["paired"] == FULL_VAL_SIZE},
    )


def _read_label(path: Path) -> np.ndarray:
    image = open_image(path)
    if image.mode != "L":
        raise LabelProblem("wrong label mode", f"{path.name}: mode {image.mode}, expected L (uint8 ids)")
    label = np.asarray(image)
    check_values(np.unique(label), np.arange(NUM_CLASSES + 1), path)
    return label


def _process(item: Item) -> None:
    label = _read_label(item.label_src)
    check_same_size(label.shape, item.image_src)
    write_label(item.label_out, convert_ade150(label))
    place_image(item.image_src, item.image_out)


def _is_done(item: Item) -> bool:
    return label_file_ok(item.label_out, "L", image_size(item.label_src)) and image_placed(
        item.image_src, item.image_out
    )
