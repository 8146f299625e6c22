"""From images to per-class pixel scores with a trained model: the one path shared by validation during
training, `evaluate`, `predict` and `pseudo-label`.

Mask sources (the Table 4 ablation, METHOD §5):
- `pred`: the model's N mask proposals, each classified by its region embedding (default);
- `pixel`: no proposals, every pixel's own F_z embedding against the class embeddings;
- `gt`: the ground-truth segments pooled into region embeddings (an upper bound; needs segment maps).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from openseg_cli.inference.scoring import class_logits, pixel_scores, semantic_scores
from openseg_cli.losses import masks_from_segment_map

MASK_SOURCES = ("pred", "pixel", "gt")


def segment_scores(
    model,
    images: Tensor,
    class_embeds: Tensor,
    class_valid: Tensor,
    mask_source: str = "pred",
    segment_maps: Tensor | None = None,
    num_segments: list[int] | None = None,
    rule: str = "sum",
) -> Tensor:
    """images [B, 3, H, W] → class scores [B, C, H/4, W/4] (≥ 0; see `scoring` for the formula and the
    inference `rule`, "sum" or "max").

    class_embeds [C, S, D] and class_valid [C, S] come from `TextEncoder.encode_classes`. For
    `mask_source="gt"`, segment_maps [B, H, W] (0 = void, 1..M_b segments) and num_segments [B] are needed.
    Raises ValueError for an unknown mask source or missing ground truth.
    """
    if mask_source not in MASK_SOURCES:
        raise ValueError(f"unknown mask source {mask_source!r} ({' | '.join(MASK_SOURCES)})")
    output = model(images, return_embed_features=mask_source == "gt")
    return scores_from_output(
        model, output, class_embeds, class_valid, mask_source, segment_maps, num_segments, rule
    )


def scores_from_output(
    model,
    output,
    class_embeds: Tensor,
    class_valid: Tensor,
    mask_source: str = "pred",
    segment_maps: Tensor | None = None,
    num_segments: list[int] | None = None,
    rule: str = "sum",
) -> Tensor:
    """`segment_scores` after the forward pass: score one model output against any vocabulary, so a
    per-image vocabulary (grounding mIoU) needs no second forward. `output` must carry `embed_features`
    for `mask_source="gt"`."""
    if mask_source == "pixel":
        return pixel_scores(output.pixel_embeds, class_embeds, class_valid, output.logit_scale)
    if mask_source == "pred":
        logits = class_logits(output.region_embeds, class_embeds, class_valid, output.logit_scale)
        return semantic_scores(output.mask_logits.sigmoid(), logits, rule)
    if segment_maps is None or num_segments is None:
        raise ValueError("mask source 'gt' needs segment_maps and num_segments")
    size = tuple(output.mask_logits.shape[-2:])
    scores = []
    for b, count in enumerate(num_segments):
        masks = masks_from_segment_map(segment_maps[b], int(count), size).unsqueeze(0)  # [1, M, h, w]
        if count == 0:
            scores.append(torch.zeros(1, class_embeds.shape[0], *size, device=output.mask_logits.device))
            continue
        region = model.embed_masks(None, masks, embed_features=output.embed_features[b : b + 1])
        logits = class_logits(region, class_embeds, class_valid, output.logit_scale)
        scores.append(semantic_scores(masks, logits, rule))
    return torch.cat(scores)


def select_image(output, index: int):
    """The `index`-th image of a batched model output, as a batch of one (the scale is shared)."""

    def take(t):
        return None if t is None else t[index : index + 1]

    return replace(
        output,
        mask_logits=take(output.mask_logits),
        region_embeds=take(output.region_embeds),
        pixel_embeds=take(output.pixel_embeds),
        embed_features=take(output.embed_features),
    )
