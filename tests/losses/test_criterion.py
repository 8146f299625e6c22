"""OpenSegCriterion: weighting, dispatch by name, missing parts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from openseg_cli.config.schema import LossConfig
from openseg_cli.errors import RecipeError
from openseg_cli.losses import (
    OpenSegCriterion,
    build_criterion,
    grounding_loss,
    hungarian_dice_bce_loss,
    max_dice_loss,
)
from openseg_cli.models import SegOutput


@pytest.fixture
def batch():
    torch.manual_seed(0)
    output = SegOutput(
        mask_logits=torch.randn(2, 3, 4, 4, requires_grad=True),
        region_embeds=F.normalize(torch.randn(2, 3, 8), dim=-1),
        pixel_embeds=F.normalize(torch.randn(2, 8, 4, 4), dim=1),
        logit_scale=torch.tensor(1 / 0.07),
    )
    targets = [torch.rand(2, 4, 4).round(), torch.rand(1, 4, 4).round()]
    words = F.normalize(torch.randn(2, 2, 8), dim=-1)
    mask = torch.tensor([[True, True], [True, False]])
    return output, targets, words, mask


def test_default_weights_are_four_to_one(batch):
    output, targets, words, mask = batch
    criterion = build_criterion(LossConfig())
    losses = criterion(output, targets, words, mask)
    seg = max_dice_loss(output.mask_logits, targets)
    ground = grounding_loss(output.region_embeds, words, mask, output.logit_scale)
    torch.testing.assert_close(losses["loss_segmentation"], seg)
    torch.testing.assert_close(losses["loss_grounding"], ground)
    torch.testing.assert_close(losses["loss"], 4 * seg + ground)


def test_hungarian_is_dispatched_by_name(batch):
    output, targets, words, mask = batch
    criterion = build_criterion(LossConfig(segmentation="hungarian", hungarian_bce_weight=0.5))
    losses = criterion(output, targets, words, mask)
    expected = hungarian_dice_bce_loss(output.mask_logits, targets, 0.5)
    torch.testing.assert_close(losses["loss_segmentation"], expected)


def test_missing_parts_are_zero_and_still_backpropagate(batch):
    output, targets, _, _ = batch
    losses = OpenSegCriterion(grounding_weight=1.0)(output, targets, None, None)
    assert losses["loss_grounding"].item() == 0.0
    losses = OpenSegCriterion()(output, None, None, None)
    assert losses["loss"].item() == 0.0
    losses["loss"].backward()


def test_unknown_segmentation_loss_is_a_recipe_error():
    with pytest.raises(RecipeError, match="max_dice, hungarian"):
        OpenSegCriterion(segmentation="focal")
