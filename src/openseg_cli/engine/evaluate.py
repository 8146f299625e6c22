"""`run_evaluation`: a checkpoint, or CLIP weights alone (`clip`: the zero-shot MaskCLIP baseline), on a
semantic val set (shards) → mIoU, per-class IoU, metrics.json and report.html (examples spread over the
set, shown at the fitted resolution they were scored at).

`mask_source` is the Table 4 ablation (pred | pixel | gt; `clip` scores pixels); `grounding` gives
grounding mIoU (each image scored against only the classes of its ground truth); `class_groups` adds
mIoU per class group and hIoU (`eval.groups`).

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
from openseg_cli.engine.cpu import use_all_cores
from openseg_cli.engine.evaluate_examples import batch_examples, example_indices, write_report
from openseg_cli.engine.scorers import checked_mask_source, checked_rule, load_scorer, scorer_meta
from openseg_cli.engine.text_cache import class_embeddings
from openseg_cli.errors import UsageError
from openseg_cli.eval.grounding import present_classes, to_global_labels
from openseg_cli.eval.groups import add_group_figures, read_class_groups
from openseg_cli.eval.metrics import SegmentationMetrics
from openseg_cli.eval.report import benchmark_scalars, write_metrics_json
from openseg_cli.inference.scorers import Scorer
from openseg_cli.inference.scoring import label_map


@dataclass(frozen=True)
class EvalRequest:
    checkpoint: Path | None  # None: zero-shot with `clip`
    shards: str
    classes: list[list[str]] | None = None  # None: the shards' own category names
    mask_source: str | None = None  # None: pred for a checkpoint, pixel for `clip`
    size: int | None = None  # None: the recipe's crop size (ZERO_SHOT_SIZE for `clip`)
    batch_size: int = 8
    workers: int = 1
    device: str = "cpu"
    grounding: bool = False  # grounding mIoU: each image's vocabulary is only its ground-truth classes
    templates: list[str] | None = None  # prompt templates averaged per name (None: the bare name)
    benchmark: str | None = None  # e.g. "coco" (`evaluate --benchmark coco`): names the logged metric keys
    report: bool = True  # also write report.html beside metrics.json
    examples: int = 8  # images shown in report.html, spread evenly over the set
    clip: str | None = None  # "MODEL:PRETRAINED": zero-shot MaskCLIP with CLIP weights alone
    class_groups: Path | None = None  # JSON {group: [class names]} → mIoU per group and hIoU
    rule: str | None = None  # sum | max over the proposals; None: the checkpoint recipe's inference.rule


def dataset_classes(shards: str) -> list[list[str]]:
    """Class names (with synonyms) of a shard set, in contiguous class-index order, from its manifest."""
    categories = read_manifest(shards)["categories"]
    return [list(c.get("synonyms") or [c["name"]]) for c in categories]


def run_evaluation(req: EvalRequest, out_dir: Path, progress: Callable[[int], None] | None = None) -> dict:
    """Evaluate and write `out_dir/metrics.json` (and `report.html` unless `req.report` is False).

    Returns the metrics dict (with `eval.groups` figures for `class_groups`) plus "classes", "images"
    and "report" (its path, or None).

    Raises UsageError for a mask source that cannot work, a class list whose length differs from the
    dataset's, both or neither of checkpoint and clip, or a size the model cannot take; InputFileError
    for a bad class-groups file (before any model is loaded); the loaders' errors (`load_scorer`).
    """
    checked_mask_source(req.checkpoint, req.clip, req.mask_source)
    checked_rule(req.clip, req.rule)
    own = dataset_classes(req.shards)
    classes = req.classes or own
    if len(classes) != len(own):
        raise UsageError(f"the class list has {len(classes)} classes but the dataset has {len(own)}")
    groups = read_class_groups(req.class_groups, classes) if req.class_groups else None
    if req.device == "cpu":
        use_all_cores()  # the workers only read shards: see engine/cpu.py
    scorer, default_size = load_scorer(req.checkpoint, req.clip, req.mask_source, req.device, req.rule)
    size = req.size or default_size
    scorer.check_size(size)
    with torch.inference_mode():
        embeds, valid = class_embeddings(scorer.text_encoder, classes, req.templates)  # cached on disk
        class_embeds, class_valid = embeds.to(req.device), valid.to(req.device)
        metrics = SegmentationMetrics(num_classes=len(classes))
        loader = build_eval_loader(req.shards, batch_size=req.batch_size, crop_size=size, workers=req.workers)
        keep = _example_indices(req)
        images_seen, examples = 0, []
        for batch in loader:
            labels = _batch_labels(scorer, batch, class_embeds, class_valid, req.grounding, req.device)
            metrics.update(labels, batch["semantic"])
            examples += batch_examples(batch, labels, images_seen, keep)
            images_seen += len(batch["keys"])
            if progress:
                progress(len(batch["keys"]))
    result = add_group_figures(metrics.compute(), groups)
    meta = _meta(req, size, images_seen, result, scorer.rule)
    metrics_path = write_metrics_json(out_dir / "metrics.json", result, classes, meta)
    report = write_report(out_dir, metrics_path, classes, examples) if req.report else None
    return {**result, "classes": classes, "images": images_seen, "report": report}


def _meta(req: EvalRequest, size: int, images: int, result: dict, rule: str | None) -> dict:
    meta = {
        **scorer_meta(req.checkpoint, req.clip, req.mask_source, rule),  # checkpoint|clip, mask_source, rule
        "shards": str(req.shards),
        "vocabulary": "ground-truth classes per image (grounding mIoU)" if req.grounding else "all classes",
        "class_groups": str(req.class_groups) if req.class_groups else None,
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


def _batch_labels(
    scorer: Scorer, batch: dict, class_embeds, class_valid, grounding: bool, device
) -> torch.Tensor:
    """Predicted labels [B, S, S] (CPU) at the ground truth's fitted resolution; with `grounding`, each
    image is scored against only its ground-truth classes, from the batch's one forward pass."""
    target = batch["semantic"]
    segments = {}
    if scorer.needs_segments:
        segments = {
            "segment_maps": batch["segment_maps"].to(device),
            "num_segments": [int(c.numel()) for c in batch["segment_classes"]],
        }
    features = scorer.forward(batch["images"].to(device), **segments)
    size = tuple(target.shape[-2:])
    if not grounding:
        scores = scorer.scores(features, class_embeds, class_valid)
        return label_map(scores, out_size=size).cpu()  # resized in class chunks: bounded memory for 847
    labels = torch.full(target.shape, -1, dtype=torch.long)
    for b in range(target.shape[0]):
        ids = present_classes(target[b]).to(device)
        if ids.numel() == 0:
            continue  # an all-ignore image: nothing to score
        scores = scorer.scores(features, class_embeds[ids], class_valid[ids], image=b)
        labels[b] = to_global_labels(label_map(scores, out_size=size)[0], ids).cpu()
    return labels
