"""Files of one prediction: `{stem}_overlay.png`, `{stem}_labels.png` and `{stem}.json`.

JSON sidecar, schema 1:
    {"schema": 1,
     "image": {"height": H, "width": W},
     "files": {"overlay": "{stem}_overlay.png", "labels": "{stem}_labels.png"},
     "labels_png": {"encoding": "uint8-palette" | "uint16", "dtype", "unknown_value": 255 | 65535},
     "unknown": {"area_px", "area_fraction"},
     "queries": [`query_report` rows, in query order],
     "meta": {...caller's extras: checkpoint, threshold, mask source...}}
Every file is written to a temporary name in the same folder and `os.replace`d, so a reader never sees a
half-written file; the JSON is written last, so its presence means the prediction is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from openseg_cli.atomic import atomic_write
from openseg_cli.inference.visualize import label_png, label_png_encoding, overlay_png

PREDICTION_SCHEMA = 1


def _as_tensor(array) -> torch.Tensor:
    return array.detach().cpu() if isinstance(array, torch.Tensor) else torch.as_tensor(np.asarray(array))


def query_report(labels, scores_or_probs, class_names: Sequence[str | Sequence[str]]) -> list[dict]:
    """One dict per query (class), in query order.

    labels [H, W] ints in [-1, C) (-1 = unknown); scores_or_probs [C, H, W] at the same size, normally
    the per-pixel class probabilities (`normalized_scores` after resizing); class_names: C names or
    synonym lists. Keys: index, name (first synonym), synonyms, area_px (pixels labelled with it),
    area_fraction (of all H·W pixels, unknown included), mean_score (mean of its score over the pixels
    labelled with it; 0 when none), max_score (its highest score anywhere in the image, so a query that
    won no pixel still shows how close it came).
    Raises ValueError for mismatched shapes or labels outside [-1, C).
    """
    labels = _as_tensor(labels).long()
    probs = _as_tensor(scores_or_probs).double()
    num_classes = len(class_names)
    if labels.ndim != 2 or probs.shape != (num_classes, *labels.shape):
        raise ValueError(
            f"expected labels [H, W] and scores [{num_classes}, H, W], got "
            f"{tuple(labels.shape)} and {tuple(probs.shape)}"
        )
    if labels.numel() and (int(labels.min()) < -1 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must be in [-1, {num_classes - 1}]")
    labelled = labels >= 0
    own_score = probs.gather(0, labels.clamp(min=0).unsqueeze(0)).squeeze(0)  # [H, W]: score of own label
    areas = torch.bincount(labels[labelled], minlength=num_classes)
    score_sums = torch.bincount(labels[labelled], weights=own_score[labelled], minlength=num_classes)
    max_scores = probs.flatten(1).amax(dim=1) if labels.numel() else torch.zeros(num_classes)
    total = max(1, labels.numel())
    report = []
    for index, names in enumerate(class_names):
        synonyms = [names] if isinstance(names, str) else [str(n) for n in names]
        area = int(areas[index])
        report.append(
            {
                "index": index,
                "name": synonyms[0],
                "synonyms": synonyms,
                "area_px": area,
                "area_fraction": area / total,
                "mean_score": float(score_sums[index]) / area if area else 0.0,
                "max_score": float(max_scores[index]),
            }
        )
    return report


def write_prediction(
    out_dir: str | Path,
    stem: str,
    image,
    labels,
    probs,
    classes: Sequence[str | Sequence[str]],
    meta: dict | None = None,
) -> dict[str, Path]:
    """Write the overlay, label PNG and JSON of one image (format in the module doc); returns their paths.

    image uint8 [H, W, 3]; labels [H, W] in [-1, C); probs [C, H, W] (see `query_report`); classes the
    C queries. out_dir is created when missing. Raises ValueError for a stem that is not a plain file
    name and for the shape errors of `overlay_png` / `query_report`.
    """
    if not stem or stem.startswith(".") or any(sep in stem for sep in ("/", "\\", os.sep)):
        raise ValueError(f"stem {stem!r} must be a plain file name (no folders, no leading dot)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels_np = _as_tensor(labels).numpy().astype(np.int64)
    queries = query_report(labels_np, probs, classes)  # validates shapes before anything is written
    overlay = overlay_png(image, labels_np, classes)
    label_image = label_png(labels_np, num_classes=len(classes))
    paths = {
        "overlay": out_dir / f"{stem}_overlay.png",
        "labels": out_dir / f"{stem}_labels.png",
        "json": out_dir / f"{stem}.json",
    }
    atomic_write(paths["overlay"], lambda f: overlay.save(f, format="PNG"))
    atomic_write(paths["labels"], lambda f: label_image.save(f, format="PNG"))
    unknown = int((labels_np < 0).sum())
    document = {
        "schema": PREDICTION_SCHEMA,
        "image": {"height": int(labels_np.shape[0]), "width": int(labels_np.shape[1])},
        "files": {"overlay": paths["overlay"].name, "labels": paths["labels"].name},
        "labels_png": label_png_encoding(len(classes)),
        "unknown": {"area_px": unknown, "area_fraction": unknown / max(1, labels_np.size)},
        "queries": queries,
        "meta": dict(meta or {}),
    }
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    atomic_write(paths["json"], lambda f: f.write(text.encode("utf-8")))
    return paths
