"""`run_training`: recipe → model, data, trainer → checkpoints and `model.pt` in the run folder."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from openseg_cli.config import Recipe, dump_recipe
from openseg_cli.data.shards import list_shards, read_manifest
from openseg_cli.engine.callbacks import SlimExport
from openseg_cli.engine.cpu import share_cpu_cores
from openseg_cli.engine.datamodule import ShardDataModule
from openseg_cli.engine.module import OpenSegModule
from openseg_cli.errors import RecipeError
from openseg_cli.losses import build_criterion
from openseg_cli.models import build_model


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    model_path: Path
    global_step: int
    val_miou: float | None


def accumulation(recipe: Recipe, world_size: int) -> int:
    """Gradient-accumulation steps so that per-device batch × world size × accumulation = global batch."""
    per_step = recipe.data.batch_size * world_size
    global_batch = recipe.trainer.global_batch_size
    if recipe.data.batch_size < 1 or global_batch < 1:
        raise RecipeError(
            f"data.batch_size ({recipe.data.batch_size}) and trainer.global_batch_size ({global_batch}) "
            "must be positive"
        )
    if global_batch % per_step:
        raise RecipeError(
            f"trainer.global_batch_size={global_batch} is not a multiple of "
            "data.batch_size × devices × nodes "
            f"= {recipe.data.batch_size} × {world_size}; change one of them"
        )
    return global_batch // per_step


def val_classes_of(recipe: Recipe) -> list[list[str]]:
    """The held-out split's class names (with synonyms) from its shard manifest; [] without a split."""
    if not recipe.data.val_shards:
        return []
    manifest = read_manifest(recipe.data.val_shards)
    return [list(c.get("synonyms") or [c["name"]]) for c in manifest["categories"]]


def check_training_inputs(recipe: Recipe, world_size: int) -> int:
    """Everything that can be checked before a run folder exists; returns the gradient accumulation.

    Raises RecipeError/InputFileError with one clear line (empty or missing shard folders, batch sizes).
    """
    if not recipe.data.train_shards:
        raise RecipeError("data.train_shards is empty: point it at a folder of shards (openseg prepare …)")
    list_shards(recipe.data.train_shards)
    if recipe.data.val_shards:
        list_shards(recipe.data.val_shards)
    if recipe.data.mix_shards:
        list_shards(recipe.data.mix_shards)
    return accumulation(recipe, world_size)


def run_training(
    recipe: Recipe, run_dir: Path, resume: str | None = None, world_size: int = 1
) -> TrainResult:
    """Train as the recipe says, writing `recipe.yaml`, `metrics.csv`, `checkpoints/` and `model.pt`.

    `world_size` is the number of processes (devices × nodes) used to derive gradient accumulation.
    Raises RecipeError/InputFileError before any work when the recipe's data cannot be used.
    """
    accumulate = check_training_inputs(recipe, world_size)
    if recipe.trainer.accelerator == "cpu" or not torch.cuda.is_available():
        share_cpu_cores(recipe.data.workers)
    L.seed_everything(recipe.trainer.seed, workers=True, verbose=False)
    val_classes = val_classes_of(recipe)
    with quiet_lightning():
        trainer = build_trainer(recipe, run_dir, accumulate, has_val=bool(val_classes))
    dump_recipe(recipe, run_dir / "recipe.yaml")
    model, text_encoder = build_model(recipe.model)
    module = OpenSegModule(model, text_encoder, build_criterion(recipe.loss), recipe, val_classes)
    batches_per_epoch = recipe.trainer.val_every_steps * accumulate
    need_words = recipe.loss.grounding_weight > 0
    datamodule = ShardDataModule(recipe.data, recipe.trainer.seed, batches_per_epoch, need_words)
    with quiet_lightning():
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    miou = trainer.callback_metrics.get("val/miou")
    return TrainResult(
        run_dir, run_dir / "model.pt", int(trainer.global_step), None if miou is None else float(miou)
    )


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's advice that does not apply here, so the warnings a user sees are real ones."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)  # "GPU available: False", the LitLogger tip
    with warnings.catch_warnings():
        for message in (
            ".*does not have many workers.*",  # our loaders choose their workers on purpose
            ".*IterableDataset. has .__len__. defined.*",  # exact per-worker lengths, see data/loader.py
            ".*module\\(s\\) in eval mode.*",  # the frozen text tower stays in eval mode on purpose
            ".*treespec.*",  # a Lightning/torch deprecation, nothing for a user to do
        ):
            warnings.filterwarnings("ignore", message=message)
        try:
            yield
        finally:
            logger.setLevel(level)


def build_trainer(recipe: Recipe, run_dir: Path, accumulate: int, has_val: bool) -> L.Trainer:
    """The Lightning trainer a recipe describes: step-based, checkpoints every N steps, `last` and `best`."""
    t = recipe.trainer
    ckpt_dir = run_dir / "checkpoints"
    callbacks = [
        ModelCheckpoint(
            dirpath=ckpt_dir,
            filename="step{step:07d}",
            auto_insert_metric_name=False,
            every_n_train_steps=t.checkpoint_every_steps,
            save_top_k=-1,
            save_last=True,
        ),
        SlimExport(run_dir / "model.pt"),
        LearningRateMonitor(logging_interval="step"),
        RichProgressBar(leave=True),
    ]
    if has_val:
        callbacks.append(
            ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/miou", mode="max", save_top_k=1)
        )
    try:
        return _trainer(recipe, run_dir, accumulate, callbacks)
    except (ValueError, TypeError, MisconfigurationException) as err:
        t = recipe.trainer
        settings = (
            f"trainer.devices={t.devices!r}, trainer.precision={t.precision!r}, "
            f"trainer.accelerator={t.accelerator!r}"
        )
        raise RecipeError(f"{settings} refused by Lightning: {str(err).splitlines()[0]}") from None


def _trainer(recipe: Recipe, run_dir: Path, accumulate: int, callbacks: list) -> L.Trainer:
    t = recipe.trainer
    return L.Trainer(
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        precision=t.precision,
        accumulate_grad_batches=accumulate,
        gradient_clip_val=recipe.optim.grad_clip or None,
        log_every_n_steps=t.log_every_steps,
        check_val_every_n_epoch=1,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # webdataset splits shards by node and worker itself
        logger=CSVLogger(str(run_dir), name="", version="logs"),  # run_dir/logs/metrics.csv
        callbacks=callbacks,
        default_root_dir=str(run_dir),
        enable_model_summary=False,
    )


def world_size_of(recipe: Recipe) -> int:
    """Processes the trainer will run (devices × nodes), resolving 'auto' the way Lightning does."""
    devices = recipe.trainer.devices
    if isinstance(devices, str):
        if devices.isdigit():
            devices = int(devices)
        else:
            gpu = recipe.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
            devices = torch.cuda.device_count() if gpu else 1
    return max(1, int(devices)) * recipe.trainer.num_nodes
