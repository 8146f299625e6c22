"""`run_pseudo_labelling`: a teacher checkpoint + image shards → new shards with the teacher's masks.

The teacher runs inside Lightning's `Trainer.predict`, on any number of devices and nodes: input shards go
to ranks round-robin by index (each shard to exactly one rank, nothing padded), and each rank writes its
own shard series (see `pseudo_writer` for the folder layout and the merge). Images are copied byte for
byte; captions, and the words of the input shard's nouns sidecar, travel into each sample's meta
(`words`), so the output trains directly. Segments are class-agnostic (`category_id = -1`) and the meta
says `pseudo: true`. A rerun with the same settings and world size resumes: finished shards are kept and
the teacher does not run on their images again; a half-written shard is never counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from openseg_cli.data.loader import build_input_loader, check_parallelism
from openseg_cli.data.schema import UNKNOWN_CATEGORY
from openseg_cli.data.shards import completed_samples, list_shards, read_manifest
from openseg_cli.data.sidecars import read_nouns_sidecar
from openseg_cli.data.skips import SkipCounter
from openseg_cli.data.toy import encode_panoptic_png
from openseg_cli.engine.checkpoint import load_model
from openseg_cli.engine.predict import fit_and_pad
from openseg_cli.engine.pseudo_writer import PseudoShardWriter, check_job, rank_dir, rank_split
from openseg_cli.engine.train import quiet_lightning, worker_errors_in_one_line
from openseg_cli.errors import UsageError
from openseg_cli.inference.pseudo import PseudoLabelThresholds, select_pseudo_masks
from openseg_cli.inference.scoring import resize_scores


@dataclass(frozen=True)
class PseudoLabelRequest:
    teacher: Path
    shards: str
    thresholds: PseudoLabelThresholds = PseudoLabelThresholds()
    size: int | None = None
    accelerator: str = "cpu"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"  # "ddp" under the CLI (Lightning relaunches it per rank); tests use "ddp_spawn"
    workers: int = 0  # DataLoader workers per rank decoding images (0: in the rank's own process)
    strict: bool = False  # a corrupt shard or image stops the run instead of being counted and skipped
    source: str | None = None  # output shard source tag (default: the input's + "_pseudo")
    maxcount: int | None = None  # samples per output shard (default: write_shards')
    command: list[str] | None = None


def run_pseudo_labelling(
    req: PseudoLabelRequest, out_dir: Path, progress: Callable[[int], None] | None = None
) -> dict:
    """Label every image of `req.shards` exactly once; returns the merged output manifest.

    Raises InputFileError (unreadable input, shards < workers × ranks, a folder holding another job),
    CheckpointError (teacher), UsageError (devices Lightning refuses).
    """
    out_dir = Path(out_dir)
    source = req.source or f"{_source_of(read_manifest(req.shards))}_pseudo"
    trainer, writer = _trainer(req, out_dir, source)
    check_parallelism(len(list_shards(req.shards)), req.workers, trainer.world_size, req.shards, "--workers")
    model, _text, recipe = load_model(req.teacher, "cpu")  # before check_job: a bad teacher records nothing
    check_job(out_dir, _settings(req, trainer.world_size))
    writer.progress = progress
    module = TeacherModule(model, req.size or recipe.data.crop_size, req.thresholds, out_dir, source)
    data = InputShards(req.shards, req.workers, req.strict, writer)
    with quiet_lightning(), worker_errors_in_one_line():
        trainer.predict(module, datamodule=data, return_predictions=False)
    return read_manifest(out_dir)


def _trainer(req: PseudoLabelRequest, out_dir: Path, source: str) -> tuple[L.Trainer, PseudoShardWriter]:
    extra = {"teacher": str(req.teacher), "thresholds": vars(req.thresholds), "input": str(req.shards)}
    writer = PseudoShardWriter(out_dir, source, req.maxcount, extra, req.command)
    strategy = req.strategy
    start_methods = {"ddp": "popen", "ddp_spawn": "spawn"}
    if strategy in start_methods:  # a dead rank stops the others after the timeout, not never
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(start_method=start_methods[strategy], timeout=timedelta(minutes=10))
    try:
        with quiet_lightning():
            trainer = L.Trainer(
                accelerator=req.accelerator, devices=req.devices, num_nodes=req.num_nodes,
                strategy=strategy, precision="32-true", logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                callbacks=[writer], default_root_dir=str(out_dir),
            )  # fmt: skip
    except (ValueError, TypeError, RuntimeError, MisconfigurationException) as err:
        raise UsageError(
            f"--accelerator {req.accelerator} --devices {req.devices} --num-nodes {req.num_nodes} refused "
            f"by Lightning: {str(err).splitlines()[0]}"
        ) from None
    return trainer, writer


def _settings(req: PseudoLabelRequest, world_size: int) -> dict:
    """What must not change between a run and its resumption (the split of shards depends on ranks)."""
    return {
        "input": [str(Path(u).resolve()) for u in list_shards(req.shards)],
        "teacher": str(Path(req.teacher).resolve()),
        "thresholds": vars(req.thresholds),
        "size": req.size,
        "maxcount": req.maxcount,
        "world_size": world_size,
        "workers": req.workers,
    }


def _source_of(manifest: dict) -> str:
    names = list(manifest.get("shards") or [])
    return names[0].split("-", 1)[0] if names else "data"


class InputShards(L.LightningDataModule):
    """This rank's input shards, built when Lightning knows the rank (so `ddp_spawn` works too)."""

    def __init__(self, shards: str, workers: int, strict: bool, writer: PseudoShardWriter) -> None:
        super().__init__()
        self.shards, self.workers, self.strict, self.writer = shards, workers, strict, writer

    def predict_dataloader(self):
        rank, world = self.trainer.global_rank, self.trainer.world_size
        skips = SkipCounter(f"pseudo-label rank {rank}", strict=self.strict)
        self.writer.skips = skips
        return build_input_loader(self.shards, rank, world, self.workers, skips)


class TeacherModule(L.LightningModule):
    """The teacher's forward in `predict_step`: one input sample → one output sample (or None).

    On a rerun, the rank's first `done` samples (already in its finished shards) pass through without the
    teacher: `write_shards` only checks that they are the same input.
    """

    def __init__(self, model, size: int, thresholds: PseudoLabelThresholds, out_dir: Path, source: str):
        super().__init__()
        self.model, self.size, self.thresholds = model, size, thresholds
        self.out_dir, self.source = out_dir, source
        self._done = self._position = 0
        self._words: dict[str, dict] = {}

    def on_predict_start(self) -> None:
        rank = self.global_rank
        self._done = completed_samples(rank_dir(self.out_dir, rank), self.source, rank_split(rank))
        self._position = 0

    def predict_step(self, sample: dict, batch_idx: int) -> dict:
        self._position += 1
        out = {"__key__": sample["key"], f"image.{sample['image_ext']}": sample["image"]}
        if self._position <= self._done:
            return {**out, "meta.json": sample["meta"]}
        id_map, segments = self.teacher_masks(sample["pixels"])
        meta = dict(sample["meta"], segments=[_segment(s) for s in segments], pseudo=True)
        words = _words_of(sample, self._words)
        if words is not None:
            meta["words"] = words
        return {**out, "panoptic.png": encode_panoptic_png(id_map.numpy()), "meta.json": meta}

    def teacher_masks(self, image: np.ndarray):
        """uint8 [H, W, 3] → (id map long [H, W], segments) at the image's own size."""
        pixels, fitted = fit_and_pad(image, self.size)
        probs = self.model(pixels[None].to(self.device)).mask_logits.float().sigmoid()  # [1, N, h, w]
        probs = resize_scores(probs, (self.size, self.size), fitted, tuple(image.shape[:2]))[0].cpu()
        return select_pseudo_masks(probs, self.thresholds)


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
