"""Prepared semantic-label benchmarks on disk (detectron2 layouts) → (image, label) pairs and a Dataset.

Layouts, relative to the data root (`$DETECTRON2_DATASETS`, as `openseg prepare <benchmark>` writes them):

| benchmark | images | labels | ignore |
|---|---|---|---|
| ade150 | ADEChallengeData2016/images/validation/*.jpg | …/annotations_detectron2/validation/*.png | 255 |
| ade847 | ADE20K_2021_17_01/images_detectron2/validation/*.jpg | …/annotations_detectron2/…/*.tif | 65535 |
| pc59 (catseg) | VOCdevkit/VOC2010/JPEGImages/*.jpg | …/annotations_detectron2/pc59_val/*.png | 255 |
| pc59 (san) | pcontext/val/image/*.jpg | pcontext/val/label/*.png | 255 |
| pc459 (catseg) | VOCdevkit/VOC2010/JPEGImages/*.jpg | …/annotations_detectron2/pc459_val/*.tif | 459 |
| pc459 (san) | pcontext_full/val/image/*.jpg | pcontext_full/val/label/*.tif | 65535 |
| voc20 | VOCdevkit/VOC2012/JPEGImages/*.jpg | …/annotations_detectron2/val/*.png | 255 |

Pairs are matched by file stem. Where the image folder holds only the split (ADE, SAN), an image without a
label is a counted skip; the VOC folders hold every split, so there the labels decide what is evaluated.
A label without its image is a counted skip. `strict=True` turns skips into an InputFileError.
PNG labels are uint8, TIFF labels uint16. They come back as long [H, W], -1 = ignore, original size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from openseg_cli.data.decode import decode_image
from openseg_cli.data.skips import SkipCounter
from openseg_cli.errors import InputFileError, OpenSegError, UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class BenchmarkLayout:
    """Where one benchmark's val images and labels live under the data root, and how labels read."""

    benchmark: str
    convention: str
    image_dir: str
    label_dir: str
    label_suffix: str
    ignore_value: int
    num_classes: int
    images_are_split: bool  # the image folder holds only this split (else: labels select the images)

    def describe(self) -> str:
        return f"{self.benchmark} ({self.convention}: {self.label_dir}/*{self.label_suffix})"


_VOC10 = "VOCdevkit/VOC2010"
LAYOUTS: dict[tuple[str, str], BenchmarkLayout] = {
    (lay.benchmark, lay.convention): lay
    for lay in (
        BenchmarkLayout(
            "ade150", "detectron2", "ADEChallengeData2016/images/validation",
            "ADEChallengeData2016/annotations_detectron2/validation", ".png", 255, 150, True,
        ),
        BenchmarkLayout(
            "ade847", "detectron2", "ADE20K_2021_17_01/images_detectron2/validation",
            "ADE20K_2021_17_01/annotations_detectron2/validation", ".tif", 65535, 847, True,
        ),
        BenchmarkLayout(
            "pc59", "catseg", f"{_VOC10}/JPEGImages", f"{_VOC10}/annotations_detectron2/pc59_val",
            ".png", 255, 59, False,
        ),
        BenchmarkLayout("pc59", "san", "pcontext/val/image", "pcontext/val/label", ".png", 255, 59, True),
        BenchmarkLayout(
            "pc459", "catseg", f"{_VOC10}/JPEGImages", f"{_VOC10}/annotations_detectron2/pc459_val",
            ".tif", 459, 459, False,
        ),
        BenchmarkLayout(
            "pc459", "san", "pcontext_full/val/image", "pcontext_full/val/label", ".tif", 65535, 459, True,
        ),
        BenchmarkLayout(
            "voc20", "detectron2", "VOCdevkit/VOC2012/JPEGImages",
            "VOCdevkit/VOC2012/annotations_detectron2/val", ".png", 255, 20, False,
        ),
    )
}  # fmt: skip
SEMANTIC_BENCHMARKS = ("ade150", "ade847", "pc59", "pc459", "voc20")


def conventions(benchmark: str) -> list[str]:
    return [conv for bench, conv in LAYOUTS if bench == benchmark]


def resolve_layout(benchmark: str, root: Path, convention: str | None = None) -> BenchmarkLayout:
    """The layout of `benchmark` under `root`; `convention=None` picks the one whose label folder exists
    (Pascal Context: catseg first, then san). Raises UsageError for an unknown benchmark or convention and
    InputFileError naming the expected folder(s) when neither images nor labels are there.
    """
    known = conventions(benchmark)
    if not known:
        raise UsageError(f"unknown benchmark {benchmark!r}; choose {' | '.join(SEMANTIC_BENCHMARKS)}")
    if convention is not None and convention not in known:
        raise UsageError(f"{benchmark} has no convention {convention!r}; choose {' | '.join(known)}")
    candidates = (
        [LAYOUTS[(benchmark, convention)]] if convention else [LAYOUTS[(benchmark, c)] for c in known]
    )
    for layout in candidates:
        if (root / layout.label_dir).is_dir():
            if not (root / layout.image_dir).is_dir():
                raise InputFileError(f"{benchmark}: image folder {root / layout.image_dir} not found")
            return layout
    expected = " or ".join(str(root / layout.label_dir) for layout in candidates)
    raise InputFileError(
        f"{benchmark}: label folder {expected} not found (prepare it with `openseg prepare {benchmark}`, "
        "or point --data at the folder that holds it)"
    )


def _stems(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes and p.is_file()}


def find_pairs(
    layout: BenchmarkLayout, root: Path, skips: SkipCounter | None = None, strict: bool = False
) -> list[tuple[str, Path, Path]]:
    """(key, image path, label path) for every labelled image, sorted by key.

    Unmatched files are counted in `skips` ("label without image", "image without label"), or raise
    InputFileError with `strict`. No pair at all → InputFileError.
    """
    images = _stems(root / layout.image_dir, IMAGE_SUFFIXES)
    labels = _stems(root / layout.label_dir, (layout.label_suffix,))
    problems = [("label without image", labels[k]) for k in labels if k not in images]
    if layout.images_are_split:
        problems += [("image without label", images[k]) for k in images if k not in labels]
    for reason, path in problems:
        if strict:
            raise InputFileError(f"{layout.benchmark}: {reason}: {path} (drop --strict to skip such files)")
        if skips is not None:
            skips.count(reason, str(path))
    pairs = [(key, images[key], labels[key]) for key in sorted(labels) if key in images]
    if not pairs:
        raise InputFileError(
            f"{layout.benchmark}: no image has a label in {root / layout.label_dir} "
            f"(images in {root / layout.image_dir})"
        )
    return pairs


def read_label(path: Path, layout: BenchmarkLayout) -> np.ndarray:
    """A prepared label map → int64 [H, W] with -1 = ignore. Raises InputFileError for an unreadable or
    multi-channel file, or a value that is neither a class (< C) nor the ignore value (names both)."""
    try:
        with Image.open(path) as img:
            label = np.array(img).astype(np.int64)
    except Exception as exn:  # PIL raises many types
        raise InputFileError(f"unreadable label {path}: {exn}") from None
    if label.ndim != 2:
        raise InputFileError(f"label {path} has shape {label.shape}; expected one channel of class ids")
    ignore = label == layout.ignore_value
    bad = (label < 0) | (label >= layout.num_classes)
    bad &= ~ignore
    if bad.any():
        raise InputFileError(
            f"label {path} holds value {int(label[bad][0])}, outside 0..{layout.num_classes - 1} and not the "
            f"ignore value {layout.ignore_value} ({layout.describe()})"
        )
    label[ignore] = -1
    return label


@dataclass
class SemanticSample:
    key: str
    image: torch.Tensor  # uint8 [H, W, 3]
    target: torch.Tensor  # long [H, W], -1 = ignore


class SemanticDataset(torch.utils.data.Dataset):
    """Index → SemanticSample at the original resolution; an OpenSegError is *returned*, not raised, so
    that a DataLoader worker hands it back intact (the loop raises it: one clean error line)."""

    def __init__(self, pairs: list[tuple[str, Path, Path]], layout: BenchmarkLayout) -> None:
        self.pairs, self.layout = pairs, layout

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> SemanticSample | OpenSegError:
        key, image_path, label_path = self.pairs[index]
        try:
            label = read_label(label_path, self.layout)
            image = decode_image(image_path.read_bytes(), str(image_path), expect_hw=label.shape)
        except OpenSegError as err:
            return err
        except OSError as err:
            return InputFileError(f"cannot read {image_path}: {err}")
        return SemanticSample(key, torch.from_numpy(image), torch.from_numpy(label))
