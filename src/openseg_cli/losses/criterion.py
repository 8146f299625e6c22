"""The total loss L = w_S * L_S + w_G * L_G [seed: 4:1], segmentation loss chosen by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from openseg_cli.config.schema import LossConfig
from openseg_cli.errors import RecipeError
from openseg_cli.losses.grounding import grounding_loss
from openseg_cli.losses.segmentation import REDUCTIONS, hungarian_dice_bce_loss, max_dice_loss

if TYPE_CHECKING:  # type only: losses/ must not pull in open_clip through models/
    from openseg_cli.models.openseg import SegOutput

SEGMENTATION_LOSSES = ("max_dice", "hungarian")


class OpenSegCriterion(nn.Module):
    """Combines the segmentation loss (on labelled masks) and the grounding loss (on caption words).

    Args:
        segmentation: "max_dice" [paper] or "hungarian" (one-to-one Dice + BCE) [ours].
        segmentation_weight, grounding_weight: the weights (4 and 1 by default [seed]).
        hungarian_bce_weight: BCE weight inside the Hungarian cost and loss.
        segmentation_reduction: "batch" (mean over the batch's masks) or "image" (per image, then over
            images); see `losses.segmentation._reduce`.
    Raises RecipeError for an unknown segmentation loss or reduction name.
    """

    def __init__(
        self,
        segmentation: str = "max_dice",
        segmentation_weight: float = 4.0,
        grounding_weight: float = 1.0,
        hungarian_bce_weight: float = 1.0,
        segmentation_reduction: str = "batch",
    ) -> None:
        super().__init__()
        if segmentation not in SEGMENTATION_LOSSES:
            raise RecipeError(
                f"loss.segmentation '{segmentation}' is unknown; "
                f"choose one of {', '.join(SEGMENTATION_LOSSES)}"
            )
        if segmentation_reduction not in REDUCTIONS:
            raise RecipeError(
                f"loss.segmentation_reduction '{segmentation_reduction}' is unknown; "
                f"choose one of {', '.join(REDUCTIONS)}"
            )
        self.segmentation_reduction = segmentation_reduction
        self.segmentation = segmentation
        self.segmentation_weight = segmentation_weight
        self.grounding_weight = grounding_weight
        self.hungarian_bce_weight = hungarian_bce_weight

    def segmentation_loss(self, mask_logits: Tensor, targets: list[Tensor]) -> Tensor:
        if self.segmentation == "hungarian":
            return hungarian_dice_bce_loss(
                mask_logits, targets, self.hungarian_bce_weight, self.segmentation_reduction
            )
        return max_dice_loss(mask_logits, targets, self.segmentation_reduction)

    def forward(
        self,
        output: SegOutput,
        targets: list[Tensor] | None,
        word_embeds: Tensor | None,
        word_mask: Tensor | None,
        anchors: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """-> {"loss", "loss_segmentation", "loss_grounding"}, scalar tensors (unweighted parts).

        targets: list[B] of [M_b, h, w] soft masks at the mask resolution, or None (no masks: L_S = 0).
        word_embeds [B, K, D] / word_mask [B, K]: caption words, or None (no captions: L_G = 0, e.g.
        the pseudo-label teacher trained with L_S only). `anchors`: see `grounding_loss` (gathered
        negatives). A part whose weight is 0 is not computed.
        """
        zero = 0.0 * output.mask_logits.sum()
        loss_seg = zero
        if targets is not None and self.segmentation_weight:
            loss_seg = self.segmentation_loss(output.mask_logits, targets)
        loss_ground = zero
        if word_embeds is not None and word_mask is not None and self.grounding_weight:
            loss_ground = grounding_loss(
                output.region_embeds, word_embeds, word_mask, output.logit_scale, anchors=anchors
            )
        loss = self.segmentation_weight * loss_seg + self.grounding_weight * loss_ground
        return {"loss": loss, "loss_segmentation": loss_seg, "loss_grounding": loss_ground}


def build_criterion(loss_cfg: LossConfig) -> OpenSegCriterion:
    """The one place that reads `LossConfig` for the losses (negatives gathering is the engine's)."""
    return OpenSegCriterion(
        segmentation=loss_cfg.segmentation,
        segmentation_weight=loss_cfg.segmentation_weight,
        grounding_weight=loss_cfg.grounding_weight,
        hungarian_bce_weight=loss_cfg.hungarian_bce_weight,
        segmentation_reduction=loss_cfg.segmentation_reduction,
    )
