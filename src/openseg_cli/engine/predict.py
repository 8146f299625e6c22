"""`run_prediction`: a checkpoint + images + free-text queries → overlay, label PNG and JSON per image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from openseg_cli.data.decode import decode_image
from openseg_cli.data.transforms import fit_size, normalise, pad_to, resize_image
from openseg_cli.engine.checkpoint import load_model
from openseg_cli.engine.text_cache import class_embeddings
from openseg_cli.errors import InputFileError
from openseg_cli.inference.outputs import write_prediction
from openseg_cli.inference.scoring import label_map, normalized_scores, resize_scores
from openseg_cli.inference.segmenter import segment_scores


@dataclass(frozen=True)
class PredictRequest:
    checkpoint: Path
    images: list[Path]
    classes: list[list[str]]  # each class: its synonyms (max over synonyms)
    size: int | None = None  # None: the recipe's crop size
    unknown_threshold: float | None = None
    mask_source: str = "pred"
    device: str = "cpu"
    templates: list[str] | None = None  # prompt templates averaged per name (None: the bare name)


def read_image_file(path: Path) -> np.ndarray:
    """uint8 [H, W, 3] RGB with EXIF orientation applied; InputFileError for missing/unreadable files."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputFileError(f"{path}: cannot read image ({err.strerror or err})") from None
    return decode_image(data, str(path))


def fit_and_pad(image: np.ndarray, size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """uint8 [H, W, 3] → (CLIP-normalised float [3, size, size], (h, w) of the fitted image inside it)."""
    fitted = fit_size(image.shape[0], image.shape[1], size)
    tensor = torch.from_numpy(image).permute(2, 0, 1)  # uint8: the fast resize kernel
    return pad_to(normalise(resize_image(tensor, fitted).float()), size, 0.0), fitted


def run_prediction(
    req: PredictRequest, out_dir: Path, progress: Callable[[int], None] | None = None
) -> list[dict]:
    """Segment every image with the queries; returns one summary dict per image (paths + per-query areas)."""
    model, text_encoder, recipe = load_model(req.checkpoint, req.device)
    size = req.size or recipe.data.crop_size
    results = []
    with torch.inference_mode():
        embeds, valid = (t.to(req.device) for t in class_embeddings(text_encoder, req.classes, req.templates))
        stems = _unique_stems(req.images)
        for path, stem in zip(req.images, stems, strict=True):
            image = read_image_file(path)
            pixels, fitted = fit_and_pad(image, size)
            scores = segment_scores(model, pixels[None].to(req.device), embeds, valid, req.mask_source)
            height, width = image.shape[:2]
            geometry = {"out_size": (size, size), "valid_size": fitted, "image_size": (height, width)}
            labels = label_map(scores, unknown_threshold=req.unknown_threshold, **geometry)[0]
            probs = normalized_scores(resize_scores(scores, **geometry))[0]
            meta = {
                "source": str(path),
                "checkpoint": str(req.checkpoint),
                "size": size,
                "unknown_threshold": req.unknown_threshold,
            }
            paths = write_prediction(out_dir, stem, image, labels, probs, req.classes, meta=meta)
            results.append({"image": str(path), "files": {k: str(v) for k, v in paths.items()}})
            if progress:
                progress(1)
    return results


def _unique_stems(paths: list[Path]) -> list[str]:
    """Output stems from file names; `a.jpg` and `a.png` (or two folders' `a.jpg`) get `a`, `a-2`."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = path.stem or "image"
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems
