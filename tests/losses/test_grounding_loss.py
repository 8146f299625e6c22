"""Grounding loss L_G against the seed formulas, computed by hand in plain python."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from openseg_cli.losses import grounding_loss, image_caption_scores

# B = 2 images with N = 2 unit regions each, D = 2; caption 0 has K = 2 words, caption 1 has one.
REGIONS = [[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [-0.6, 0.8]]]
WORDS = [[[1.0, 0.0], [0.8, 0.6]], [[0.0, 1.0], [0.0, 0.0]]]
MASK = [[True, True], [True, False]]
SCALE = 2.0


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


def _score(regions, words, mask, scale):
    """G(I, C) = mean over the caption's words of sum_i softmax_i(scale * sim_i) * sim_i."""
    per_word = []
    for word, valid in zip(words, mask, strict=True):
        if not valid:
            continue
        sims = [_dot(z, word) for z in regions]
        exps = [math.exp(scale * s) for s in sims]
        per_word.append(sum(e / sum(exps) * s for e, s in zip(exps, sims, strict=True)))
    return sum(per_word) / len(per_word) if per_word else 0.0


def _loss(regions, words, mask, scale, anchors=None):
    """-(1/|A|) sum_b [log softmax_images(scale * G[:, b])_b + log softmax_captions(scale * G[b, :])_b]."""
    n = len(regions)
    g = [[_score(regions[i], words[c], mask[c], scale) for c in range(n)] for i in range(n)]
    has_words = [any(m) for m in mask]
    anchors = [b for b in (anchors if anchors is not None else range(n)) if has_words[b]]
    total = 0.0
    for b in anchors:
        over_images = scale * g[b][b] - math.log(sum(math.exp(scale * g[i][b]) for i in range(n)))
        captions = [c for c in range(n) if has_words[c]]
        over_captions = scale * g[b][b] - math.log(sum(math.exp(scale * g[b][c]) for c in captions))
        total += over_images + over_captions
    return -total / len(anchors)


def _tensors(regions=REGIONS, words=WORDS, mask=MASK):
    return torch.tensor(regions), torch.tensor(words), torch.tensor(mask)


def test_scores_match_the_hand_computation():
    scores = image_caption_scores(*_tensors(), torch.tensor(SCALE))
    # image 0, caption 1 ("[0, 1]"): sims [0, 1], softmax(2 * sims) = [1, e^2] / (1 + e^2) -> e^2 / (1 + e^2)
    assert scores[0, 1].item() == pytest.approx(math.exp(2) / (1 + math.exp(2)), abs=1e-6)
    assert scores[0, 1].item() == pytest.approx(0.880797, abs=1e-6)
    # image 1, caption 1: both regions have sim 0.8 -> 0.8
    assert scores[1, 1].item() == pytest.approx(0.8, abs=1e-6)
    expected = [[_score(REGIONS[i], WORDS[c], MASK[c], SCALE) for c in range(2)] for i in range(2)]
    torch.testing.assert_close(scores, torch.tensor(expected))


def test_loss_matches_the_hand_computation():
    loss = grounding_loss(*_tensors(), torch.tensor(SCALE))
    assert loss.item() == pytest.approx(_loss(REGIONS, WORDS, MASK, SCALE), abs=1e-5)


def test_matched_pairs_score_lower_than_shuffled_ones():
    torch.manual_seed(0)
    regions = F.normalize(torch.randn(4, 3, 8), dim=-1)
    words = regions[:, :2].clone()  # each caption names two regions of its own image
    mask = torch.ones(4, 2, dtype=torch.bool)
    matched = grounding_loss(regions, words, mask, torch.tensor(10.0))
    shuffled = grounding_loss(regions, words[[1, 2, 3, 0]], mask, torch.tensor(10.0))
    assert matched.item() < shuffled.item()


def test_captions_without_words_are_skipped():
    regions = REGIONS + [[[0.0, -1.0], [1.0, 0.0]]]
    words = WORDS + [[[0.3, 0.4], [5.0, 5.0]]]  # padding garbage: must not matter
    mask = MASK + [[False, False]]
    loss = grounding_loss(*_tensors(regions, words, mask), torch.tensor(SCALE))
    assert loss.item() == pytest.approx(_loss(regions, words, mask, SCALE), abs=1e-5)
    words[2] = [[-1.0, 0.0], [0.0, 0.0]]
    assert grounding_loss(*_tensors(regions, words, mask), torch.tensor(SCALE)).item() == pytest.approx(
        loss.item(), abs=1e-6
    )


def test_no_words_at_all_gives_a_zero_with_grad():
    regions, words, _ = _tensors()
    regions.requires_grad_()
    loss = grounding_loss(regions, words, torch.zeros(2, 2, dtype=torch.bool), torch.tensor(SCALE))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    loss.backward()


def test_anchors_restrict_the_sum_to_local_samples():
    loss = grounding_loss(*_tensors(), torch.tensor(SCALE), anchors=torch.tensor([1]))
    assert loss.item() == pytest.approx(_loss(REGIONS, WORDS, MASK, SCALE, anchors=[1]), abs=1e-5)


def test_gradients_reach_regions_words_and_the_scale():
    regions, words, mask = _tensors()
    regions.requires_grad_(), words.requires_grad_()
    scale = torch.tensor(SCALE, requires_grad=True)
    grounding_loss(regions, words, mask, scale).backward()
    assert regions.grad.abs().sum() > 0 and words.grad.abs().sum() > 0 and scale.grad != 0


def test_batch_mismatch_is_an_error():
    regions, words, mask = _tensors()
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        grounding_loss(regions, words[:1], mask[:1], SCALE)
