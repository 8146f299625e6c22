"""`ShardDataModule`: webdataset loaders for training (resampled, per-rank seeds) and held-out validation."""

from __future__ import annotations

import lightning as L

from openseg_cli.config import DataConfig
from openseg_cli.data.loader import build_eval_loader, build_train_loader


class ShardDataModule(L.LightningDataModule):
    """No work in `__init__`: loaders are built when Lightning asks, with the trainer's rank and world size.

    `need_words=False` for a segmentation-only recipe (the teacher): shards then need no nouns.
    `batches_per_epoch` is the exact number of training batches each rank yields per "epoch" (the stream is
    resampled, so an epoch is only the validation interval).
    """

    def __init__(
        self, data_cfg: DataConfig, seed: int, batches_per_epoch: int, need_words: bool = True
    ) -> None:
        super().__init__()
        self.cfg = data_cfg
        self.need_words = need_words
        self.seed = seed
        self.batches_per_epoch = batches_per_epoch
        self.loaders: list = []  # every loader built, for the skip report (engine.callbacks.SkipReport)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self):
        rank, world_size = self._rank()
        loader = build_train_loader(
            self.cfg.train_shards,
            self.cfg,
            rank=rank,
            world_size=world_size,
            seed=self.seed,
            steps_per_epoch=self.batches_per_epoch,
            need_words=self.need_words,
        )
        self.loaders.append(loader)
        return loader

    def val_dataloader(self):
        if not self.cfg.val_shards:
            return []
        rank, world_size = self._rank()
        loader = build_eval_loader(
            self.cfg.val_shards,
            batch_size=self.cfg.batch_size,
            crop_size=self.cfg.crop_size,
            workers=min(self.cfg.workers, 1),
            rank=rank,
            world_size=world_size,
            strict=self.cfg.strict,
        )
        self.loaders.append(loader)
        return loader
