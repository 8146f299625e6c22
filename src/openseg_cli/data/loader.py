"""WebDataset pipelines → torch DataLoaders giving the train and eval batch dicts of docs/architecture.md.

Train: shards resampled with replacement, seeded per (seed, rank, worker, epoch) so ranks and workers
see different streams and epochs differ; an exact number of batches per rank (shared out over workers),
so every rank takes the same number of steps (uneven batch counts hang DDP). Eval: every sample exactly
once: no resampling, no shuffle, shards split by rank then by worker.
Corrupt shards or samples are counted by reason (`loader.skips.summary()`, workers included) and skipped
with a logged warning, never a crash; with `strict` (data.strict, --strict) the first one is an error.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import webdataset as wds
from torch.utils.data import DataLoader

from openseg_cli.config.schema import DataConfig
from openseg_cli.data.decode import (
    CorruptSampleError,
    class_lookup,
    decode_image,
    decode_sample,
    parse_meta,
    skip_reason,
)
from openseg_cli.data.schema import META_MEMBER, PANOPTIC_MEMBER, image_member
from openseg_cli.data.shards import count_samples, list_shards, read_manifest, read_sizes
from openseg_cli.data.skips import ShardCounts, SkipCounter, mix_seed
from openseg_cli.data.streams import (
    SeededMix,
    SeededShuffle,
    Sized,
    SplitByRank,
    TakeShare,
    WorkerSeed,
    worker_position,
)
from openseg_cli.data.train_crop import crop_segments, decode_train_inputs
from openseg_cli.data.transforms import crop_image, eval_transform, plan_crop
from openseg_cli.data.words import WordSampler, check_words_available
from openseg_cli.errors import InputFileError, RecipeError


class _TrainSamples:
    """Decode → words → crop plan → the crop's labels and pixels (train_crop.py), per sample; corrupt
    samples are counted and skipped."""

    def __init__(
        self,
        cfg: DataConfig,
        class_of: dict[int, int],
        seed: int,
        rank: int,
        skips: SkipCounter,
        need_words: bool,
    ) -> None:
        self.cfg, self.class_of, self.seed, self.rank, self.skips = cfg, class_of, seed, rank, skips
        self.need_words = need_words
        self.words = WordSampler(cfg.caption_sampling, cfg.word_keep_prob, cfg.max_words)
        self.epoch = -1

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        self.epoch += 1
        worker = worker_position()[0]
        rng = random.Random(mix_seed(self.seed, self.rank, worker, self.epoch, 2))
        gen = torch.Generator().manual_seed(mix_seed(self.seed, self.rank, worker, self.epoch, 3))
        for raw in src:
            try:
                d = decode_train_inputs(raw)
            except CorruptSampleError as exn:
                self.skips.count(skip_reason(exn), str(exn))
                continue
            # InputFileError (no nouns for this sample) is fatal on purpose: else words are lost silently
            words = self.words.sample(d.key, d.url, d.meta, rng) if self.need_words else []
            cfg = self.cfg
            plan = plan_crop(*d.image.shape[:2], cfg.crop_size, tuple(cfg.scale_range), cfg.hflip, gen)
            # crop first: only the pixels the crop keeps are resized and labelled (train_crop.py)
            seg, classes = crop_segments(d.panoptic, d.meta["segments"], self.class_of, plan)
            self.skips.ok()
            yield {
                "image": crop_image(d.image, plan),
                "segment_map": seg,
                "segment_classes": classes,
                "words": words,
                "key": d.key,
            }


class _EvalSamples:
    """Decode → eval transform (fit + pad), per sample; corrupt samples are counted and skipped."""

    def __init__(self, crop_size: int, class_of: dict[int, int], skips: SkipCounter) -> None:
        self.crop_size, self.class_of, self.skips = crop_size, class_of, skips

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for raw in src:
            try:
                d = decode_sample(raw, self.class_of)
            except CorruptSampleError as exn:
                self.skips.count(skip_reason(exn), str(exn))
                continue
            size = tuple(d.segment_map.shape)
            image, seg, classes, sem = eval_transform(
                d.image, d.segment_map, d.segment_classes, d.semantic, self.crop_size
            )
            self.skips.ok()
            yield {
                "image": image,
                "segment_map": seg,
                "segment_classes": classes,
                "semantic": sem,
                "key": d.key,
                "size": size,
            }


def collate_train(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Train batch: images float [B,3,S,S], segment_maps long [B,S,S], segment_classes list[B] of [M_b],
    words list[B] of list[str], keys list[str]."""
    return {
        "images": torch.stack([s["image"] for s in samples]),
        "segment_maps": torch.stack([s["segment_map"] for s in samples]),
        "segment_classes": [s["segment_classes"] for s in samples],
        "words": [s["words"] for s in samples],
        "keys": [s["key"] for s in samples],
    }


def collate_eval(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Eval batch: the train keys but words, plus semantic long [B,S,S] (-1 ignore) and sizes [(H, W)]."""
    return {
        "images": torch.stack([s["image"] for s in samples]),
        "semantic": torch.stack([s["semantic"] for s in samples]),
        "segment_maps": torch.stack([s["segment_map"] for s in samples]),
        "segment_classes": [s["segment_classes"] for s in samples],
        "keys": [s["key"] for s in samples],
        "sizes": [s["size"] for s in samples],
    }


def check_parallelism(
    num_shards: int, workers: int, world_size: int, spec: str | Path, workers_name: str = "data.workers"
) -> None:
    """Fail fast when shards < workers x ranks (idle workers, or ranks without data that hang DDP).

    The message names what to change: `workers_name` (the recipe key or flag), the device count, or the
    shards' maxcount.
    """
    need = max(1, workers) * world_size
    if num_shards < need:
        raise InputFileError(
            f"{spec}: {num_shards} shard(s) for {max(1, workers)} worker(s) x {world_size} rank(s) = {need}: "
            f"set {workers_name} lower, use fewer devices/nodes, or rewrite the shards with a smaller "
            "maxcount to get more shards"
        )


def _class_of(shard_dir: str | Path) -> dict[int, int]:
    return class_lookup(read_manifest(shard_dir).get("categories", []))


def build_train_loader(
    shard_dir: str | Path,
    data_cfg: DataConfig,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    steps_per_epoch: int | None = None,
    need_words: bool = True,
) -> DataLoader:
    """Endless-style train loader with exactly `steps_per_epoch` batches per rank per epoch.

    With `data_cfg.mix_shards`, every sample comes from the mix source with probability
    `data_cfg.mix_probability` (e.g. pseudo-labelled Localized Narratives next to COCO), decided by an RNG
    seeded per (seed, rank, worker, epoch). `need_words=False` (a segmentation-only teacher) neither needs
    nor samples words. `steps_per_epoch=None`: samples in the main shards // (batch_size x world_size).
    `len(loader)` is exact. Raises InputFileError for missing shards/manifest, shards < workers x ranks,
    or (when words are needed) a shard with neither a nouns sidecar nor words in its metas.
    """
    if data_cfg.caption_sampling not in ("one", "all"):
        raise RecipeError(f"data.caption_sampling must be 'one' or 'all', not {data_cfg.caption_sampling!r}")
    if not 0.0 <= data_cfg.mix_probability <= 1.0:
        raise RecipeError(f"data.mix_probability must be in [0, 1], got {data_cfg.mix_probability}")
    skips = SkipCounter("train", strict=data_cfg.strict)
    specs = [shard_dir] + ([data_cfg.mix_shards] if data_cfg.mix_shards else [])
    sources = [
        _train_source(spec, data_cfg, rank, world_size, seed + index, skips, need_words)
        for index, spec in enumerate(specs)
    ]
    if steps_per_epoch is None:
        total = sum(count_samples(u) for u in list_shards(shard_dir))
        steps_per_epoch = max(1, total // (data_cfg.batch_size * world_size))
    probs = [1.0 - data_cfg.mix_probability, data_cfg.mix_probability]
    samples = sources[0] if len(sources) == 1 else SeededMix(sources, probs, seed, rank)
    pipeline = wds.DataPipeline(
        samples,
        wds.batched(data_cfg.batch_size, collation_fn=collate_train, partial=False),
        TakeShare(steps_per_epoch),
    )
    return _loader(Sized(pipeline, steps_per_epoch), data_cfg.workers, skips)


def _train_source(
    spec: str | Path,
    cfg: DataConfig,
    rank: int,
    world_size: int,
    seed: int,
    skips: SkipCounter,
    need_words: bool,
) -> wds.DataPipeline:
    """One source's endless stream of transformed training samples (resampled shards, seeded shuffle)."""
    urls = list_shards(spec)
    check_parallelism(len(urls), cfg.workers, world_size, spec)
    if need_words:
        check_words_available(urls, spec)
    return wds.DataPipeline(
        wds.ResampledShards(urls, seed=seed, worker_seed=WorkerSeed(rank), deterministic=True),
        wds.tarfile_to_samples(handler=skips),
        ShardCounts(read_sizes(urls), skips),
        SeededShuffle(cfg.shuffle_buffer, seed, rank) if cfg.shuffle_buffer > 1 else None,
        _TrainSamples(cfg, _class_of(spec), seed, rank, skips, need_words),
    )


def build_eval_loader(
    shard_dir: str | Path,
    batch_size: int,
    crop_size: int,
    workers: int,
    rank: int = 0,
    world_size: int = 1,
    strict: bool = False,
) -> DataLoader:
    """Eval loader: every sample of this rank's shards exactly once, in shard order per worker.

    Workers are capped at this rank's shard count (an idle worker is harmless here); fewer shards than
    ranks → InputFileError. The loader has no `len` (it would be a guess if a sample is corrupt).
    """
    urls = list_shards(shard_dir)
    check_parallelism(len(urls), 1, world_size, shard_dir)
    workers = min(workers, len(urls[rank::world_size]))
    skips = SkipCounter("eval", strict=strict)
    pipeline = wds.DataPipeline(
        wds.SimpleShardList(urls),
        SplitByRank(rank, world_size),
        wds.split_by_worker,
        wds.tarfile_to_samples(handler=skips),
        ShardCounts(read_sizes(urls), skips),
        _EvalSamples(crop_size, _class_of(shard_dir), skips),
        wds.batched(batch_size, collation_fn=collate_eval, partial=True),
    )
    return _loader(pipeline, workers, skips)


def _as_is(batch: dict[str, Any]) -> dict[str, Any]:
    return batch


def _loader(pipeline: wds.DataPipeline, workers: int, skips: SkipCounter) -> DataLoader:
    # persistent workers keep the per-worker epoch counters: without them every epoch would replay the
    # first epoch's seeds (webdataset pitfall 5)
    loader = DataLoader(
        pipeline,
        batch_size=None,
        collate_fn=_as_is,  # batches are collated in the pipeline; the default would turn tuples into lists
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    loader.skips = skips  # type: ignore[attr-defined]
    return loader


def iter_samples(
    shard_dir: str | Path, rank: int = 0, world_size: int = 1, skips: SkipCounter | None = None
) -> Iterator[dict[str, Any]]:
    """Every sample of the shards exactly once, in order, undecoded except the meta.

    Yields `{"key", "url", "meta" (normalised dict), "image" (bytes), "image_ext", "panoptic" (bytes|None)}`.
    Corrupt members and samples are counted in `skips` (if given) and skipped. In-process, no workers.
    Shards go to ranks round-robin by index (rank r reads shards r, r + world_size, ...).
    """
    skips = skips if skips is not None else SkipCounter("iter")
    urls = list_shards(shard_dir)[rank::world_size]
    if not urls:  # more ranks than shards: this rank has nothing to read
        return
    stages = [
        wds.SimpleShardList(urls),
        wds.tarfile_to_samples(handler=skips),
        ShardCounts(read_sizes(urls), skips),
        _Inputs(skips, decode=False),
    ]
    yield from wds.DataPipeline(*stages)


class _Inputs:
    """Raw webdataset samples → `iter_samples` dicts; with `decode`, plus "pixels" (uint8 [H, W, 3]).

    Incomplete samples, bad metas and (with `decode`) unreadable images are counted in `skips`.
    """

    def __init__(self, skips: SkipCounter, decode: bool) -> None:
        self.skips, self.decode = skips, decode

    def __call__(self, src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for raw in src:
            key, url = raw["__key__"], raw["__url__"]
            name = image_member(raw)
            where = f"sample {key} ({url})"
            try:
                if name is None or META_MEMBER not in raw:
                    raise CorruptSampleError(f"{where}: incomplete sample")
                meta = parse_meta(raw[META_MEMBER], where)
                pixels = decode_image(raw[name], where) if self.decode else None
            except CorruptSampleError as exn:
                self.skips.count(skip_reason(exn), str(exn))
                continue
            self.skips.ok()
            sample = {"key": key, "url": url, "meta": meta, "image": raw[name]}
            sample.update(image_ext=name.split(".", 1)[1], panoptic=raw.get(PANOPTIC_MEMBER))
            if self.decode:
                sample["pixels"] = pixels
            yield sample


def build_input_loader(
    shard_dir: str | Path, rank: int, world_size: int, workers: int, skips: SkipCounter
) -> DataLoader:
    """Every sample of this rank's shards exactly once, image decoded: the input of `pseudo-label`.

    Shards go to ranks round-robin by index, never padded or repeated (a rank may read fewer samples than
    another: nothing is synchronised per batch at inference). Items are `iter_samples` dicts plus
    "pixels" (uint8 [H, W, 3]), one per batch, in a fixed order for a given world size and worker count.
    Shards < max(1, workers) × world_size → InputFileError (ranks or workers would idle).
    """
    urls = list_shards(shard_dir)
    check_parallelism(len(urls), workers, world_size, shard_dir, "--workers")
    mine = urls[rank::world_size]
    pipeline = wds.DataPipeline(
        wds.SimpleShardList(mine),
        wds.split_by_worker,
        wds.tarfile_to_samples(handler=skips),
        ShardCounts(read_sizes(mine), skips),
        _Inputs(skips, decode=True),
    )
    return _loader(pipeline, min(workers, len(mine)), skips)
