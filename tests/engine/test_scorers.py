"""`engine.scorers.load_scorer` and the two `inference.scorers`: the same scores as the functions they
replace, one image of a batch scored alone equals its row of the batch (grounding reuses one forward),
mask sources checked up front, and the meta recorded for each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from openseg_cli.engine.checkpoint import load_model
from openseg_cli.engine.scorers import checked_mask_source, checked_rule, load_scorer, scorer_meta
from openseg_cli.errors import PretrainedWeightsError, UsageError
from openseg_cli.inference.scorers import OpenSegScorer, ZeroShotScorer
from openseg_cli.inference.segmenter import segment_scores
from openseg_cli.inference.zero_shot import ZERO_SHOT_SIZE, ZeroShotSegmenter, load_zero_shot
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint

TINY_CLIP = "openseg-tiny-vit:none"
NAMES = [["circle", "disc"], ["grass"], ["water", "sea"]]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("scorers") / "model.pt"
    write_tiny_checkpoint(path, tiny_recipe("data.crop_size=64"))
    return path


def _vocabulary(text_encoder):
    with torch.inference_mode():
        return text_encoder.encode_classes(NAMES, None)


def _segments(batch: int, size: int):
    """Two segments per image: left and right halves (ids 1, 2), void top row."""
    maps = torch.ones(batch, size, size, dtype=torch.long)
    maps[..., size // 2 :] = 2
    maps[:, 0] = 0
    return maps, [2] * batch


@pytest.mark.parametrize("mask_source", ["pred", "pixel", "gt"])
def test_openseg_scorer_equals_segment_scores_and_scores_one_image_alone(checkpoint, mask_source) -> None:
    loaded = load_scorer(checkpoint, None, mask_source, "cpu")
    assert isinstance(loaded.scorer, OpenSegScorer) and loaded.size == 64
    model, text_encoder, _ = load_model(checkpoint)
    embeds, valid = _vocabulary(text_encoder)
    images = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    maps, counts = _segments(3, 64) if mask_source == "gt" else (None, None)
    with torch.inference_mode():
        expected = segment_scores(model, images, embeds, valid, mask_source, maps, counts)
        features = loaded.scorer.forward(images, maps, counts)
        scores = loaded.scorer.scores(features, embeds, valid)
        alone = loaded.scorer.scores(features, embeds[[2, 0]], valid[[2, 0]], image=1)
    assert scores.shape == (3, 3, 16, 16)
    torch.testing.assert_close(scores, expected)
    if mask_source != "gt":
        with torch.inference_mode():
            torch.testing.assert_close(loaded.scorer(images, embeds, valid), expected)
    # Image 1 against two classes (reordered): the rows of a full-vocabulary softmax differ, so compare
    # with a fresh two-class scoring of that image alone.
    with torch.inference_mode():
        image_maps = None if maps is None else maps[1:2]
        image_counts = None if counts is None else counts[1:2]
        reference = segment_scores(
            model, images[1:2], embeds[[2, 0]], valid[[2, 0]], mask_source, image_maps, image_counts
        )
    torch.testing.assert_close(alone, reference)


def test_zero_shot_scorer_equals_the_segmenter() -> None:
    loaded = load_scorer(None, TINY_CLIP, None, "cpu")
    assert isinstance(loaded.scorer, ZeroShotScorer) and loaded.size == ZERO_SHOT_SIZE
    assert loaded.scorer.mask_source == "pixel" and not loaded.scorer.needs_segments
    segmenter: ZeroShotSegmenter = loaded.scorer.segmenter
    embeds, valid = _vocabulary(loaded.scorer.text_encoder)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = segmenter.scores(images, embeds, valid)
        scores = loaded.scorer(images, embeds, valid)
        alone = loaded.scorer.scores(loaded.scorer.forward(images), embeds[:2], valid[:2], image=1)
        reference = segmenter.scores(images[1:2], embeds[:2], valid[:2])
    assert scores.shape == (2, 3, 4, 4)  # stride 16
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(alone, reference)
    loaded.scorer.check_size(64)
    with pytest.raises(UsageError, match="multiple of 16"):
        loaded.scorer.check_size(72)


def test_openseg_sizes_are_checked_before_the_forward(checkpoint) -> None:
    scorer = load_scorer(checkpoint, None, None, "cpu").scorer
    scorer.check_size(96)
    with pytest.raises(UsageError, match="--size 100 must be a multiple of 32"):
        scorer.check_size(100)
    with pytest.raises(ValueError, match="needs segment_maps"):
        OpenSegScorer(scorer.model, scorer.text_encoder, "gt").forward(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize(
    ("checkpoint", "clip", "mask_source", "expected"),
    [
        ("m.pt", None, None, "pred"),
        ("m.pt", None, "gt", "gt"),
        (None, "x:none", None, "pixel"),
        (None, "x:none", "pixel", "pixel"),
    ],
)
def test_mask_source_defaults(checkpoint, clip, mask_source, expected) -> None:
    assert checked_mask_source(checkpoint, clip, mask_source) == expected


@pytest.mark.parametrize(
    ("checkpoint", "clip", "mask_source", "message"),
    [
        (None, None, None, "exactly one"),
        ("m.pt", "x:none", None, "exactly one"),
        ("m.pt", None, "proposals", "unknown mask source 'proposals'"),
        (None, "x:none", "pred", "--mask-source pred needs an openseg checkpoint"),
        (None, "x:none", "gt", "--mask-source gt needs an openseg checkpoint"),
    ],
)
def test_mask_sources_that_cannot_work_are_usage_errors(checkpoint, clip, mask_source, message) -> None:
    with pytest.raises(UsageError, match=message):
        checked_mask_source(checkpoint, clip, mask_source)


def test_meta_names_the_checkpoint_or_the_clip_weights() -> None:
    assert scorer_meta(Path("m.pt"), None, None) == {
        "checkpoint": "m.pt",
        "mask_source": "pred",
        "rule": "recipe",
    }
    assert scorer_meta(Path("m.pt"), None, None, "max")["rule"] == "max"
    assert scorer_meta(None, TINY_CLIP, None) == {
        "clip": TINY_CLIP,
        "mask_source": "maskclip (zero-shot dense CLIP)",
    }


def test_rule_overrides_the_recipe_and_changes_the_scores_as_semantic_scores_does(checkpoint) -> None:
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    model, text_encoder, recipe = load_model(checkpoint)
    embeds, valid = _vocabulary(text_encoder)
    assert recipe.inference.rule == "sum" and load_scorer(checkpoint, None, None, "cpu").scorer.rule == "sum"
    scorer = load_scorer(checkpoint, None, None, "cpu", rule="max").scorer
    with torch.inference_mode():
        expected = segment_scores(model, images, embeds, valid, rule="max")
        scores = scorer.scores(scorer.forward(images), embeds, valid)
        summed = segment_scores(model, images, embeds, valid, rule="sum")
    torch.testing.assert_close(scores, expected)
    assert not torch.allclose(scores, summed)


@pytest.mark.parametrize(
    ("clip", "rule", "message"),
    [(None, "mean", "unknown rule 'mean'; choose sum | max"), ("x:none", "max", "--clip has none")],
)
def test_rules_that_cannot_work_are_usage_errors(clip, rule, message) -> None:
    with pytest.raises(UsageError, match=message):
        checked_rule(clip, rule)


def test_clip_weights_must_be_named_and_offline_tags_fail_in_one_line(monkeypatch) -> None:
    with pytest.raises(UsageError, match="MODEL:PRETRAINED"):
        load_scorer(None, "openseg-tiny-vit", None, "cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedWeightsError, match="RN50-quickgelu/openai") as err:
        load_scorer(None, "RN50-quickgelu:openai", None, "cpu")
    assert "\n" not in str(err.value)


def test_random_clip_weights_are_the_same_in_every_process_and_leave_the_rng_alone() -> None:
    """`MODEL:none` is drawn from a fixed seed: ranks of `evaluate --devices N` must score alike."""
    state = torch.random.get_rng_state()
    first, second = (load_zero_shot(TINY_CLIP) for _ in range(2))
    assert torch.equal(torch.random.get_rng_state(), state)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_the_checkpoints_inference_rule_is_followed(tmp_path) -> None:
    """A recipe with `inference.rule: max` is scored with it by evaluate and predict, as in validation."""
    path = tmp_path / "max.pt"
    write_tiny_checkpoint(path, tiny_recipe("data.crop_size=64", "inference.rule=max"))
    scorer = load_scorer(path, None, None, "cpu").scorer
    assert scorer.rule == "max"
    model, text_encoder, _ = load_model(path)
    embeds, valid = _vocabulary(text_encoder)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = segment_scores(model, images, embeds, valid, "pred", rule="max")
        torch.testing.assert_close(scorer(images, embeds, valid), expected)
        assert not torch.allclose(expected, segment_scores(model, images, embeds, valid, "pred"))
