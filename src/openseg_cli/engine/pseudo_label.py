"""`run_pseudo_labelling`: a teacher checkpoint + image shards → new shards with the teacher's masks.

Images are copied byte for byte; captions, and the words of the input shard's nouns sidecar, travel into
each sample's meta (`words`), so the output trains directly. Segments are class-agnostic
(`category_id = -1`) and the meta says `pseudo: true`. Output shards are written by `write_shards`, which
makes them atomic and lets an interrupted run resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from openseg_cli.data.decode import CorruptSampleError, decode_image
from openseg_cli.data.loader import iter_samples
from openseg_cli.data.schema import UNKNOWN_CATEGORY
from openseg_cli.data.shards import completed_samples, read_manifest, read_nouns_sidecar, write_shards
from openseg_cli.data.skips import SkipCounter
from openseg_cli.data.toy import encode_panoptic_png
from openseg_cli.engine.checkpoint import load_model
from openseg_cli.engine.predict import fit_and_pad
from openseg_cli.inference.pseudo import PseudoLabelThresholds, select_pseudo_masks
from openseg_cli.inference.scoring import resize_scores


@dataclass(frozen=True)
class PseudoLabelRequest:
    teacher: Path
    shards: str
    thresholds: PseudoLabelThresholds = PseudoLabelThresholds()
    size: int | None = None
    device: str = "cpu"
    source: str | None = None  # output shard source tag (default: the input's + "_pseudo")
    maxcount: int | None = None  # samples per output shard (default: write_shards')
    command: list[str] | None = None


def run_pseudo_labelling(
    req: PseudoLabelRequest, out_dir: Path, progress: Callable[[int], None] | None = None
) -> dict:
    """Label every image of `req.shards` exactly once; returns the output manifest."""
    model, _text, recipe = load_model(req.teacher, req.device)
    size = req.size or recipe.data.crop_size
    manifest = read_manifest(req.shards)
    source = req.source or f"{_source_of(manifest)}_pseudo"
    skips = SkipCounter("pseudo-label")
    # On a rerun, samples already in finished output shards are only checked by write_shards: the
    # teacher does not run on them again.
    done = completed_samples(out_dir, source, "pseudo")
    samples = _labelled(model, req, size, skips, progress, done)
    maxcount = {"maxcount": req.maxcount} if req.maxcount else {}
    return write_shards(
        samples, out_dir, source, "pseudo",
        categories=[], skipped=skips.reasons, command=req.command, **maxcount,
        manifest_extra={
            "teacher": str(req.teacher), "thresholds": vars(req.thresholds), "input": str(req.shards)
        },
    )  # fmt: skip


def _source_of(manifest: dict) -> str:
    names = list(manifest.get("shards") or [])
    return names[0].split("-", 1)[0] if names else "data"


def _labelled(
    model, req: PseudoLabelRequest, size: int, skips: SkipCounter, progress, done: int = 0
) -> Iterator[dict]:
    """Labelled samples in input order; the first `done` (already written) without running the teacher."""
    words_cache: dict[str, dict] = {}
    position = 0
    for sample in iter_samples(req.shards, skips=skips):
        try:  # decoded even when already done, so a rerun skips exactly the samples the first run skipped
            image = decode_image(sample["image"], f"sample {sample['key']} ({sample['url']})")
        except CorruptSampleError as err:
            skips.count("unreadable image", str(err))
            continue
        position += 1
        if position <= done:
            if progress:
                progress(1)
            yield {"__key__": sample["key"], f"image.{sample['image_ext']}": sample["image"],
                   "meta.json": sample["meta"]}  # fmt: skip
            continue
        id_map, segments = _teacher_masks(model, image, size, req)
        meta = dict(sample["meta"], segments=[_segment(s) for s in segments], pseudo=True)
        words = _words_of(sample, words_cache)
        if words is not None:
            meta["words"] = words
        if progress:
            progress(1)
        yield {
            "__key__": sample["key"],
            f"image.{sample['image_ext']}": sample["image"],
            "panoptic.png": encode_panoptic_png(id_map.numpy()),
            "meta.json": meta,
        }


def _teacher_masks(model, image, size: int, req: PseudoLabelRequest):
    pixels, fitted = fit_and_pad(image, size)
    with torch.inference_mode():
        probs = model(pixels[None].to(req.device)).mask_logits.sigmoid()  # [1, N, h, w]
        probs = resize_scores(probs, (size, size), fitted, image.shape[:2])[0].cpu()  # [N, H, W]
    return select_pseudo_masks(probs, req.thresholds)


def _segment(seg: dict) -> dict:
    return {"id": seg["id"], "category_id": UNKNOWN_CATEGORY, "iscrowd": 0, "area": seg["area"],
            "bbox": seg["bbox"], "score": round(seg["score"], 4)}  # fmt: skip


def _words_of(sample: dict, cache: dict[str, dict]) -> list[list[str]] | None:
    """The input sample's words: its own meta's, else its shard's nouns sidecar, else None."""
    if "words" in sample["meta"]:
        return sample["meta"]["words"]
    url = sample["url"]
    if url not in cache:
        cache[url] = (read_nouns_sidecar(url) or {}).get("words", {})
    return cache[url].get(sample["key"])
