"""`run_training`: recipe → model, data, trainer → checkpoints and `model.pt` in the run folder."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from openseg_cli.atomic import remove_stale_temps
from openseg_cli.config import Recipe, dump_recipe
from openseg_cli.data.loader import check_parallelism
from openseg_cli.data.shards import list_shards, read_manifest
from openseg_cli.engine.callbacks import (
    SKIPPED_FILE,
    AtomicCheckpointIO,
    SkipReport,
    SlimExport,
    StepProgressBar,
)
from openseg_cli.engine.cpu import share_cpu_cores
from openseg_cli.engine.datamodule import ShardDataModule
from openseg_cli.engine.module import OpenSegModule
from openseg_cli.errors import OpenSegError, RecipeError
from openseg_cli.losses import build_criterion
from openseg_cli.models import build_model


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    model_path: Path
    global_step: int
    val_miou: float | None
    skipped: dict[str, int] = field(default_factory=dict)  # reason → skip events, all ranks and workers


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

    Raises RecipeError/InputFileError with one clear line (empty or missing shard folders, batch sizes,
    fewer shards than workers × ranks).
    """
    if not recipe.data.train_shards:
        raise RecipeError("data.train_shards is empty: point it at a folder of shards (openseg prepare …)")
    data = recipe.data
    for spec, workers in (
        (data.train_shards, data.workers),
        (data.val_shards, 1),
        (data.mix_shards, data.workers),
    ):
        if spec:  # the val loader caps its workers at its shards: one shard per rank is enough
            check_parallelism(len(list_shards(spec)), workers, world_size, spec)
    return accumulation(recipe, world_size)


def run_training(
    recipe: Recipe,
    run_dir: Path,
    resume: str | None = None,
    world_size: int = 1,
    strategy: str = "auto",
    callbacks: list | None = None,
) -> TrainResult:
    """Train as the recipe says, writing `recipe.yaml`, `metrics.csv`, `checkpoints/`, `skipped.json` and
    `model.pt`.

    `world_size` is the number of processes (devices × nodes) used to derive gradient accumulation.
    `strategy`: Lightning's ("auto" → "ddp" on several devices, which re-runs the command per rank;
    "ddp_spawn" in tests); `callbacks` are added to openseg's. Raises RecipeError/InputFileError before
    any work when the recipe's data cannot be used, and InputFileError for a bad sample with data.strict.
    """
    accumulate = check_training_inputs(recipe, world_size)
    if recipe.trainer.accelerator == "cpu" or not torch.cuda.is_available():
        share_cpu_cores(recipe.data.workers)
    L.seed_everything(recipe.trainer.seed, workers=True, verbose=False)
    val_classes = val_classes_of(recipe)
    with quiet_lightning():
        trainer = build_trainer(recipe, run_dir, accumulate, bool(val_classes), strategy, callbacks)
    if _launch_rank() == 0:  # ranks Lightning starts later would write the same file at the same time
        dump_recipe(recipe, run_dir / "recipe.yaml")
        remove_stale_temps(run_dir / "checkpoints", "*.ckpt")  # a killed save's partial file, not a ckpt
    model, text_encoder = build_model(recipe.model)
    module = OpenSegModule(model, text_encoder, build_criterion(recipe.loss), recipe, val_classes)
    batches_per_epoch = recipe.trainer.val_every_steps * accumulate
    need_words = recipe.loss.grounding_weight > 0
    datamodule = ShardDataModule(recipe.data, recipe.trainer.seed, batches_per_epoch, need_words)
    with quiet_lightning(), worker_errors_in_one_line():
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume)
    miou = trainer.callback_metrics.get("val/miou")
    global_step = int(trainer.global_step)
    if strategy == "ddp_spawn":  # the parent's trainer did not train: read what rank 0 wrote
        global_step = int(torch.load(run_dir / "model.pt", weights_only=True)["openseg"]["global_step"])
    return TrainResult(
        run_dir,
        run_dir / "model.pt",
        global_step,
        None if miou is None else float(miou),
        _read_skipped(run_dir / SKIPPED_FILE),
    )


def _launch_rank() -> int:
    """This process's global rank as the launcher set it (0 before Lightning starts other ranks)."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _read_skipped(path: Path) -> dict[str, int]:
    try:
        return {str(k): int(v) for k, v in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}


@contextmanager
def worker_errors_in_one_line() -> Iterator[None]:
    """A DataLoader worker's OpenSegError comes back with the worker's traceback in its message: keep the
    user's one line (the original message is the traceback's last line)."""
    try:
        yield
    except OpenSegError as err:
        text = str(err)
        if not text.startswith("Caught "):
            raise
        last = text.strip().splitlines()[-1]
        raise type(err)(last.split(": ", 1)[1] if ": " in last else last) from None


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
            ".*infer the batch indices.*",  # pseudo-label's writer does not need them
            ".*Total length of .list. across ranks is zero.*",  # no val_shards: no validation, on purpose
        ):
            warnings.filterwarnings("ignore", message=message)
        try:
            yield
        finally:
            logger.setLevel(level)


def build_trainer(
    recipe: Recipe,
    run_dir: Path,
    accumulate: int,
    has_val: bool,
    strategy: str = "auto",
    extra_callbacks: list | None = None,
) -> L.Trainer:
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
        SkipReport(run_dir / SKIPPED_FILE),
        LearningRateMonitor(logging_interval="step"),
        StepProgressBar(leave=True),
    ]
    if has_val:
        callbacks.append(
            ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/miou", mode="max", save_top_k=1)
        )
    callbacks += list(extra_callbacks or [])
    try:
        return _trainer(recipe, run_dir, accumulate, callbacks, strategy)
    except (ValueError, TypeError, MisconfigurationException) as err:
        t = recipe.trainer
        settings = (
            f"trainer.devices={t.devices!r}, trainer.precision={t.precision!r}, "
            f"trainer.accelerator={t.accelerator!r}"
        )
        raise RecipeError(f"{settings} refused by Lightning: {str(err).splitlines()[0]}") from None


def _trainer(recipe: Recipe, run_dir: Path, accumulate: int, callbacks: list, strategy: str) -> L.Trainer:
    t = recipe.trainer
    return L.Trainer(
        strategy=_strategy(strategy, world_size_of(recipe), _may_leave_unused(recipe)),
        plugins=[AtomicCheckpointIO()],
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


def _may_leave_unused(recipe: Recipe) -> bool:
    """Whether a step may leave trainable parameters without a gradient, which DDP must be told about:
    a segmentation-only teacher never uses the grounding head, and a trainable text tower is idle on a
    step whose captions kept no words (and CLIP's own logit_scale is never used: OpenSeg has its own)."""
    return recipe.loss.grounding_weight == 0 or not recipe.model.freeze_text


def _strategy(name: str, world_size: int, find_unused: bool = False):
    """Lightning's strategy: as given for one process; DDP with a 10-minute collective timeout (a dead rank
    stops the others instead of hanging them) for several processes or "ddp"/"ddp_spawn". `world_size` is
    resolved (`world_size_of`): devices "auto" on a machine with several GPUs is several processes too."""
    several = world_size > 1
    if name == "auto" and not several:
        return "auto"
    if name in ("auto", "ddp", "ddp_spawn"):
        from lightning.pytorch.strategies import DDPStrategy

        start = "spawn" if name == "ddp_spawn" else "popen"
        return DDPStrategy(
            start_method=start, timeout=timedelta(minutes=10), find_unused_parameters=find_unused
        )
    return name
