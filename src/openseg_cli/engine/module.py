"""`OpenSegModule`: the LightningModule that trains and validates an OpenSeg model.

Training: masks from the segment maps (L_S) and words of the captions (L_G), weighted by the criterion.
Validation: mIoU on the held-out split with the split's own class names as vocabulary, through the same
`segment_scores` path as `evaluate` (the checkpoint picked as "best" never sees a benchmark set).
"""

from __future__ import annotations

import lightning as L
import torch

from openseg_cli.config import Recipe, recipe_to_dict
from openseg_cli.engine.checkpoint import CHECKPOINT_FORMAT
from openseg_cli.engine.schedule import lr_factor
from openseg_cli.eval.metrics import SegmentationMetrics, metrics_from_confusion
from openseg_cli.inference.scoring import label_map
from openseg_cli.inference.segmenter import segment_scores
from openseg_cli.losses import masks_from_segment_map


class OpenSegModule(L.LightningModule):
    """Wraps model + text encoder (frozen unless the recipe says otherwise) + criterion; `val_classes` is the
    held-out split's vocabulary.

    The recipe is stored in the checkpoint's hyper-parameters, so every checkpoint is self-describing.
    """

    def __init__(self, model, text_encoder, criterion, recipe: Recipe, val_classes=None) -> None:
        super().__init__()
        self.model = model
        self.text_encoder = text_encoder
        self.criterion = criterion
        self.recipe = recipe
        self.val_classes: list[list[str]] = list(val_classes or [])
        self.save_hyperparameters({"recipe": recipe_to_dict(recipe), "openseg_format": CHECKPOINT_FORMAT})
        self._val_metrics: SegmentationMetrics | None = None
        self._val_class_embeds: tuple[torch.Tensor, torch.Tensor] | None = None

    # ---- training -------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        images = batch["images"]
        output = self.model(images)
        targets = self._mask_targets(batch, output.mask_logits.shape[-2:])
        logit_scale = output.logit_scale
        if self.recipe.loss.grounding_weight > 0:
            word_embeds, word_mask = self._embed_words(batch["words"])
            anchors = None
            if self.recipe.loss.grounding_negatives == "all_gather" and self.trainer.world_size > 1:
                output, word_embeds, word_mask, anchors = self._gather_for_grounding(
                    output, word_embeds, word_mask
                )
            losses = self.criterion(output, targets, word_embeds, word_mask, anchors=anchors)
            self.log("train/words_per_image", word_mask.float().sum(1).mean(), batch_size=images.shape[0])
        else:  # the teacher: segmentation loss only, no words needed
            losses = self.criterion(output, targets, None, None)
        batch_size = images.shape[0]
        self.log_dict({f"train/{k}": v.detach() for k, v in losses.items()}, batch_size=batch_size)
        self.log("train/temperature", 1.0 / logit_scale.detach(), batch_size=batch_size)
        return losses["loss"]

    def _mask_targets(self, batch: dict, size) -> list[torch.Tensor]:
        """Per image [M_b, h, w] soft targets at the mask resolution."""
        return [
            masks_from_segment_map(seg_map, int(classes.numel()), tuple(size))
            for seg_map, classes in zip(batch["segment_maps"], batch["segment_classes"], strict=True)
        ]

    def _embed_words(self, words: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Words of each caption → (embeds [B, K, D], mask [B, K]); K = data.max_words (fixed for gathers)."""
        max_words = self.recipe.data.max_words
        unique = sorted({w for caption in words for w in caption})
        dim = self.model.embed_dim
        embeds = torch.zeros(len(words), max_words, dim, device=self.device)
        mask = torch.zeros(len(words), max_words, dtype=torch.bool, device=self.device)
        if not unique:
            return embeds, mask
        table = self.text_encoder.encode(unique).to(self.device, embeds.dtype)
        index = {w: i for i, w in enumerate(unique)}
        for b, caption in enumerate(words):
            ids = [index[w] for w in caption[:max_words]]
            if ids:
                embeds[b, : len(ids)] = table[ids]
                mask[b, : len(ids)] = True
        return embeds, mask

    def _gather_for_grounding(self, output, word_embeds, word_mask):
        """All-gathered negatives: every rank's regions and words join the softmaxes; this rank's samples
        (`anchors`, their positions in the gathered batch) are the loss terms. Gradients flow back to the
        local regions through `sync_grads`. Every rank has the same per-device batch size (partial=False)."""
        from dataclasses import replace

        region = self.all_gather(output.region_embeds, sync_grads=True).flatten(0, 1)
        words = self.all_gather(word_embeds).flatten(0, 1)
        mask = self.all_gather(word_mask.to(torch.uint8)).flatten(0, 1).bool()  # gloo gathers no bools
        local = output.region_embeds.shape[0]
        anchors = torch.arange(local, device=self.device) + self.global_rank * local
        return replace(output, region_embeds=region), words, mask, anchors

    # ---- validation -----------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_metrics = SegmentationMetrics(num_classes=len(self.val_classes))
        embeds, valid = self.text_encoder.encode_classes(self.val_classes, None)
        self._val_class_embeds = (embeds.to(self.device), valid.to(self.device))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if not self.val_classes:
            return
        embeds, valid = self._val_class_embeds
        scores = segment_scores(self.model, batch["images"], embeds, valid, rule=self.recipe.inference.rule)
        labels = label_map(scores, out_size=tuple(batch["semantic"].shape[-2:]))
        self._val_metrics.update(labels.cpu(), batch["semantic"].cpu())

    def on_validation_epoch_end(self) -> None:
        if self._val_metrics is None or not self.val_classes:
            return
        confusion = self._val_metrics.confusion.to(self.device)
        confusion = self.trainer.strategy.reduce(confusion, reduce_op="sum")
        result = metrics_from_confusion(confusion.cpu())
        # The confusion is already summed over ranks, so every rank logs the same value (no sync needed).
        self.log("val/miou", float(result["miou"]))
        self.log("val/pixel_accuracy", float(result["pixel_accuracy"]))

    # ---- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self):
        optim = self.recipe.optim
        backbone = {id(p) for p in self.model.backbone.parameters()}
        # The text tower joins only when the recipe unfreezes it (model.freeze_text: false).
        trainable = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        groups = [
            {
                "params": [p for _, p in trainable if id(p) in backbone],
                "lr": optim.lr * optim.backbone_lr_mult,
            },
            {"params": [p for _, p in trainable if id(p) not in backbone], "lr": optim.lr},
        ]
        groups = [g for g in groups if g["params"]]
        if optim.optimizer == "sgd":
            opt = torch.optim.SGD(
                groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
            )
        elif optim.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {optim.optimizer!r} (sgd | adamw)")
        max_steps = self.recipe.trainer.max_steps

        def factor(step: int) -> float:
            return lr_factor(step, max_steps, optim.warmup_steps, optim.schedule)

        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
