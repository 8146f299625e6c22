"""Lightning plug-ins of openseg: the slim `model.pt` export, the skip report, atomic checkpoint files."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import RichProgressBar

from openseg_cli.atomic import atomic_write, atomic_write_json
from openseg_cli.data.skips import SHARED_REASONS
from openseg_cli.engine.checkpoint import write_slim_checkpoint

SKIPPED_FILE = "skipped.json"


class SlimExport(L.Callback):
    """At the end of training (rank 0), write weights + recipe to `path` for `predict`/`evaluate`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            extra = {"global_step": int(trainer.global_step), "val_classes": pl_module.val_classes}
            write_slim_checkpoint(self.path, pl_module.recipe, pl_module.state_dict(), extra=extra)


class StepProgressBar(RichProgressBar):
    """Rich progress for step-based runs: "Epoch 3 (training to step 1500)" instead of Lightning's
    "Epoch 3/-2" (it prints max_epochs - 1, and step-based training sets max_epochs = -1)."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs is not None and trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        return f"Epoch {current_epoch} (training to step {trainer.max_steps})"


class SkipReport(L.Callback):
    """At the end of training, sum the loaders' skipped samples over every rank (and its workers) into
    `run_dir/skipped.json` ({reason: count}), which the CLI prints; the datamodule lists its loaders."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        counts = torch.zeros(len(SHARED_REASONS) + 1, dtype=torch.long)
        for loader in getattr(trainer.datamodule, "loaders", []):
            summary = loader.skips.summary()
            for i, reason in enumerate(SHARED_REASONS):
                counts[i] += summary.get(reason, 0)
            counts[-1] += sum(n for r, n in summary.items() if r not in SHARED_REASONS)
        counts = trainer.strategy.reduce(counts.to(pl_module.device), reduce_op="sum").cpu()
        if trainer.is_global_zero:
            names = [*SHARED_REASONS, "other"]
            atomic_write_json(self.path, {r: int(n) for r, n in zip(names, counts, strict=True) if n})


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a run killed while saving leaves the previous
    `last.ckpt` whole (Lightning writes in place, so a kill mid-write would leave a truncated one)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("storage_options are not supported by openseg's checkpoint writer")
        atomic_write(path, lambda file: torch.save(checkpoint, file))
