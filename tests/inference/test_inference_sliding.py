"""Whole-image and sliding-window labelling at the original resolution, with oracle and fake scorers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from openseg_cli.data.transforms import CLIP_MEAN, CLIP_STD
from openseg_cli.inference.sliding import (
    short_side_size,
    sliding_window_labels,
    whole_image_labels,
    window_offsets,
)

NUM_CLASSES = 5


def coded_image(labels: torch.Tensor) -> torch.Tensor:
    """labels long [H, W] in 0..4 → uint8 [H, W, 3] whose red channel encodes the class (40·c + 20)."""
    red = (40 * labels + 20).to(torch.uint8)
    return torch.stack([red, torch.full_like(red, 128), torch.full_like(red, 64)], dim=-1)


def oracle(stride: int = 1, calls: list | None = None):
    """A scorer that reads the class out of the red channel: its scores are the one-hot of the label
    (average-pooled by `stride`, like a model whose output is 1/stride of its input)."""

    def score_fn(images: torch.Tensor) -> torch.Tensor:
        if calls is not None:
            calls.append(images.shape[0])
        red = (images[:, 0] * CLIP_STD[0] + CLIP_MEAN[0]) * 255
        cls = ((red - 20) / 40).round().clamp(0, NUM_CLASSES - 1).long()
        onehot = F.one_hot(cls, NUM_CLASSES).permute(0, 3, 1, 2).float()
        return F.avg_pool2d(onehot, stride) if stride > 1 else onehot

    return score_fn


def blocks(height: int, width: int) -> torch.Tensor:
    """A label map of large blocks: class = (row band + column band) mod 5."""
    rows = (torch.arange(height) * 3 // height)[:, None]
    cols = (torch.arange(width) * 4 // width)[None, :]
    return (rows + cols) % NUM_CLASSES


def test_whole_image_oracle_is_exact_at_an_odd_original_size() -> None:
    target = blocks(512, 683)
    labels = whole_image_labels(oracle(), coded_image(target), size=683)  # padded to 683², cropped back
    assert labels.shape == (512, 683)
    assert torch.equal(labels, target)


@pytest.mark.parametrize("stride", [1, 4])
def test_whole_image_oracle_after_resizing_misses_only_block_edges(stride) -> None:
    target = blocks(512, 683)
    labels = whole_image_labels(oracle(stride), coded_image(target), size=640)
    assert labels.shape == (512, 683)  # compared at the original resolution
    assert (labels == target).float().mean() > 0.98


def test_sliding_oracle_is_exact_when_the_short_side_is_the_window() -> None:
    target = blocks(64, 150)
    calls: list[int] = []
    labels = sliding_window_labels(oracle(calls=calls), coded_image(target), size=64, stride=40)
    assert torch.equal(labels, target)
    assert sum(calls) == 4  # canvas 64×160: windows at x = 0, 32, 64, 96


def test_sliding_with_stride_4_scores_matches_whole_on_a_square_image() -> None:
    target = blocks(96, 96)
    image = coded_image(target)
    sliding = sliding_window_labels(oracle(4), image, size=96)
    whole = whole_image_labels(oracle(4), image, size=96)
    assert torch.equal(sliding, whole)  # one window = the whole image


def test_sliding_equals_whole_for_a_constant_scorer() -> None:
    def constant(images: torch.Tensor) -> torch.Tensor:
        scores = torch.tensor([0.1, 0.2, 0.9, 0.3])[None, :, None, None]
        return scores.expand(images.shape[0], 4, images.shape[-2] // 4, images.shape[-1] // 4)

    image = torch.randint(0, 256, (300, 437, 3), dtype=torch.uint8)
    whole = whole_image_labels(constant, image, size=128)
    sliding = sliding_window_labels(constant, image, size=128, stride=64)
    assert whole.shape == sliding.shape == (300, 437)
    assert torch.equal(whole, sliding) and bool((whole == 2).all())


def test_windows_land_where_the_offsets_say() -> None:
    """Only the first window votes for class 1: exactly its 64 columns get it, the rest class 0."""
    calls: list[int] = []

    def first_window_votes(images: torch.Tensor) -> torch.Tensor:
        scores = torch.zeros(images.shape[0], 2, *images.shape[-2:])
        scores[:, 0] = 1.0
        if not calls:
            scores[0, 1] = 3.0
        calls.append(1)
        return scores

    image = torch.zeros(64, 150, 3, dtype=torch.uint8)
    labels = sliding_window_labels(first_window_votes, image, size=64, stride=40, window_batch=1)
    assert len(calls) == 4
    assert bool((labels[:, :64] == 1).all()) and bool((labels[:, 64:] == 0).all())


def test_window_offsets_known_answers() -> None:
    assert window_offsets(640, 640, 427) == [0]
    assert window_offsets(864, 640, 427) == [0, 224]
    assert window_offsets(1344, 640, 427) == [0, 352, 704]
    assert window_offsets(160, 64, 40) == [0, 32, 64, 96]


def test_short_side_size() -> None:
    assert short_side_size(512, 683, 640) == (640, 854)
    assert short_side_size(1000, 300, 64) == (213, 64)


def test_a_scorer_whose_stride_does_not_divide_the_window_is_refused() -> None:
    def odd(images: torch.Tensor) -> torch.Tensor:
        return torch.ones(images.shape[0], 2, 7, 7)

    with pytest.raises(ValueError, match="integer stride"):
        sliding_window_labels(odd, torch.zeros(64, 64, 3, dtype=torch.uint8), size=64)
