"""Scorers: one interface from pixels to class scores for a trained OpenSeg model and for zero-shot CLIP
(MaskCLIP dense features), so `evaluate` (shards and benchmarks) and `predict` score a batch the same
way whatever was loaded (`engine.scorers.load_scorer` builds one).

The work is split in two, so that one forward pass can be scored against several vocabularies (grounding
mIoU scores each image against only its own ground-truth classes):
- `forward(images, segment_maps=None, num_segments=None) -> features`: images float [B, 3, S, S]
  CLIP-normalised on the scorer's device; the features are opaque to the caller;
- `scores(features, class_embeds, class_valid, image=None) -> [B, C, h, w]` (≥ 0, float32):
  class_embeds [C, S_syn, D] and class_valid [C, S_syn] from `engine.text_cache.class_embeddings` with
  the scorer's `text_encoder`; `image=b` scores only image b → [1, C, h, w];
- `__call__(images, class_embeds, class_valid)`: both at once, an `inference.sliding.ScoreFn` once the
  vocabulary is bound.
Also `needs_segments` (the `gt` mask source pools the ground-truth segments: segment_maps [B, S, S],
0 = void, and num_segments [B] must be passed to `forward`), `check_size(S)` (UsageError for an input
side the visual tower cannot take) and `mask_source`.
h, w = S / 4 for OpenSeg, S / stride (16 or 32) for zero-shot CLIP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from openseg_cli.errors import UsageError
from openseg_cli.inference.scoring import pixel_scores
from openseg_cli.inference.segmenter import MASK_SOURCES, scores_from_output, select_image
from openseg_cli.inference.zero_shot import ZeroShotSegmenter

BACKBONE_STRIDE = 32  # OpenSeg's backbone: inputs must be multiples of its coarsest stride (C5)


class Scorer:
    """The interface (module doc); `__call__` = `scores(forward(images))`."""

    mask_source: str
    text_encoder: Any

    @property
    def needs_segments(self) -> bool:
        return self.mask_source == "gt"

    def forward(self, images: Tensor, segment_maps: Tensor | None = None, num_segments=None) -> Any:
        raise NotImplementedError

    def scores(self, features: Any, class_embeds: Tensor, class_valid: Tensor, image: int | None = None):
        raise NotImplementedError

    def __call__(self, images: Tensor, class_embeds: Tensor, class_valid: Tensor) -> Tensor:
        return self.scores(self.forward(images), class_embeds, class_valid)


@dataclass(frozen=True)
class _OpenSegFeatures:
    output: Any  # models.openseg.SegOutput of the batch
    segment_maps: Tensor | None  # [B, S, S] for the `gt` mask source
    num_segments: list[int] | None


class OpenSegScorer(Scorer):
    """A trained OpenSeg model with one mask source (`inference.segmenter`: pred | pixel | gt) and the
    recipe's inference rule (`inference.rule`: sum | max over the proposals, `scoring.semantic_scores`).

    Raises ValueError for an unknown mask source (the engines check it first with a UsageError).
    """

    def __init__(self, model, text_encoder, mask_source: str = "pred", rule: str = "sum") -> None:
        if mask_source not in MASK_SOURCES:
            raise ValueError(f"unknown mask source {mask_source!r} ({' | '.join(MASK_SOURCES)})")
        self.model, self.text_encoder, self.mask_source, self.rule = model, text_encoder, mask_source, rule

    def check_size(self, size: int) -> None:
        """UsageError unless the input side `size` is a multiple of the backbone's stride 32."""
        if size <= 0 or size % BACKBONE_STRIDE:
            raise UsageError(f"--size {size} must be a multiple of {BACKBONE_STRIDE} (the backbone stride)")

    def forward(
        self, images: Tensor, segment_maps: Tensor | None = None, num_segments=None
    ) -> _OpenSegFeatures:
        """One model forward; ValueError when the `gt` mask source is not given the segments."""
        if self.needs_segments and (segment_maps is None or num_segments is None):
            raise ValueError("mask source 'gt' needs segment_maps and num_segments")
        output = self.model(images, return_embed_features=self.needs_segments)
        return _OpenSegFeatures(output, segment_maps, None if num_segments is None else list(num_segments))

    def scores(
        self, features: _OpenSegFeatures, class_embeds: Tensor, class_valid: Tensor, image: int | None = None
    ) -> Tensor:
        """[B, C, H/4, W/4] (or [1, C, H/4, W/4] for `image`), `segmenter.scores_from_output`'s scores."""
        output, maps, counts = features.output, features.segment_maps, features.num_segments
        if image is not None:
            output = select_image(output, image)
            maps = None if maps is None else maps[image : image + 1]
            counts = None if counts is None else counts[image : image + 1]
        return scores_from_output(
            self.model, output, class_embeds, class_valid, self.mask_source, maps, counts, self.rule
        )


class ZeroShotScorer(Scorer):
    """Zero-shot CLIP (`inference.zero_shot.ZeroShotSegmenter`): every pixel's MaskCLIP dense feature
    scored against the classes, the `pixel` mask source's formula with CLIP's logit scale."""

    mask_source = "pixel"
    rule = None  # no proposals to combine

    def __init__(self, segmenter: ZeroShotSegmenter) -> None:
        self.segmenter = segmenter
        self.text_encoder = segmenter.text_encoder

    def check_size(self, size: int) -> None:
        """UsageError unless `size` is a multiple of the tower's stride (16 for ViT-B-16, 32 for RN50)."""
        self.segmenter.check_size(size)

    def forward(self, images: Tensor, segment_maps: Tensor | None = None, num_segments=None) -> Tensor:
        """L2-normalised dense features [B, D, H/stride, W/stride]; segments are not used."""
        return self.segmenter.dense_features(images)

    def scores(
        self, features: Tensor, class_embeds: Tensor, class_valid: Tensor, image: int | None = None
    ) -> Tensor:
        """[B, C, h, w] probabilities (sum 1 over classes), or [1, C, h, w] for `image`."""
        if image is not None:
            features = features[image : image + 1]
        return pixel_scores(features, class_embeds, class_valid, self.segmenter.logit_scale)
