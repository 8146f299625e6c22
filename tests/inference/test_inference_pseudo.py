"""Teacher masks → pseudo-label segments: thresholds, overlaps and renumbering on hand-made masks."""

from __future__ import annotations

import torch

from openseg_cli.inference.pseudo import PseudoLabelThresholds, select_pseudo_masks


def _probs() -> torch.Tensor:
    """Three 4x4 proposals: A (left half, p=0.9), B (top-right 2x2, p=0.7), C (everywhere, p=0.55)."""
    probs = torch.zeros(3, 4, 4)
    probs[0, :, :2] = 0.9
    probs[1, :2, 2:] = 0.7
    probs[2] = 0.55
    return probs


def test_confident_masks_win_overlaps_and_ids_follow_confidence() -> None:
    ids, segments = select_pseudo_masks(_probs(), PseudoLabelThresholds(0.5, 0.0, 128))
    # A (0.9) owns the left half; B (0.7) its 2x2 corner; C (0.55) only what is left: bottom-right 2x2
    expected = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [1, 1, 3, 3], [1, 1, 3, 3]])
    assert torch.equal(ids, expected)
    assert [s["area"] for s in segments] == [8, 4, 4]
    assert [s["bbox"] for s in segments] == [[0, 0, 2, 4], [2, 0, 2, 2], [2, 2, 2, 2]]
    assert [round(s["score"], 2) for s in segments] == [0.9, 0.7, 0.55]


def test_thresholds_drop_unconfident_small_and_surplus_masks() -> None:
    ids, segments = select_pseudo_masks(_probs(), PseudoLabelThresholds(0.6, 0.0, 128))
    assert len(segments) == 2 and int((ids == 0).sum()) == 4  # C is under 0.6: its pixels stay void
    ids, segments = select_pseudo_masks(_probs(), PseudoLabelThresholds(0.5, 0.3, 128))
    # 30% of 16 px = 4.8 px: B (4 px) is too small, so C (16 px before overlaps) takes the right half
    assert [s["area"] for s in segments] == [8, 8]
    assert torch.equal(ids[:, 2:], torch.full((4, 2), 2))
    _, segments = select_pseudo_masks(_probs(), PseudoLabelThresholds(0.5, 0.0, 1))
    assert len(segments) == 1 and segments[0]["score"] > 0.85


def test_no_proposal_above_one_half_gives_an_all_void_map() -> None:
    ids, segments = select_pseudo_masks(torch.full((2, 3, 3), 0.4), PseudoLabelThresholds())
    assert segments == [] and int(ids.abs().sum()) == 0
