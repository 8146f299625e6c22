"""`run_training`: recipe → model, data, trainer → checkpoints and `model.pt` in the run folder."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger

from openseg_cli.config import Recipe, dump_recipe
from openseg_cli.data.shards import list_shards, read_manifest
from openseg_cli.engine.callbacks import SlimExport
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
    if global_batch % per_step:
        raise RecipeError(
            f"trainer.global_batch_size={global_batch} is not a multiple of data.batch_size × devices × nodes "
            f"= {recipe.data.batch_size} × {world_size}; change one of them"
        )
    return global_batch // per_step


def val_classes_of(recipe: Recipe) -> list[list[str]]:
    """The held-out split's class names (with synonyms) from its shard manifest; [] without a split."""
    if not recipe.data.val_shards:
        return []
    manifest = read_manifest(recipe.data.val_shards)
    return [list(c.get("synonyms") or [c["name"]]) for c in manifest["categories"]]


def run_training(recipe: Recipe, run_dir: Path, resume: str | None = None, world_size: int = 1) -> TrainResult:
    """Train as the recipe says, writing `recipe.yaml`, `metrics.csv`, `checkpoints/` and `model.pt`.

    `world_size` is the number of processes (devices × nodes) used to derive gradient accumulation.
    Raises RecipeError/InputFileError before any work when the recipe's data cannot be used.
    """
    if not recipe.data.train_shards:
        raise RecipeError("data.train_shards is empty: point it at a folder of shards (openseg prepare …)")
    list_shards(recipe.data.train_shards)  # fails fast, with a clear message, on a bad folder
    accumulate = accumulation(recipe, world_size)
    L.seed_everything(recipe.trainer.seed, workers=True, verbose=False)
    dump_recipe(recipe, run_dir / "recipe.yaml")
    model, text_encoder = build_model(recipe.model)
    module = OpenSegModule(model, text_encoder, build_criterion(recipe.loss), recipe, val_classes_of(recipe))
    batches_per_epoch = recipe.trainer.val_every_steps * accumulate
    datamodule = ShardDataModule(recipe.data, recipe.trainer.seed, batches_per_epoch)
    trainer = build_trainer(recipe, run_dir, accumulate, has_val=bool(module.val_classes))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    miou = trainer.callback_metrics.get("val/miou")
    return TrainResult(run_dir, run_dir / "model.pt", int(trainer.global_step), None if miou is None else float(miou))


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
        logger=CSVLogger(str(run_dir), name="", version=""),
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
            import torch

            gpu = recipe.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
            devices = torch.cuda.device_count() if gpu else 1
    return max(1, int(devices)) * recipe.trainer.num_nodes
