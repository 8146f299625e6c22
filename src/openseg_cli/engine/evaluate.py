"""`run_evaluation`: a checkpoint on a semantic val set (shards) → mIoU, per-class IoU, metrics.json and
report.html (examples spread over the set, shown at the fitted resolution they were scored at).

`mask_source` is the Table 4 ablation (pred | pixel | gt); `grounding` gives grounding mIoU (each image
scored against only the classes of its ground truth).

Images are evaluated whole: resized to fit `size` and padded (the released model's protocol), and scored
at that fitted resolution against the equally fitted ground truth (nearest-neighbour labels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from openseg_cli.data.loader import build_eval_loader
from openseg_cli.data.shards import count_samples, list_shards, read_manifest
from openseg_cli.engine.checkpoint import load_model
from openseg_cli.engine.cpu import use_all_cores
from openseg_cli.engine.evaluate_examples import batch_examples, example_indices, write_report
from openseg_cli.engine.text_cache import class_embeddings
from openseg_cli.errors import UsageError
from openseg_cli.eval.grounding import present_classes, to_global_labels
from openseg_cli.eval.metrics import SegmentationMetrics
from openseg_cli.eval.report import benchmark_scalars, write_metrics_json
from openseg_cli.inference.scoring import label_map
from openseg_cli.inference.segmenter import MASK_SOURCES, scores_from_output, select_image


@dataclass(frozen=True)
class EvalRequest:
    checkpoint: Path
    shards: str
    classes: list[list[str]] | None = None  # None: the shards' own category names
    mask_source: str = "pred"
    size: int | None = None  # None: the recipe's crop size
    batch_size: int = 8
    workers: int = 1
    device: str = "cpu"
    grounding: bool = False  # grounding mIoU: each image's vocabulary is only its ground-truth classes
    templates: list[str] | None = None  # prompt templates averaged per name (None: the bare name)
    benchmark: str | None = None  # e.g. "coco" (`evaluate --benchmark coco`): names the logged metric keys
    report: bool = True  # also write report.html beside metrics.json
    examples: int = 8  # images shown in report.html, spread evenly over the set


def dataset_classes(shards: str) -> list[list[str]]:
    """Class names (with synonyms) of a shard set, in contiguous class-index order, from its manifest."""
    categories = read_manifest(shards)["categories"]
    return [list(c.get("synonyms") or [c["name"]]) for c in categories]


def run_evaluation(req: EvalRequest, out_dir: Path, progress: Callable[[int], None] | None = None) -> dict:
    """Evaluate and write `out_dir/metrics.json` (and `report.html` unless `req.report` is False).

    Returns the metrics dict plus "classes", "images" and "report" (its path, or None).

    Raises UsageError for an unknown mask source or a class list whose length differs from the dataset's.
    """
    if req.mask_source not in MASK_SOURCES:
        raise UsageError(f"unknown mask source {req.mask_source!r}; choose {' | '.join(MASK_SOURCES)}")
    own = dataset_classes(req.shards)
    classes = req.classes or own
    if len(classes) != len(own):
        raise UsageError(f"the class list has {len(classes)} classes but the dataset has {len(own)}")
    if req.device == "cpu":
        use_all_cores()  # the workers only read shards: see engine/cpu.py
    model, text_encoder, recipe = load_model(req.checkpoint, req.device)
    size = req.size or recipe.data.crop_size
    with torch.inference_mode():
        embeds, valid = class_embeddings(text_encoder, classes, req.templates)  # cached on disk
        class_embeds, class_valid = embeds.to(req.device), valid.to(req.device)
        metrics = SegmentationMetrics(num_classes=len(classes))
        loader = build_eval_loader(req.shards, batch_size=req.batch_size, crop_size=size, workers=req.workers)
        keep = _example_indices(req)
        images_seen, examples = 0, []
        for batch in loader:
            labels = _batch_labels(model, batch, class_embeds, class_valid, req)
            metrics.update(labels, batch["semantic"])
            examples += batch_examples(batch, labels, images_seen, keep)
            images_seen += len(batch["keys"])
            if progress:
                progress(len(batch["keys"]))
    result = metrics.compute()
    meta = _meta(req, size, images_seen, result)
    metrics_path = write_metrics_json(out_dir / "metrics.json", result, classes, meta)
    report = write_report(out_dir, metrics_path, classes, examples) if req.report else None
    return {**result, "classes": classes, "images": images_seen, "report": report}


def _meta(req: EvalRequest, size: int, images: int, result: dict) -> dict:
    meta = {
        "checkpoint": str(req.checkpoint),
        "shards": str(req.shards),
        "mask_source": req.mask_source,
        "vocabulary": "ground-truth classes per image (grounding mIoU)" if req.grounding else "all classes",
        "templates": len(req.templates or []) or None,
        "size": size,
        "resolution": "fitted (fit+pad canvas, nearest-neighbour ground truth)",
        "images": images,
    }
    if req.benchmark:
        meta = {"benchmark": req.benchmark, **meta, "scalars": benchmark_scalars(result, req.benchmark)}
    return meta


def _example_indices(req: EvalRequest) -> set[int]:
    """Positions (in loader order) of the images kept for the report, spread over the listed samples
    (sizes.json counts; a corrupt sample skipped shifts the later positions by one)."""
    if not req.report or req.examples <= 0:
        return set()
    total = sum(count_samples(url) for url in list_shards(req.shards))
    return example_indices(total, req.examples)


def _batch_labels(model, batch, class_embeds, class_valid, req: EvalRequest) -> torch.Tensor:
    """Predicted labels [B, S, S] (CPU) at the ground truth's fitted resolution."""
    images = batch["images"].to(req.device)
    target = batch["semantic"]
    gt = req.mask_source == "gt"
    output = model(images, return_embed_features=gt)
    counts = [int(c.numel()) for c in batch["segment_classes"]]
    seg_maps = batch["segment_maps"].to(req.device) if gt else None
    size = tuple(target.shape[-2:])
    if not req.grounding:
        scores = scores_from_output(
            model, output, class_embeds, class_valid, req.mask_source, seg_maps, counts
        )
        return label_map(scores, out_size=size).cpu()  # resized in class chunks: bounded memory for 847
    labels = torch.full(target.shape, -1, dtype=torch.long)
    for b in range(images.shape[0]):
        ids = present_classes(target[b]).to(req.device)
        if ids.numel() == 0:
            continue  # an all-ignore image: nothing to score
        image_maps = seg_maps[b : b + 1] if gt else None
        scores = scores_from_output(
            model, select_image(output, b), class_embeds[ids], class_valid[ids], req.mask_source,
            image_maps, counts[b : b + 1],
        )  # fmt: skip
        labels[b] = to_global_labels(label_map(scores, out_size=size)[0], ids).cpu()
    return labels
