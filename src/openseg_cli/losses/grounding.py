"""Region-word grounding loss L_G, exactly the seed formulas (METHOD.md section 3).

G(I, C) = (1/K) sum_j sum_i softmax_i(<z_i, w_j> / tau) <z_i, w_j>   (regions i of I, words j of C)
L_G = -(1/|B|) sum_b [ log softmax_images(G(., C_b) / tau)_b + log softmax_captions(G(I_b, .) / tau)_b ]
with one tau (1/logit_scale) in both softmaxes. Note the two terms are summed, not averaged, as written.
"""

from __future__ import annotations

import torch
from torch import Tensor


def image_caption_scores(
    region_embeds: Tensor, word_embeds: Tensor, word_mask: Tensor, logit_scale: Tensor | float
) -> Tensor:
    """G [B_img, B_cap]: how well each caption's words are grounded in each image's regions.

    region_embeds [B_img, N, D] and word_embeds [B_cap, K, D] L2-normalised (so <z, w> is a cosine);
    word_mask [B_cap, K] bool marks real words (False = padding). A caption without words gets G = 0 in
    its column; `grounding_loss` skips it. Memory is O(B_img * B_cap * N * K).
    """
    sims = torch.einsum("bnd,ckd->bcnk", region_embeds, word_embeds)  # [B_img, B_cap, N, K]
    attn = (sims * logit_scale).softmax(dim=2)  # over the regions of the image
    grounded = (attn * sims).sum(dim=2)  # [B_img, B_cap, K]
    mask = word_mask.to(grounded.dtype)[None]  # [1, B_cap, K]
    return (grounded * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def grounding_loss(
    region_embeds: Tensor,
    word_embeds: Tensor,
    word_mask: Tensor,
    logit_scale: Tensor | float,
    anchors: Tensor | None = None,
) -> Tensor:
    """L_G over a batch where image b and caption b are the positive pair; every other pair is a negative.

    Shapes as `image_caption_scores`, with B_img == B_cap == B. Captions without words are skipped as
    anchors, and are not candidates in the softmax over captions (their G = 0 is not a score). The
    loss is averaged over the remaining anchors; with none, it is a zero that keeps a grad_fn.

    Negatives gathered from other devices: concatenate every rank's region/word tensors in the same
    order and pass this rank's sample indices as `anchors` (long [B_local]); only those terms are
    summed (and averaged over). Default: every sample is an anchor. The gathering is the engine's job.
    Raises ValueError when the image and caption batches differ in size.
    """
    if region_embeds.shape[0] != word_embeds.shape[0]:
        raise ValueError(f"{region_embeds.shape[0]} images but {word_embeds.shape[0]} captions")
    scores = image_caption_scores(region_embeds, word_embeds, word_mask, logit_scale) * logit_scale
    has_words = word_mask.any(dim=1)  # [B]
    device = scores.device
    index = torch.arange(scores.shape[0], device=device) if anchors is None else anchors.long().to(device)
    index = index[has_words[index]]
    positions = torch.arange(index.numel(), device=device)
    if index.numel() == 0:
        return 0.0 * (region_embeds.sum() + word_embeds.sum()) * logit_scale
    # softmax over images for each caption b: column b, every image is a candidate
    over_images = scores[:, index].log_softmax(dim=0)[index, positions]
    # softmax over captions for each image b: row b, only captions with words are candidates
    caption_scores = scores.masked_fill(~has_words[None, :], float("-inf"))
    over_captions = caption_scores[index].log_softmax(dim=1)[positions, index]
    return -(over_images + over_captions).mean()
