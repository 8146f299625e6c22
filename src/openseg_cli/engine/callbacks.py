"""Lightning callbacks of openseg: the slim `model.pt` export and a one-line-per-interval console log."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from openseg_cli.engine.checkpoint import write_slim_checkpoint


class SlimExport(L.Callback):
    """At the end of training (rank 0), write weights + recipe to `path` for `predict`/`evaluate`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            extra = {"global_step": int(trainer.global_step), "val_classes": pl_module.val_classes}
            write_slim_checkpoint(self.path, pl_module.recipe, pl_module.state_dict(), extra=extra)
