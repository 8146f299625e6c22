"""Pure-torch OpenSeg losses: max-Dice / Hungarian segmentation, region-word grounding, the criterion."""

from openseg_cli.losses.criterion import SEGMENTATION_LOSSES, OpenSegCriterion, build_criterion
from openseg_cli.losses.grounding import grounding_loss, image_caption_scores
from openseg_cli.losses.segmentation import bce_matrix, dice_matrix, hungarian_dice_bce_loss, max_dice_loss
from openseg_cli.losses.targets import masks_from_segment_map, masks_from_segment_maps

__all__ = [
    "SEGMENTATION_LOSSES",
    "OpenSegCriterion",
    "bce_matrix",
    "build_criterion",
    "dice_matrix",
    "grounding_loss",
    "hungarian_dice_bce_loss",
    "image_caption_scores",
    "masks_from_segment_map",
    "masks_from_segment_maps",
    "max_dice_loss",
]
