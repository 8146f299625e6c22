"""Files of one prediction: `{stem}_overlay.png`, `{stem}_labels.png`, `{stem}.json`, and optionally one
binary PNG per query in `{stem}_masks/`.

JSON sidecar, schema 1:
    {"schema": 1,
     "image": {"height": H, "width": W},
     "files": {"overlay": "{stem}_overlay.png", "labels": "{stem}_labels.png"
               [, "masks": "{stem}_masks"]},
     "labels_png": {"encoding": "uint8-palette" | "uint16", "dtype", "unknown_value": 255 | 65535},
     "unknown": {"area_px", "area_fraction"},     # pixels no query won: below threshold or background
     "queries": [`query_report` rows, in query order
                 (+ "mask": "{stem}_masks/{index}-{slug}.png" with masks="png",
                  + "rle": {"size": [H, W], "counts": str} (COCO RLE) with masks="rle")],
     "background": [`query_report` rows of the background classes, index = position in that list],
     "meta": {...caller's extras: checkpoint, threshold, mask source, device...}}
Background classes compete in the argmax like queries, but the pixels they win are written as unknown
(the label PNG's unknown value, the overlay's unknown colour) and they are listed only under
"background", never among the queries or in the legend.
Every file is written to a temporary name in the same folder and `os.replace`d, so a reader never sees a
half-written file; the JSON is written last, so its presence means the prediction is complete.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from openseg_cli.atomic import atomic_write
from openseg_cli.inference.visualize import label_png, label_png_encoding, overlay_png

PREDICTION_SCHEMA = 1
MASK_FORMATS = ("none", "png", "rle")
_SLUG_CHARS = 40


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
    *,
    background: Sequence[str | Sequence[str]] = (),
    masks: str = "none",
) -> dict[str, Path]:
    """Write the files of one image (format in the module doc); returns their paths by kind.

    image uint8 [H, W, 3]; classes the Q queries; background K more classes scored after them; labels
    [H, W] in [-1, Q+K) (argmax over queries then background, -1 = below threshold); probs [Q+K, H, W]
    (see `query_report`). masks: "none" | "png" (binary 0/255 PNG per query) | "rle" (COCO RLE per
    query in the JSON). out_dir is created when missing. Raises ValueError for a stem that is not a plain
    file name, an unknown mask format and the shape errors of `overlay_png` / `query_report`.
    """
    if not stem or stem.startswith(".") or any(sep in stem for sep in ("/", "\\", os.sep)):
        raise ValueError(f"stem {stem!r} must be a plain file name (no folders, no leading dot)")
    if masks not in MASK_FORMATS:
        raise ValueError(f"masks must be one of {', '.join(MASK_FORMATS)}, not {masks!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    num_queries = len(classes)
    full = _as_tensor(labels).numpy().astype(np.int64)
    # validates shapes before anything is written
    rows = query_report(full, probs, [*classes, *background])
    labels_np = np.where(full >= num_queries, -1, full)  # background pixels are written as unknown
    queries, background_rows = rows[:num_queries], rows[num_queries:]
    for index, row in enumerate(background_rows):
        row["index"] = index
    overlay = overlay_png(
        image, labels_np, classes, unknown_name="background / unknown" if background else "unknown"
    )
    label_image = label_png(labels_np, num_classes=num_queries)
    paths = {
        "overlay": out_dir / f"{stem}_overlay.png",
        "labels": out_dir / f"{stem}_labels.png",
        "json": out_dir / f"{stem}.json",
    }
    atomic_write(paths["overlay"], lambda f: overlay.save(f, format="PNG"))
    atomic_write(paths["labels"], lambda f: label_image.save(f, format="PNG"))
    files = {"overlay": paths["overlay"].name, "labels": paths["labels"].name}
    if masks == "png":
        paths["masks"] = out_dir / f"{stem}_masks"
        files["masks"] = paths["masks"].name
        for row in queries:
            row["mask"] = f"{files['masks']}/{_write_mask_png(paths['masks'], labels_np, row, num_queries)}"
    elif masks == "rle":
        for row in queries:
            row["rle"] = mask_rle(labels_np == row["index"])
    unknown = int((labels_np < 0).sum())
    document = {
        "schema": PREDICTION_SCHEMA,
        "image": {"height": int(labels_np.shape[0]), "width": int(labels_np.shape[1])},
        "files": files,
        "labels_png": label_png_encoding(num_queries),
        "unknown": {"area_px": unknown, "area_fraction": unknown / max(1, labels_np.size)},
        "queries": queries,
        "background": background_rows,
        "meta": dict(meta or {}),
    }
    text = json.dumps(document, indent=2, allow_nan=False) + "\n"
    atomic_write(paths["json"], lambda f: f.write(text.encode("utf-8")))
    return paths


def mask_file_name(index: int, name: str, num_queries: int) -> str:
    """`{index}-{slug}.png`: the index zero-padded to sort in query order, the name as a file-safe slug
    (lower-case ASCII letters and digits, other runs → "-", at most 40 characters; "query" if empty)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:_SLUG_CHARS].strip("-") or "query"
    width = len(str(max(0, num_queries - 1)))
    return f"{index:0{width}d}-{slug}.png"


def _write_mask_png(folder: Path, labels: np.ndarray, row: dict, num_queries: int) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    name = mask_file_name(row["index"], row["name"], num_queries)
    picture = Image.fromarray(np.where(labels == row["index"], 255, 0).astype(np.uint8))  # mode "L"
    atomic_write(folder / name, lambda f: picture.save(f, format="PNG"))
    return name


def mask_rle(mask: np.ndarray) -> dict:
    """bool [H, W] → COCO RLE {"size": [H, W], "counts": str} (pycocotools' compressed string, JSON-safe;
    `pycocotools.mask.decode({"size": ..., "counts": counts.encode()})` gives the mask back)."""
    from pycocotools import mask as mask_utils  # C extension: only loaded when RLE is asked for

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}
