"""Class scores per pixel from OpenSeg outputs (METHOD §5), and their labels at the original image size.

Shapes: B images, N regions (mask queries), C classes, S synonyms per class, D joint embedding dim,
h, w mask resolution (H/4, W/4), H, W the fit+pad input canvas.

The formula [ours; the paper gives none]:
    logit_i(c) = logit_scale · max_{s valid} ⟨z_i, w_{c,s}⟩          (`class_logits`)
    p_i(c)     = softmax_c logit_i(c)
    S(p, c)    = Σ_i s_i(p) · p_i(c)      rule "sum"                 (`semantic_scores`)
    S(p, c)    = max_i s_i(p) · p_i(c)    rule "max" (the release's: each pixel takes the class of the
                                          proposal with the highest mask × class confidence)
    label(p)   = argmax_c S(p, c)                                    (`label_map`)
Under "max" a proposal whose embedding sits between several classes has a flat p_i and so a low
confidence everywhere: it is weighted down without an extra rule.
The `pixel` mask source (Table 4, "no proposals") replaces S by softmax_c of each pixel's own embedding
against the class embeddings (`pixel_scores`).

Memory: class × pixel tensors are the large ones (847 classes at 640² are 1.4 GB in float32), so the
functions that would build a [.., C, S, ..] or a full-resolution [B, C, H, W] tensor work in class chunks
bounded by `max_elements`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from openseg_cli.config.loader import CHOICES

INFERENCE_RULES = CHOICES[("inference", "rule")]

# ~64 MB of float32 per chunk: small enough for a laptop, large enough that the loop count stays low.
DEFAULT_MAX_ELEMENTS = 1 << 24

# Normalised scores divide by the sum over classes; this keeps pixels no mask covers at probability 0.
_EPS = 1e-12


def _check_classes(class_embeds: Tensor, class_valid: Tensor, dim: int) -> None:
    if class_embeds.ndim != 3 or class_embeds.shape[-1] != dim:
        raise ValueError(f"class_embeds must be [C, S, {dim}], got {tuple(class_embeds.shape)}")
    if class_valid.shape != class_embeds.shape[:2] or class_valid.dtype != torch.bool:
        raise ValueError(
            f"class_valid must be bool {tuple(class_embeds.shape[:2])}, got {class_valid.dtype} "
            f"{tuple(class_valid.shape)}"
        )
    if class_embeds.shape[0] == 0:
        raise ValueError("no classes to score (empty vocabulary)")
    empty = (~class_valid.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        # A class with no valid synonym would get -inf everywhere and turn the softmax into NaN.
        raise ValueError(f"classes {empty[:10]} have no valid synonym")


def class_logits(
    region_embeds: Tensor,
    class_embeds: Tensor,
    class_valid: Tensor,
    logit_scale: Tensor | float,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """Per region, the max over each class's valid synonyms of the cosine similarity, times logit_scale.

    region_embeds [B, N, D] and class_embeds [C, S, D] must already be L2-normalised (the model and
    `TextEncoder.encode_classes` return them so), so the dot product is the cosine. class_valid [C, S] bool
    marks real synonyms (padded slots are False). logit_scale is 1/τ (float or scalar tensor).
    Returns [B, N, C] in the dtype of the embeddings. Classes are processed in chunks so the [B, N, c, S]
    similarity tensor stays under `max_elements`.
    Raises ValueError for mismatched shapes, an empty vocabulary or a class without any valid synonym.
    """
    if region_embeds.ndim != 3:
        raise ValueError(f"region_embeds must be [B, N, D], got {tuple(region_embeds.shape)}")
    _check_classes(class_embeds, class_valid, region_embeds.shape[-1])
    batch, regions, _ = region_embeds.shape
    num_classes, num_syn, _ = class_embeds.shape
    class_embeds = class_embeds.to(region_embeds.device, region_embeds.dtype)
    invalid = ~class_valid.to(region_embeds.device)
    chunk = max(1, max_elements // max(1, batch * regions * num_syn))
    parts = []
    for start in range(0, num_classes, chunk):
        sim = torch.einsum("bnd,csd->bncs", region_embeds, class_embeds[start : start + chunk])
        # -inf on padded synonyms so they never win the max; every class has ≥ 1 valid one (checked).
        parts.append(sim.masked_fill(invalid[start : start + chunk], float("-inf")).amax(dim=-1))
    return torch.cat(parts, dim=-1) * logit_scale


def semantic_scores(
    mask_probs: Tensor,
    region_class_logits: Tensor,
    rule: str = "sum",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """Pixel class scores from proposals: mask_probs [B, N, h, w] (sigmoid of the mask logits, in [0, 1])
    and region_class_logits [B, N, C] → scores [B, C, h, w] in float32, ≥ 0.

    rule "sum": S(p, c) = Σ_i s_i(p) · p_i(c), one batched matmul (einsum "bnc,bnhw->bchw", no
    [B, N, C, h, w] intermediate), so Σ_c S(p, c) = Σ_i s_i(p): not probabilities, see
    `normalized_scores`. rule "max": S(p, c) = max_i s_i(p) · p_i(c), in class chunks whose
    [B, N, c, h, w] product stays under `max_elements`. The output itself (C·h·w floats per image, 87 MB
    for 847 classes at 160²) is the peak otherwise. Raises ValueError for mismatched B or N, or an
    unknown rule.
    """
    if mask_probs.ndim != 4 or region_class_logits.ndim != 3:
        raise ValueError(
            f"expected mask_probs [B, N, h, w] and logits [B, N, C], got "
            f"{tuple(mask_probs.shape)} and {tuple(region_class_logits.shape)}"
        )
    if mask_probs.shape[:2] != region_class_logits.shape[:2]:
        raise ValueError(
            f"mask_probs {tuple(mask_probs.shape)} and logits "
            f"{tuple(region_class_logits.shape)} disagree on B, N"
        )
    if rule not in INFERENCE_RULES:
        raise ValueError(f"unknown inference rule {rule!r} ({' | '.join(INFERENCE_RULES)})")
    # float32: bf16/fp16 softmax and sums over 128 regions lose the small differences argmax relies on.
    probs = region_class_logits.float().softmax(dim=-1)
    masks = mask_probs.float()
    if rule == "sum":
        return torch.einsum("bnc,bnhw->bchw", probs, masks)
    batch, regions, height, width = masks.shape
    chunk = max(1, max_elements // max(1, batch * regions * height * width))
    parts = []
    for start in range(0, probs.shape[-1], chunk):
        part = probs[..., start : start + chunk, None, None] * masks[:, :, None]  # [B, N, c, h, w]
        parts.append(part.amax(dim=1))
    return torch.cat(parts, dim=1)


def pixel_scores(
    pixel_embeds: Tensor,
    class_embeds: Tensor,
    class_valid: Tensor,
    logit_scale: Tensor | float,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """The `pixel` mask source: each pixel's own embedding scored like a region.

    pixel_embeds [B, D, h, w] (L2-normalised per pixel) → [B, C, h, w] float32 probabilities:
    softmax over classes of logit_scale · max-synonym cosine similarity. Chunked over classes like
    `class_logits`. Raises ValueError as `class_logits` does.
    """
    if pixel_embeds.ndim != 4:
        raise ValueError(f"pixel_embeds must be [B, D, h, w], got {tuple(pixel_embeds.shape)}")
    batch, _, height, width = pixel_embeds.shape
    as_regions = pixel_embeds.flatten(2).transpose(1, 2)  # [B, h·w, D]: every pixel is a "region"
    logits = class_logits(as_regions, class_embeds, class_valid, logit_scale, max_elements)
    probs = logits.float().softmax(dim=-1)  # [B, h·w, C]
    return probs.transpose(1, 2).reshape(batch, -1, height, width)


def normalized_scores(scores: Tensor) -> Tensor:
    """Scores [B, C, ...] divided by their sum over classes (dim 1): a probability per pixel.

    For `semantic_scores` this is the mask-weighted mean of the region class probabilities,
    Σ_i s_i p_i(c) / Σ_i s_i; for `pixel_scores` it changes nothing. A pixel that no mask covers
    (sum 0) gets probability 0 for every class, so any positive unknown threshold marks it unknown.
    """
    return scores / scores.sum(dim=1, keepdim=True).clamp_min(_EPS)


def resize_scores(
    scores: Tensor,
    out_size: tuple[int, int],
    valid_size: tuple[int, int] | None = None,
    image_size: tuple[int, int] | None = None,
) -> Tensor:
    """Scores [B, C, h, w] → [B, C, H', W'] at the original image size, undoing fit + pad.

    Bilinear upsampling (align_corners=False) to out_size = the padded canvas (H, W); crop the top-left
    valid_size = (H_img, W_img) region the resized image occupies (padding is bottom/right); then, when
    image_size (the original (height, width)) is given, bilinear resize to it. This is detectron2's
    `sem_seg_postprocess` order. Interpolation is linear, so class sums are preserved up to rounding.
    Full-resolution output: use `label_map` (chunked) for large vocabularies.
    Raises ValueError when valid_size does not fit inside out_size.
    """
    out_h, out_w = int(out_size[0]), int(out_size[1])
    x = F.interpolate(scores.float(), size=(out_h, out_w), mode="bilinear", align_corners=False)
    if valid_size is not None:
        valid_h, valid_w = int(valid_size[0]), int(valid_size[1])
        if not (0 < valid_h <= out_h and 0 < valid_w <= out_w):
            raise ValueError(f"valid_size {tuple(valid_size)} must fit inside out_size {(out_h, out_w)}")
        x = x[..., :valid_h, :valid_w]
    if image_size is not None and tuple(x.shape[-2:]) != (int(image_size[0]), int(image_size[1])):
        x = F.interpolate(
            x, size=(int(image_size[0]), int(image_size[1])), mode="bilinear", align_corners=False
        )
    return x


def label_map(
    scores: Tensor,
    out_size: tuple[int, int],
    valid_size: tuple[int, int] | None = None,
    unknown_threshold: float | None = None,
    image_size: tuple[int, int] | None = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor:
    """Scores [B, C, h, w] (≥ 0) → labels long [B, H', W'], -1 = unknown.

    Geometry as `resize_scores` (canvas out_size, crop valid_size, resize to image_size); all images of
    the batch share it, so call per image when sizes differ. argmax over classes; equal scores go to the
    lowest class index (chunks are resized channels_last, which can round 1 ulp differently from one
    whole-tensor NCHW resize, so near-ties may go either way).
    unknown_threshold t ∈ [0, 1]: a pixel becomes -1 when max_c S(p,c) / Σ_c S(p,c) < t, i.e. its best
    `normalized_scores` probability (computed after resizing) is below t; pixels with Σ_c S = 0 are unknown
    for any t > 0. Classes are resized in chunks of at most `max_elements` output values, so memory stays
    bounded for 847 classes at large image sizes; only one chunk exists at a time.
    Raises ValueError for a threshold outside [0, 1], negative scores with a threshold, or bad sizes.
    """
    if scores.ndim != 4:
        raise ValueError(f"scores must be [B, C, h, w], got {tuple(scores.shape)}")
    if unknown_threshold is not None and not 0.0 <= unknown_threshold <= 1.0:
        raise ValueError(f"unknown_threshold must be in [0, 1], got {unknown_threshold}")
    if unknown_threshold is not None and bool((scores < 0).any()):
        raise ValueError("unknown_threshold needs non-negative scores (probabilities, not logits)")
    final_h, final_w = image_size or valid_size or out_size
    batch, num_classes = scores.shape[:2]
    # Output and canvas both count: a chunk is resized at canvas size before the crop.
    per_class = batch * max(int(out_size[0]) * int(out_size[1]), int(final_h) * int(final_w))
    chunk = max(1, max_elements // per_class)
    best = best_index = total = None
    for start in range(0, num_classes, chunk):
        rows = _resized_rows(scores[:, start : start + chunk], out_size, valid_size, image_size)
        if best is None:
            best_index = rows.argmax(dim=1)  # argmax returns the first maximum: ties go to the lower index
            best = rows.gather(1, best_index[:, None]).squeeze(1)
        else:
            _update_running_argmax(rows, start, best, best_index)
        if unknown_threshold is not None:  # the class sum is only needed for the unknown test
            total = rows.sum(dim=1) if total is None else total + rows.sum(dim=1)
    if unknown_threshold is not None:
        confidence = best / total.clamp_min(_EPS)
        best_index = best_index.masked_fill(confidence < unknown_threshold, -1)
    height, width = (int(final_h), int(final_w))
    return best_index.reshape(batch, height, width)


def _resized_rows(
    part: Tensor,
    out_size: tuple[int, int],
    valid_size: tuple[int, int] | None,
    image_size: tuple[int, int] | None,
) -> Tensor:
    """A class chunk [B, c, h, w] resized as `resize_scores` does → [B·H'·W', c], one row per pixel.

    channels_last: the class axis is then the innermost one, so the per-pixel max over classes reads
    contiguous memory (on NCHW it is strided by H'·W' and took as long as the upsampling itself); the
    interpolation gives the same values in either layout.
    """
    part = resize_scores(part.contiguous(memory_format=torch.channels_last), out_size, valid_size, image_size)
    return part.permute(0, 2, 3, 1).reshape(-1, part.shape[1])  # a view unless the crop was the last step


def _update_running_argmax(rows: Tensor, start: int, best: Tensor, best_index: Tensor) -> None:
    """Fold a chunk's rows [P, c] (classes start..start+c) into best [P] and best_index [P], in place.

    Only pixels whose chunk maximum strictly beats the running best need the (slower) argmax with
    indices; after the first few chunks that is a small fraction of them. Strictly greater: on ties the
    earlier (lower) class index wins, as in a single argmax over all classes.
    """
    value = rows.amax(dim=1)
    better = (value > best).nonzero().squeeze(1)
    if better.numel():
        best[better] = value[better]
        best_index[better] = rows[better].argmax(dim=1) + start
