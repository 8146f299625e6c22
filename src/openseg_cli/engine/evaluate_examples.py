"""Examples kept for the HTML report: which images (spread evenly over the set), downscaled, and the
report itself written beside metrics.json. Shared by `evaluate --benchmark` (original-resolution images)
and `evaluate --shards` (eval batches: fitted images, cropped to their unpadded region)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from openseg_cli.data.transforms import CLIP_MEAN, CLIP_STD, fit_size, resize_image, resize_map

# Longest side of a kept example (pixels): three PNGs per example stay a few tens of kB in the HTML.
EXAMPLE_SIDE = 320


def example_indices(total: int, count: int) -> set[int]:
    """`count` indices spread evenly over range(total), first and last included (fewer if total is small)."""
    if total <= 0 or count <= 0:
        return set()
    count = min(count, total)
    if count == 1:
        return {0}
    return {round(i * (total - 1) / (count - 1)) for i in range(count)}


def downscaled_example(
    key: str, image: torch.Tensor, target: torch.Tensor, prediction: torch.Tensor
) -> tuple:
    """(key, image uint8 [h, w, 3], target int64 [h, w], prediction int64 [h, w]) as numpy, the long side at
    most `EXAMPLE_SIDE` (bilinear for the image, nearest for the labels); picklable for other ranks."""
    height, width = target.shape
    size = fit_size(height, width, EXAMPLE_SIDE) if max(height, width) > EXAMPLE_SIDE else (height, width)
    small = resize_image(image.permute(2, 0, 1).contiguous(), size).permute(1, 2, 0)
    return (
        key,
        np.ascontiguousarray(small.cpu().numpy().astype(np.uint8)),
        resize_map(target.cpu().long(), size).numpy().astype(np.int64),
        resize_map(prediction.cpu().long(), size).numpy().astype(np.int64),
    )


def displayable_image(image: torch.Tensor) -> torch.Tensor:
    """A CLIP-normalised float [3, H, W] (`data.transforms.normalise`) → uint8 [H, W, 3] on the CPU.

    Exact for pixels that were uint8 before normalising (the eval transform resizes in uint8): the float32
    round trip is off by ~1e-4 grey levels, which rounding removes.
    """
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    pixels = (image.detach().float().cpu() * std + mean) * 255.0
    return pixels.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)


def batch_examples(batch: dict, labels: torch.Tensor, first: int, keep: set[int]) -> list[tuple]:
    """`downscaled_example`s of the items of an eval batch (`data.loader.collate_eval`) whose running index
    `first + b` is in `keep`.

    Each is the fitted (fit+pad) image, ground truth and prediction cropped to the unpadded region
    `fit_size(*sizes[b], S)` (the padding is ignore, not image), S = the batch's canvas side.
    batch["images"] float [B, 3, S, S] CLIP-normalised, batch["semantic"] long [B, S, S] (-1 = ignore),
    batch["sizes"] [(H, W)] before fitting; labels long [B, S, S] (-1 = none).
    """
    side = batch["semantic"].shape[-1]
    kept = []
    for b, key in enumerate(batch["keys"]):
        if first + b not in keep:
            continue
        height, width = fit_size(*batch["sizes"][b], side)
        image = displayable_image(batch["images"][b, :, :height, :width])
        target = batch["semantic"][b, :height, :width]
        kept.append(downscaled_example(key, image, target, labels[b, :height, :width]))
    return kept


def write_report(
    out_dir: Path, metrics_path: Path, classes: list[list[str]], examples: list[tuple]
) -> Path | None:
    """`out_dir/report.html` from metrics.json and the kept examples; None when the HTML writer is not
    installed in this build (eval/html_report.py)."""
    try:
        from openseg_cli.eval.html_report import ReportExample, write_html_report
    except ImportError:
        return None
    document = json.loads(metrics_path.read_text(encoding="utf-8"))
    kept = [ReportExample(*example) for example in sorted(examples, key=lambda e: e[0])]
    return write_html_report(out_dir / "report.html", document, classes, kept)
