"""Tiny prepared semantic benchmarks (detectron2 layouts) in tmp folders, for data/engine/CLI tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from openseg_cli.data.semantic import LAYOUTS

ADE_SAMPLE = "ade20k-150-sceneparsing/ADEChallengeData2016"


def write_ade150_sample(shared_data: Path, root: Path) -> Path:
    """The 3 real ADE-150 val images with their labels prepared as detectron2 does (label - 1 in uint8:
    0 "other" → 255 ignore, classes 1..150 → 0..149) under `root`; returns root."""
    source = shared_data / ADE_SAMPLE
    layout = LAYOUTS[("ade150", "detectron2")]
    (root / layout.image_dir).mkdir(parents=True, exist_ok=True)
    (root / layout.label_dir).mkdir(parents=True, exist_ok=True)
    for image in sorted((source / "images" / "validation").glob("*.jpg")):
        shutil.copy(image, root / layout.image_dir / image.name)
        raw = np.array(Image.open(source / "annotations" / "validation" / f"{image.stem}.png"))
        prepared = (raw.astype(np.int64) - 1).astype(np.uint8)  # uint8 wrap-around: 0 - 1 = 255
        Image.fromarray(prepared).save(root / layout.label_dir / f"{image.stem}.png")
    return root


def write_label(path: Path, label: np.ndarray) -> None:
    """A label map as the layout stores it: uint8 PNG or uint16 TIFF (by suffix)."""
    dtype = np.uint16 if path.suffix == ".tif" else np.uint8
    Image.fromarray(label.astype(dtype)).save(path)


def write_synthetic_benchmark(
    root: Path,
    benchmark: str,
    sizes: list[tuple[int, int]],
    convention: str = "detectron2",
    seed: int = 0,
    ignore_fraction: float = 0.1,
) -> list[np.ndarray]:
    """Random images and labels (one per (H, W) in `sizes`) in `benchmark`'s layout; returns the labels
    (int64, -1 = ignore) in key order (keys `img_000`, `img_001`, …)."""
    layout = LAYOUTS[(benchmark, convention)]
    rng = np.random.default_rng(seed)
    (root / layout.image_dir).mkdir(parents=True, exist_ok=True)
    (root / layout.label_dir).mkdir(parents=True, exist_ok=True)
    labels = []
    for index, (height, width) in enumerate(sizes):
        key = f"img_{index:03d}"
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / layout.image_dir / f"{key}.jpg", quality=90)
        label = rng.integers(0, layout.num_classes, (height, width))
        ignore = rng.random((height, width)) < ignore_fraction
        write_label(
            root / layout.label_dir / f"{key}{layout.label_suffix}",
            np.where(ignore, layout.ignore_value, label),
        )
        labels.append(np.where(ignore, -1, label))
    return labels
