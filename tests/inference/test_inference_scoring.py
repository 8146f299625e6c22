"""Known-answer tests for the OpenSeg inference formula (METHOD §5) and label maps."""

from __future__ import annotations

import math

import pytest
import torch

from openseg_cli.inference.scoring import (
    class_logits,
    label_map,
    normalized_scores,
    pixel_scores,
    resize_scores,
    semantic_scores,
)


def _softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


def _tiny_case():
    """B=1, N=2, C=2, S=2, D=2; class 1's second synonym is padding (invalid)."""
    regions = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # z1, z2
    classes = torch.tensor([[[0.6, 0.8], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]])
    valid = torch.tensor([[True, True], [True, False]])
    masks = torch.tensor([[[[1.0, 0.5], [0.0, 0.25]], [[0.0, 0.5], [1.0, 0.75]]]])  # [1, 2, 2, 2]
    return regions, classes, valid, masks


def test_class_logits_and_semantic_scores_by_hand():
    regions, classes, valid, masks = _tiny_case()
    logits = class_logits(regions, classes, valid, logit_scale=2.0)
    # z1: class 0 = 2·max(0.6, 1.0) = 2.0; class 1 = 2·0.0 (the invalid (1, 0) synonym would give 2.0).
    # z2: class 0 = 2·max(0.8, 0.0) = 1.6; class 1 = 2·1.0 = 2.0.
    assert logits.shape == (1, 2, 2)
    assert logits[0].flatten().tolist() == pytest.approx([2.0, 0.0, 1.6, 2.0])

    scores = semantic_scores(masks, logits)
    p1, p2 = _softmax([2.0, 0.0]), _softmax([1.6, 2.0])
    s1 = [[1.0, 0.5], [0.0, 0.25]]
    s2 = [[0.0, 0.5], [1.0, 0.75]]
    expected = [[[s1[y][x] * p1[c] + s2[y][x] * p2[c] for x in range(2)] for y in range(2)] for c in range(2)]
    assert scores.shape == (1, 2, 2, 2)
    for c in range(2):
        for y in range(2):
            assert scores[0, c, y].tolist() == pytest.approx(expected[c][y], abs=1e-6)
    # Σ_c S = Σ_i s_i, so normalising gives the mask-weighted mean of region probabilities.
    probs = normalized_scores(scores)
    assert probs[0, :, 1, 1].tolist() == pytest.approx(
        [(0.25 * p1[c] + 0.75 * p2[c]) / 1.0 for c in range(2)], abs=1e-6
    )


def test_max_rule_takes_the_best_mask_times_class_confidence_by_hand():
    regions, classes, valid, masks = _tiny_case()
    logits = class_logits(regions, classes, valid, logit_scale=2.0)
    p1, p2 = _softmax([2.0, 0.0]), _softmax([1.6, 2.0])
    s1 = [[1.0, 0.5], [0.0, 0.25]]
    s2 = [[0.0, 0.5], [1.0, 0.75]]
    p = (p1, p2)
    expected = [
        [[max(s1[y][x] * p[0][c], s2[y][x] * p[1][c]) for x in range(2)] for y in range(2)] for c in range(2)
    ]
    for max_elements in (1, 1 << 20):  # one class per chunk, and all at once
        scores = semantic_scores(masks, logits, "max", max_elements=max_elements)
        assert scores.shape == (1, 2, 2, 2)
        for c in range(2):
            for y in range(2):
                assert scores[0, c, y].tolist() == pytest.approx(expected[c][y], abs=1e-6)
    # pixel (0, 1): both masks 0.5; z1 is surer of class 0 (p1[0] ≈ 0.88) than z2 of class 1 (≈ 0.60),
    # so "max" labels it class 0 where "sum" weighs both proposals
    assert semantic_scores(masks, logits, "max")[0, :, 0, 1].argmax().item() == 0
    with pytest.raises(ValueError, match="rule"):
        semantic_scores(masks, logits, "vote")


def test_the_max_over_synonyms_decides():
    region = torch.tensor([[[1.0, 0.0]]])
    # Class 0's *second* synonym matches exactly; its first and its mean (0.5) lose to class 1's 0.6.
    classes = torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[0.6, 0.8], [0.0, 0.0]]])
    valid = torch.tensor([[True, True], [True, False]])
    logits = class_logits(region, classes, valid, logit_scale=1.0)
    assert logits[0, 0].tolist() == pytest.approx([1.0, 0.6])
    assert int(logits[0, 0].argmax()) == 0


def test_class_chunks_change_nothing():
    generator = torch.Generator().manual_seed(0)
    regions = torch.nn.functional.normalize(torch.randn(2, 5, 8, generator=generator), dim=-1)
    classes = torch.nn.functional.normalize(torch.randn(7, 3, 8, generator=generator), dim=-1)
    valid = torch.rand(7, 3, generator=generator) > 0.4
    valid[:, 0] = True
    whole = class_logits(regions, classes, valid, 10.0)
    chunked = class_logits(regions, classes, valid, 10.0, max_elements=1)  # one class per chunk
    torch.testing.assert_close(whole, chunked)


def test_class_without_valid_synonym_is_refused():
    regions, classes, valid, _ = _tiny_case()
    valid[1] = False
    with pytest.raises(ValueError, match="no valid synonym"):
        class_logits(regions, classes, valid, 1.0)


def test_pixel_scores_are_per_pixel_softmax_of_max_synonym_similarity():
    _, classes, valid, _ = _tiny_case()
    pixels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]).T.reshape(1, 2, 1, 3)  # [B, D, h, w]
    probs = pixel_scores(pixels, classes, valid, logit_scale=2.0, max_elements=1)
    assert probs.shape == (1, 2, 1, 3)
    # pixel (0.6, 0.8): class 0 = max(0.6·0.6 + 0.8·0.8, 0.6) = 1.0; class 1 = 0.8.
    expected = [_softmax([2.0, 0.0]), _softmax([1.6, 2.0]), _softmax([2.0, 1.6])]
    for x in range(3):
        assert probs[0, :, 0, x].tolist() == pytest.approx(expected[x], abs=1e-6)


def test_label_map_crops_padding_and_resizes_to_the_image():
    scores = torch.zeros(1, 2, 2, 4)
    scores[:, 0, :, :2] = 1.0  # class 0 on the left half of the canvas
    scores[:, 1, :, 2:] = 1.0  # class 1 on the right half
    # Canvas 8×16; the image occupies the top-left 8×8 (the rest is padding), original size 4×4.
    labels = label_map(scores, out_size=(8, 16), valid_size=(8, 8), image_size=(4, 4))
    assert labels.shape == (1, 4, 4) and labels.dtype == torch.long
    assert labels.unique().tolist() == [0]  # no padding class leaks in
    # Crop 8×12: canvas columns 0-7 are class 0, 8-11 class 1 (bilinear boundary at x = 8).
    labels = label_map(scores, out_size=(8, 16), valid_size=(8, 12))
    assert labels.shape == (1, 8, 12)
    assert labels[0, 0].tolist() == [0] * 8 + [1] * 4


def test_unknown_threshold_uses_normalised_scores():
    # Pixel A: raw best 1.0 but probability 1.0 / 2.0 = 0.5; pixel B: raw best 0.45 but probability 0.9.
    # Pixel C: no mask covers it (all zero) → probability 0 → unknown.
    scores = torch.tensor([[1.0, 0.45, 0.0], [0.6, 0.025, 0.0], [0.4, 0.025, 0.0]]).reshape(1, 3, 1, 3)
    labels = label_map(scores, out_size=(1, 3), unknown_threshold=0.6)
    assert labels[0, 0].tolist() == [-1, 0, -1]
    assert label_map(scores, out_size=(1, 3), unknown_threshold=0.45)[0, 0].tolist() == [0, 0, -1]
    assert label_map(scores, out_size=(1, 3))[0, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="unknown_threshold"):
        label_map(scores, out_size=(1, 3), unknown_threshold=1.5)


def test_label_map_chunks_match_a_single_argmax():
    generator = torch.Generator().manual_seed(1)
    scores = torch.rand(2, 11, 5, 6, generator=generator)
    whole = torch.nn.functional.interpolate(scores, size=(20, 24), mode="bilinear", align_corners=False)
    whole = whole[..., :18, :21]
    expected = whole.argmax(dim=1)
    chunked = label_map(scores, out_size=(20, 24), valid_size=(18, 21), max_elements=2 * 20 * 24 * 3)
    # Resizing a chunk may round differently from resizing all classes (1 ulp, SIMD layout), so where the
    # labels differ the two classes' scores must be equal within float32 rounding.
    differ = chunked != expected
    assert int(differ.sum()) <= 3
    gap = whole.gather(1, expected[:, None]) - whole.gather(1, chunked[:, None])
    assert float(gap.abs().max()) < 1e-6
    probs = normalized_scores(whole)
    got = label_map(scores, (20, 24), (18, 21), unknown_threshold=0.12, max_elements=1)
    unknown = probs.amax(dim=1) < 0.12
    assert bool(unknown.any()) and bool((~unknown).any())
    torch.testing.assert_close(got == -1, unknown)


def test_label_map_ties_go_to_the_lower_class_across_chunks():
    scores = torch.zeros(1, 6, 2, 2)
    scores[:, 4] = 1.0
    scores[:, 1] = 1.0  # same score as class 4, in another chunk when chunks hold 2 classes
    for max_elements in (1, 2 * 4, 10**6):
        assert label_map(scores, out_size=(2, 2), max_elements=max_elements).unique().tolist() == [1]


def _reference_labels(scores, out_size, valid_size, image_size, threshold):
    """The straightforward way: every class resized at once (NCHW), one argmax, one normalisation."""
    whole = resize_scores(scores, out_size, valid_size, image_size)
    labels = whole.argmax(dim=1)
    if threshold is not None:
        labels = labels.masked_fill(normalized_scores(whole).amax(dim=1) < threshold, -1)
    return whole, labels


@pytest.mark.parametrize(
    ("shape", "out_size", "valid_size", "image_size"),
    [
        ((1, 37, 7, 9), (28, 36), (21, 36), (23, 37)),  # fit + pad + resize back, odd sizes
        ((2, 13, 5, 3), (20, 12), (19, 11), None),  # batch of 2, crop only
        ((1, 5, 4, 4), (9, 13), None, None),  # non-integer scale, no crop
    ],
)
@pytest.mark.parametrize("max_elements", [1, 3 * 28 * 36 * 2, 10**9])  # 1 class, a few, all classes
@pytest.mark.parametrize("threshold_times_uniform", [None, 2.5])  # threshold 2.5 / C
def test_label_map_equals_one_full_resize_and_argmax(
    shape, out_size, valid_size, image_size, max_elements, threshold_times_uniform
):
    generator = torch.Generator().manual_seed(sum(shape) + max_elements % 97)
    scores = torch.rand(*shape, generator=generator) ** 3  # skewed: some pixels confident, some not
    threshold = threshold_times_uniform and threshold_times_uniform / shape[1]
    whole, expected = _reference_labels(scores, out_size, valid_size, image_size, threshold)
    got = label_map(scores, out_size, valid_size, threshold, image_size, max_elements=max_elements)
    assert got.shape == expected.shape and got.dtype == torch.long
    # The chunks are resized channels_last, which may round 1 ulp differently from the NCHW reference:
    # a label may differ only where two classes tie within float32 rounding (or the confidence sits on
    # the threshold within rounding).
    differ = (got != expected).nonzero().tolist()
    assert len(differ) <= max(2, expected.numel() // 500)
    probs = normalized_scores(whole)
    for b, y, x in differ:
        chosen, best = int(got[b, y, x]), int(expected[b, y, x])
        if chosen >= 0 and best >= 0:
            assert float(whole[b, best, y, x] - whole[b, chosen, y, x]) < 1e-6
        else:
            assert abs(float(probs[b, :, y, x].max()) - threshold) < 1e-6
    if threshold is not None:
        assert bool((got == -1).any()) and bool((got >= 0).any())  # the threshold bites, but not everywhere


def test_label_map_on_many_classes_matches_the_reference_and_leaves_scores_alone():
    generator = torch.Generator().manual_seed(5)
    scores = torch.rand(1, 300, 10, 10, generator=generator)
    before = scores.clone()
    whole, expected = _reference_labels(scores, (40, 40), (30, 40), (31, 41), None)
    got = label_map(scores, (40, 40), (30, 40), image_size=(31, 41), max_elements=40 * 40 * 16)
    differ = got != expected
    gap = whole.gather(1, expected[:, None]) - whole.gather(1, got[:, None])
    assert int(differ.sum()) <= 3 and float(gap.max()) < 1e-6
    assert torch.equal(scores, before) and scores.is_contiguous()  # the caller's tensor is not converted
