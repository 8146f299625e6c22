"""PASCAL Context (VOC2010) validation → PC-59 and PC-459 detectron2 labels, CAT-Seg or SAN layout.

Input, under ROOT: `VOCdevkit/VOC2010/` with
    JPEGImages/*.jpg                     (VOCtrainval_03-May-2010.tar)
    trainval/*.mat                       (PASCAL Context trainval.tar.gz: `LabelMap` [H, W], ids 1..459)
    labels.txt                           ("id: name" lines, ids 1..459; also looked for in trainval/)
    pascalcontext_val.txt | val.txt      (5,104 val ids; or --split-file)
Output, under OUT (default ROOT):
    catseg  VOCdevkit/VOC2010/annotations_detectron2/pc59_val/*.png   uint8 0..58, 255 ignore
            VOCdevkit/VOC2010/annotations_detectron2/pc459_val/*.tif  uint16 0..458, 459 ignore
            (images stay in VOCdevkit/VOC2010/JPEGImages; linked/copied there when OUT ≠ ROOT)
    san     pcontext/val/{image,label}        PC-59, labels .png, 255 ignore
            pcontext_full/val/{image,label}   PC-459, labels .tif, 65535 ignore
PC-59 keeps background (0) and the 59 ids below, in ascending id order, as 0..58 → everything else
(background included) is ignore. PC-459 label = id - 1; id 0 (unlabelled) is ignore — CAT-Seg's own
prepare step asserts it never occurs, SAN's wraps it to 65535.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import scipy.io

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
    pair_files,
    paired_items,
    place_image,
    read_split_file,
    require_dir,
    write_label,
)
from openseg_cli.errors import InputFileError, UsageError

VOC2010 = ("VOCdevkit", "VOC2010")
NUM_FULL_CLASSES = 459
FULL_VAL_SIZE = 5104
# The 59 PASCAL Context labels.txt ids of PC-59, ascending (a dataset fact: the benchmark's class set,
# as listed by the CAT-Seg/SAN prepare steps). Label i of PC-59 is PC59_LABEL_IDS[i].
PC59_LABEL_IDS = (
    2, 9, 18, 19, 22, 23, 25, 31, 33, 34, 44, 45, 46, 59, 65, 68, 72, 80, 85, 98,
    104, 105, 113, 115, 144, 158, 159, 162, 187, 189, 207, 220, 232, 258, 259, 260, 284, 295, 296, 308,
    324, 326, 347, 349, 354, 355, 360, 366, 368, 397, 415, 416, 420, 424, 427, 440, 445, 454, 458,
)  # fmt: skip
CONVENTIONS = ("catseg", "san")
SPLIT_FILES = ("pascalcontext_val.txt", "val.txt", "ImageSets/SegmentationContext/val.txt")
_LABELS_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.+?)\s*$")


def pc59_lookup() -> np.ndarray:
    """[460] uint8: labels.txt id (0..459) → PC-59 label 0..58, 255 for every other id."""
    table = np.full(NUM_FULL_CLASSES + 1, 255, dtype=np.uint8)
    table[list(PC59_LABEL_IDS)] = np.arange(len(PC59_LABEL_IDS), dtype=np.uint8)
    return table


def pc459_lookup(ignore: int) -> np.ndarray:
    """[460] uint16: labels.txt id → id - 1, and id 0 → `ignore`."""
    table = np.arange(-1, NUM_FULL_CLASSES, dtype=np.int64)
    table[0] = ignore
    return table.astype(np.uint16)


def read_labels_txt(path: Path) -> dict[int, str]:
    """labels.txt → {id: name}; InputFileError unless it holds exactly the ids 1..459."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read ({exc})") from exc
    names: dict[int, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = _LABELS_LINE.match(line)
        if match is None:
            raise InputFileError(f"{path}:{number}: expected 'id: name', got {line.strip()[:60]!r}")
        names[int(match[1])] = match[2]
    if sorted(names) != list(range(1, NUM_FULL_CLASSES + 1)):
        raise InputFileError(f"{path}: expected ids 1..{NUM_FULL_CLASSES}, found {len(names)} ids")
    return names


def read_label_map(path: Path) -> np.ndarray:
    """`LabelMap` of a PASCAL Context .mat → [H, W] int64; LabelProblem when unreadable or malformed."""
    try:
        mat = scipy.io.loadmat(path, variable_names=["LabelMap"])
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError … for damaged files
        raise LabelProblem("unreadable file", f"{path.name}: {type(exc).__name__}: {exc}") from exc
    label = mat.get("LabelMap")
    if label is None:
        raise LabelProblem("malformed .mat", f"{path.name}: no LabelMap variable")
    if not np.issubdtype(label.dtype, np.integer):
        raise LabelProblem(
            "wrong label dtype", f"{path.name}: LabelMap is {label.dtype}, expected integer ids"
        )
    if label.ndim != 2:
        raise LabelProblem(
            "malformed .mat", f"{path.name}: LabelMap has shape {label.shape}, expected [H, W]"
        )
    return label.astype(np.int64)


def plan_pascal_context(
    root: Path,
    name: str,
    out: Path | None = None,
    convention: str = "catseg",
    split_file: Path | None = None,
) -> Plan:
    """Plan `name` ("pc59" or "pc459") in `convention`; InputFileError for missing folders/files."""
    if convention not in CONVENTIONS:
        raise UsageError(f"--convention must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    base = locate_base(root, VOC2010)
    voc = base.joinpath(*VOC2010)
    images_dir = require_dir(voc / "JPEGImages", "VOC2010 JPEGImages")
    mats_dir = require_dir(voc / "trainval", "PASCAL Context trainval (.mat)")
    names = read_labels_txt(
        _find_file(voc, ("labels.txt", "trainval/labels.txt"), "PASCAL Context labels.txt")
    )
    split_path = Path(split_file) if split_file else _find_file(voc, SPLIT_FILES, "PASCAL Context val list")
    split_ids = read_split_file(split_path)
    out_root = Path(out) if out is not None else base
    layout = _layout(name, convention)
    images = {p.stem: p for p in images_dir.glob("*.jpg")}
    labels = {p.stem: p for p in mats_dir.glob("*.mat")}
    keys, problems, counts = pair_files(images, labels, split_ids)
    place = convention == "san" or out_root.resolve() != base.resolve()
    suffix = ".png" if name == "pc59" else ".tif"
    image_dir = out_root / layout["images"] if place else None
    items = paired_items(keys, images, labels, out_root / layout["labels"], image_dir, suffix)
    spec = _spec(name, convention, layout)
    class_names = [names[i] for i in PC59_LABEL_IDS] if name == "pc59" else [names[i] for i in sorted(names)]
    return Plan(
        spec=spec,
        items=items,
        process=_processor(name, spec.ignore_value),
        is_done=lambda item: _is_done(item, "L" if name == "pc59" else "I;16"),
        report_path=(out_root / layout["labels"]).parent / f"openseg_prepare_{name}.json",
        out_root=out_root,
        inputs={"images": str(images_dir), "labels": str(mats_dir), "split_file": str(split_path)},
        problems=problems,
        counts=counts,
        extra={"class_names": class_names, "full_split_size": FULL_VAL_SIZE},
    )


def _find_file(folder: Path, candidates: tuple[str, ...], what: str) -> Path:
    for candidate in candidates:
        if (folder / candidate).is_file():
            return folder / candidate
    raise InputFileError(f"{folder}: {what} not found (looked for {', '.join(candidates)})")


def _layout(name: str, convention: str) -> dict[str, str]:
    if convention == "san":
        folder = "pcontext" if name == "pc59" else "pcontext_full"
        return {"images": f"{folder}/val/image", "labels": f"{folder}/val/label"}
    return {
        "images": "VOCdevkit/VOC2010/JPEGImages",
        "labels": f"VOCdevkit/VOC2010/annotations_detectron2/{name}_val",
    }


def _spec(name: str, convention: str, layout: dict[str, str]) -> Spec:
    if name == "pc59":
        return Spec(
            name="pc59",
            num_classes=len(PC59_LABEL_IDS),
            ignore_value=255,
            label_dtype="uint8",
            convention=convention,
            layout=layout,
            notes=["labels 0..58 = the 59 ids in ascending order; background and other ids → 255"],
        )
    ignore = 459 if convention == "catseg" else 65535
    return Spec(
        name="pc459",
        num_classes=NUM_FULL_CLASSES,
        ignore_value=ignore,
        label_dtype="uint16",
        convention=convention,
        layout=layout,
        notes=[
            f"labels 0..458 = labels.txt id - 1; id 0 (unlabelled) → {ignore}",
            "CAT-Seg registers ignore 459, SAN 65535; real PASCAL Context maps label every pixel",
        ],
    )


def _processor(name: str, ignore: int):
    table = pc59_lookup() if name == "pc59" else pc459_lookup(ignore)

    def process(item: Item) -> None:
        label = read_label_map(item.label_src)
        check_values(np.unique(label), np.arange(NUM_FULL_CLASSES + 1), item.label_src)
        check_same_size(label.shape, item.image_src)
        write_label(item.label_out, table[label])
        place_image(item.image_src, item.image_out)

    return process


def _is_done(item: Item, mode: str) -> bool:
    return label_file_ok(item.label_out, mode, image_size(item.image_src)) and image_placed(
        item.image_src, item.image_out
    )
