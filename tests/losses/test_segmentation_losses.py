"""Dice, max-Dice and the Hungarian Dice + BCE variant, against values computed by hand."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from openseg_cli.losses import bce_matrix, dice_matrix, hungarian_dice_bce_loss, max_dice_loss

BIG = 100.0  # sigmoid(100) == 1.0 and sigmoid(-100) ~ 4e-44 in float32: binary predictions


def _logits(rows: list[list[int]]) -> torch.Tensor:
    """Binary proposals [N, 4] -> logits [1, N, 1, 4] (one image, a 1x4 mask)."""
    probs = torch.tensor(rows, dtype=torch.float32)
    return ((probs * 2 - 1) * BIG)[None, :, None, :].requires_grad_()


def _targets(rows: list[list[float]]) -> list[torch.Tensor]:
    return [torch.tensor(rows, dtype=torch.float32)[:, None, :]]


def test_dice_matrix_by_hand():
    preds = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    # 2*1/(2+1), 2*0/(2+2); 2*0.5/(2+1), 2*1/(2+2)
    expected = torch.tensor([[2 / 3, 0.0], [1 / 3, 0.5]])
    torch.testing.assert_close(dice_matrix(preds, targets), expected, atol=1e-6, rtol=1e-5)


# t0 = [1,1,0,0], t1 = [1,1,1,0]; p0 = t0, p1 = [0,0,0,1].
# Dice(p0,t0) = 1, Dice(p0,t1) = 2*2/(2+3) = 0.8, Dice(p1, t0) = Dice(p1, t1) = 0.
PROPOSALS = [[1, 1, 0, 0], [0, 0, 0, 1]]
TARGETS = [[1, 1, 0, 0], [1, 1, 1, 0]]


def test_max_dice_takes_the_best_proposal_for_each_target():
    loss = max_dice_loss(_logits(PROPOSALS), _targets(TARGETS))
    # both targets pick p0: mean(1 - 1, 1 - 0.8) = 0.1
    assert loss.item() == pytest.approx(0.1, abs=1e-5)


def test_max_dice_perfect_proposal_gives_zero_and_a_bad_one_does_not():
    assert max_dice_loss(_logits([[0, 0, 0, 1], [1, 1, 0, 0]]), _targets([TARGETS[0]])).item() < 1e-6
    assert max_dice_loss(_logits([[0, 0, 0, 1]]), _targets([TARGETS[0]])).item() == pytest.approx(1.0)


def test_max_dice_averages_over_all_masks_of_the_batch():
    logits = torch.cat([_logits(PROPOSALS), _logits(PROPOSALS)])  # [2, 2, 1, 4]
    targets = [_targets(TARGETS)[0], _targets([[0, 0, 0, 1]])[0]]  # losses 0, 0.2 | 0
    assert max_dice_loss(logits, targets).item() == pytest.approx(0.2 / 3, abs=1e-5)
    # an image without masks, and an empty target, contribute nothing
    empty = [_targets(TARGETS)[0], torch.zeros(1, 1, 4)]
    assert max_dice_loss(logits, empty).item() == pytest.approx(0.1, abs=1e-5)


def test_no_masks_gives_a_zero_that_backpropagates():
    logits = _logits(PROPOSALS)
    for loss_fn in (max_dice_loss, hungarian_dice_bce_loss):
        loss = loss_fn(logits, [torch.zeros(0, 1, 4)])
        assert loss.item() == 0.0 and loss.grad_fn is not None
        loss.backward()


def test_resolution_mismatch_is_an_error():
    with pytest.raises(ValueError, match="mask resolution"):
        max_dice_loss(_logits(PROPOSALS), [torch.ones(1, 2, 2)])


def test_hungarian_matches_one_to_one_where_max_dice_reuses_a_proposal():
    loss = hungarian_dice_bce_loss(_logits(PROPOSALS), _targets(TARGETS), bce_weight=0.0)
    # costs: p0-t0 0, p0-t1 0.2, p1-t0 1, p1-t1 1. One-to-one: {p0-t0, p1-t1} = 1 beats 1.2
    # -> mean(0, 1) = 0.5, while max-Dice gave 0.1 by using p0 twice.
    assert loss.item() == pytest.approx(0.5, abs=1e-5)


def test_bce_matrix_matches_the_pairwise_reference():
    torch.manual_seed(0)
    logits, targets = torch.randn(3, 10), torch.rand(2, 10)
    expected = torch.tensor(
        [[F.binary_cross_entropy_with_logits(x, t).item() for t in targets] for x in logits]
    )
    torch.testing.assert_close(bce_matrix(logits, targets), expected)


def test_hungarian_with_bce_equals_the_best_permutation():
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 3, 3)
    targets = [torch.rand(3, 3, 3).round()]
    flat, tgt = logits[0].flatten(1), targets[0].flatten(1)
    cost = 1 - dice_matrix(flat.sigmoid(), tgt) + 2.0 * bce_matrix(flat, tgt)  # [4, 3]
    best = min(
        sum(cost[i, j].item() for j, i in enumerate(rows)) for rows in itertools.permutations(range(4), 3)
    )
    assert hungarian_dice_bce_loss(logits, targets, bce_weight=2.0).item() == pytest.approx(
        best / 3, rel=1e-5
    )


# Image 0 has 1 target (loss 0.0: p0 matches it), image 1 has 3 targets each with loss 1 (no proposal
# overlaps them). "batch": (0 + 1 + 1 + 1) / 4 = 0.75; "image": (0 + 1) / 2 = 0.5.
def _two_images() -> tuple[torch.Tensor, list[torch.Tensor]]:
    logits = torch.cat([_logits([[1, 1, 0, 0], [0, 0, 0, 0]]), _logits([[0, 0, 0, 0], [0, 0, 0, 0]])])
    one = torch.tensor([[1.0, 1.0, 0.0, 0.0]])[:, None, :]
    three = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])[:, None, :]
    return logits, [one, three]


@pytest.mark.parametrize(("reduction", "expected"), [("batch", 0.75), ("image", 0.5)])
def test_reduction_over_masks_or_over_images(reduction, expected):
    logits, targets = _two_images()
    assert max_dice_loss(logits, targets, reduction).item() == pytest.approx(expected, abs=1e-5)
    # the Hungarian variant reduces the same way over its matched pairs: 1 in image 0, 2 in image 1
    # (2 proposals for 3 targets); compare with its own per-image means
    per_image = [hungarian_dice_bce_loss(logits[i : i + 1], [t]).item() for i, t in enumerate(targets)]
    weights = [1, 2] if reduction == "batch" else [1, 1]
    want = sum(w * v for w, v in zip(weights, per_image, strict=True)) / sum(weights)
    assert hungarian_dice_bce_loss(logits, targets, 1.0, reduction).item() == pytest.approx(want, rel=1e-5)


def test_image_reduction_skips_images_without_masks_and_rejects_unknown_names():
    logits, targets = _two_images()
    empty = torch.zeros(0, 1, 4)
    assert max_dice_loss(logits, [targets[0], empty], "image").item() == pytest.approx(0.0, abs=1e-6)
    assert max_dice_loss(logits, [empty, empty], "image").requires_grad
    with pytest.raises(ValueError, match="reduction"):
        max_dice_loss(logits, targets, "pixel")
