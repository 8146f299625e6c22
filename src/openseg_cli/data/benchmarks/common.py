"""Shared pieces of the benchmark preparers: the work plan, file pairing, label reading and writing.

A preparer (ade150, ade847, pc59/pc459, voc20) lists what it finds into a `Plan`: one `Item` per split
id with both an image and a label, plus the problems found while listing (a label without an image …).
`runner.run_plan` then converts item by item. Converters raise `LabelProblem` for a bad file; the runner
turns it into a counted skip, or into an `InputFileError` with `--strict`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from openseg_cli.atomic import atomic_write
from openseg_cli.errors import InputFileError

# Pillow refuses images above ~179 MP by default; ADE-full images are at most a few MP, so the default
# stays: a "decompression bomb" is reported as an unreadable file.
_READ_ERRORS = (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError)


class LabelProblem(Exception):
    """One bad input file: `reason` is the short skip reason (counted), `detail` says what was found."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Item:
    """One sample to prepare: where its inputs are and where its outputs go."""

    key: str
    image_src: Path
    label_src: Path
    label_out: Path
    image_out: Path | None = None  # where the image must be in the output layout; None = left in place
    split: str = ""


def paired_items(
    keys: list[str],
    images: dict[str, Path],
    labels: dict[str, Path],
    label_dir: Path,
    image_dir: Path | None,
    label_suffix: str,
) -> list[Item]:
    """One Item per key: label written to `label_dir/<key><label_suffix>`, image placed in `image_dir`
    (None: the image stays where it is, already in the output layout)."""
    return [
        Item(
            key=key,
            image_src=images[key],
            label_src=labels[key],
            label_out=label_dir / f"{key}{label_suffix}",
            image_out=image_dir / f"{key}.jpg" if image_dir is not None else None,
        )
        for key in keys
    ]


@dataclass
class Spec:
    """What the prepared labels are (written into the report; read by `evaluate --benchmark`)."""

    name: str
    num_classes: int
    ignore_value: int
    label_dtype: str  # "uint8" (PNG, mode L) or "uint16" (TIFF, mode I;16)
    convention: str
    layout: dict[str, str] = field(default_factory=dict)  # role → folder, relative to the output root
    notes: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """Everything a preparer found; `process(item)` converts and writes one item (raises LabelProblem)."""

    spec: Spec
    items: list[Item]
    process: Callable[[Item], None]
    is_done: Callable[[Item], bool]
    report_path: Path
    out_root: Path
    inputs: dict[str, str]
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (reason, key, detail)
    counts: dict[str, int] = field(default_factory=dict)
    extra: dict = field(default_factory=dict)  # more report fields (class names, full-set sizes …)


def locate_base(root: Path, parts: tuple[str, ...]) -> Path:
    """The folder that holds `parts` (e.g. VOCdevkit/VOC2012), accepting ROOT at any level of it.

    `datasets/`, `datasets/VOCdevkit` and `datasets/VOCdevkit/VOC2012` all give `datasets/`, the
    detectron2 `DETECTRON2_DATASETS` root. Raises InputFileError naming the expected folder.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputFileError(f"{root}: dataset root folder not found (expected {'/'.join(parts)} in it)")
    if root.joinpath(*parts).is_dir():
        return root
    resolved = root.resolve()
    for depth in range(len(parts), 0, -1):
        if resolved.parts[-depth:] == parts[:depth] and len(resolved.parts) > depth:
            base = resolved.parents[depth - 1]
            if base.joinpath(*parts).is_dir():
                return base
    raise InputFileError(f"{root}: expected the folder {'/'.join(parts)} under it (not found)")


def require_dir(path: Path, what: str) -> Path:
    """`path` when it is a folder, else a one-line InputFileError naming what was expected there."""
    if not path.is_dir():
        raise InputFileError(f"{path}: {what} folder not found")
    return path


def read_split_file(path: Path) -> list[str]:
    """Image ids, one per line (blank lines ignored); InputFileError when unreadable or empty."""
    try:
        ids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: cannot read the split list ({exc})") from exc
    if not ids:
        raise InputFileError(f"{path}: the split list is empty")
    if len(set(ids)) != len(ids):
        raise InputFileError(f"{path}: the split list repeats ids")
    return ids


def pair_files(
    images: dict[str, Path], labels: dict[str, Path], split_ids: list[str] | None = None
) -> tuple[list[str], list[tuple[str, str, str]], dict[str, int]]:
    """Keys with both an image and a label, in order; problems for the rest; counts for the report.

    With a split list, only its ids count; ids of the list with neither file are "missing from
    download"; files outside the list are only counted (`not_in_split`), the usual case for trainval.
    """
    wanted = split_ids if split_ids is not None else sorted(set(images) | set(labels))
    problems = []
    for key in wanted:
        has_image, has_label = key in images, key in labels
        if has_label and not has_image:
            problems.append(("label without image", key, str(labels[key])))
        elif has_image and not has_label:
            problems.append(("image without label", key, str(images[key])))
        elif not has_image and not has_label:
            problems.append(("missing from download", key, "no image and no label"))
    keys = [key for key in wanted if key in images and key in labels]
    counts = {"images_found": len(images), "labels_found": len(labels), "paired": len(keys)}
    if split_ids is not None:
        chosen = set(split_ids)
        counts["split_list"] = len(split_ids)
        counts["not_in_split"] = len((set(images) | set(labels)) - chosen)
    return keys, problems, counts


def open_image(path: Path) -> Image.Image:
    """Open and fully decode an image; a corrupt or truncated file → LabelProblem("unreadable file")."""
    try:
        image = Image.open(path)
        image.load()
    except _READ_ERRORS as exc:
        raise LabelProblem("unreadable file", f"{path.name}: {type(exc).__name__}: {exc}") from exc
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header only; a corrupt header → LabelProblem("unreadable file")."""
    try:
        with Image.open(path) as image:
            return image.size
    except _READ_ERRORS as exc:
        raise LabelProblem("unreadable file", f"{path.name}: {type(exc).__name__}: {exc}") from exc


def check_same_size(label_hw: tuple[int, int], image_path: Path) -> None:
    """LabelProblem("size mismatch") unless the label's [H, W] equals the image's."""
    width, height = image_size(image_path)
    if tuple(label_hw) != (height, width):
        raise LabelProblem(
            "size mismatch",
            f"label {label_hw[1]}x{label_hw[0]} vs image {width}x{height} ({image_path.name})",
        )


def check_values(values: np.ndarray, allowed: np.ndarray, path: Path) -> None:
    """LabelProblem("class id out of range") naming the first few values of `values` not in `allowed`."""
    bad = np.setdiff1d(values, allowed)
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:5])
        raise LabelProblem("class id out of range", f"{path.name}: ids {shown} not in the label set")


def write_label(path: Path, label: np.ndarray) -> None:
    """A [H, W] uint8 label → PNG (mode L), uint16 → TIFF (mode I;16), atomically."""
    if label.dtype == np.uint8:
        fmt = "PNG"
    elif label.dtype == np.uint16:
        fmt = "TIFF"
    else:  # a programming error, not a user one
        raise TypeError(f"labels are uint8 or uint16, got {label.dtype}")
    image = Image.fromarray(np.ascontiguousarray(label))
    atomic_write(path, lambda file: image.save(file, format=fmt))


def label_file_ok(path: Path, mode: str, size: tuple[int, int]) -> bool:
    """An output written by an earlier run: readable header with the expected mode and (W, H) size."""
    if not path.is_file():
        return False
    try:
        with Image.open(path) as image:
            return image.mode == mode and image.size == tuple(size)
    except _READ_ERRORS:
        return False


def place_image(src: Path, dst: Path | None) -> None:
    """Make `dst` hold `src`'s bytes: nothing when it is the same file, else a hard link or a copy.

    Written through a temporary name and `os.replace`, so a half-copied image is never left at `dst`.
    """
    if dst is None or (dst.exists() and os.path.samefile(src, dst)):
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # another file system, or links not allowed: copy instead
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def image_placed(src: Path, dst: Path | None) -> bool:
    """True when `dst` is not needed or already holds a file of `src`'s size."""
    return dst is None or (dst.is_file() and dst.stat().st_size == src.stat().st_size)
