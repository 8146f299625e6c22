"""The OpenSeg model: backbone -> FPN -> heads F_s / F_z -> queries -> masks -> pooled region embeddings."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from openseg_cli.config.loader import CHOICES
from openseg_cli.models.backbone import Backbone
from openseg_cli.models.decoder import QueryDecoder
from openseg_cli.models.fpn import FPN
from openseg_cli.models.heads import ConvHead, pool_regions

MAX_LOGIT_SCALE = 100.0  # CLIP's cap on 1/tau: keeps the softmaxes from saturating
MASK_POOLING = CHOICES[("model", "mask_pooling")]


@dataclass
class SegOutput:
    """What `OpenSegModel.forward` returns (h, w = H/4, W/4; D = text embedding dim).

    mask_logits [B, N, h, w]: s_i = sigmoid(mask_logits).
    region_embeds [B, N, D]: pooled, projected, L2-normalised region embeddings z_i.
    pixel_embeds [B, D, h, w]: the joint-space pixel features J, L2-normalised per pixel.
    logit_scale: scalar tensor 1/tau (learnable, capped at 100).
    embed_features [B, D, h, w] | None: J before normalisation, only when asked for (for `embed_masks`).
    """

    mask_logits: Tensor
    region_embeds: Tensor
    pixel_embeds: Tensor
    logit_scale: Tensor
    embed_features: Tensor | None = None


class OpenSegModel(nn.Module):
    """OpenSeg: class-agnostic mask proposals, each with an embedding in the text space [paper].

    Joint-space pixel features J(p) = region_proj(F_z(p)) [+ the backbone's dense CLIP features,
    upsampled, when it has `clip_dense`]; a region embedding z_i = normalise(pool_regions(s_i, J)).
    Pooling then projecting equals projecting then pooling (both linear, up to pooling's ε), so this is
    the paper's "mask pooling, then a linear projection" with one pooled tensor for every mask source.

    Args:
        backbone: multi-scale features at strides 4-32.
        fpn: merges them into F [B, fpn_dim, h, w].
        mask_head: F -> F_s [B, head_width, h, w] (mask features).
        embed_head: F -> F_z [B, head_width, h, w] (features pooled into region embeddings).
        decoder: queries attend F_s; `decoder.mask_logits` dots them with F_s.
        region_proj: Linear(head_width, D) into the text embedding space.
        logit_scale_init: initial 1/tau (CLIP: 1/0.07); stored as its log so it stays positive.
        mask_pooling: the masks pooled into region embeddings (MASK_POOLING): "soft" sigmoid masks with
            gradient, "detached" sigmoid masks without, "binary" (> 0.5) masks. ValueError otherwise.
    """

    def __init__(
        self,
        backbone: Backbone,
        fpn: FPN,
        mask_head: ConvHead,
        embed_head: ConvHead,
        decoder: QueryDecoder,
        region_proj: nn.Linear,
        logit_scale_init: float = 1 / 0.07,
        mask_pooling: str = "soft",
    ) -> None:
        super().__init__()
        if mask_pooling not in MASK_POOLING:
            raise ValueError(f"unknown mask pooling {mask_pooling!r} ({' | '.join(MASK_POOLING)})")
        self.mask_pooling = mask_pooling
        self.backbone = backbone
        self.fpn = fpn
        self.mask_head = mask_head
        self.embed_head = embed_head
        self.decoder = decoder
        self.region_proj = region_proj
        self.log_logit_scale = nn.Parameter(torch.tensor(math.log(logit_scale_init)))

    @property
    def embed_dim(self) -> int:
        return self.region_proj.out_features

    def logit_scale(self) -> Tensor:
        return self.log_logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def pixel_features(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images [B, 3, H, W] (H, W multiples of 32) -> (F_s [B, head_width, h, w], J [B, D, h, w])."""
        feats, dense = self.backbone.forward_with_dense(images)
        feats = self.fpn(feats)
        mask_feats, embed_feats = self.mask_head(feats), self.embed_head(feats)
        joint = self.region_proj(embed_feats.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # [B, D, h, w]
        if dense is not None:
            joint = joint + F.interpolate(dense, size=joint.shape[-2:], mode="bilinear", align_corners=False)
        return mask_feats, joint

    def forward(self, images: Tensor, return_embed_features: bool = False) -> SegOutput:
        """images [B, 3, H, W], CLIP-normalised, H and W multiples of 32 (UsageError otherwise)."""
        mask_feats, joint = self.pixel_features(images)
        queries = self.decoder(mask_feats)  # [B, N, dim]
        mask_logits = self.decoder.mask_logits(queries, mask_feats)  # [B, N, h, w]
        pooled = pool_regions(self._pooling_masks(mask_logits), joint)  # [B, N, D]
        region_embeds = F.normalize(pooled, dim=-1)  # an empty mask pools to 0 and stays 0
        pixel_embeds = F.normalize(joint, dim=1)
        embed_feats = joint
        return SegOutput(
            mask_logits=mask_logits,
            region_embeds=region_embeds,
            pixel_embeds=pixel_embeds,
            logit_scale=self.logit_scale(),
            embed_features=embed_feats if return_embed_features else None,
        )

    def _pooling_masks(self, mask_logits: Tensor) -> Tensor:
        """[B, N, h, w] logits -> the masks pooled into region embeddings, per `mask_pooling`."""
        if self.mask_pooling == "binary":
            return (mask_logits > 0).to(mask_logits.dtype)  # sigmoid > 0.5; no gradient by construction
        probs = mask_logits.sigmoid()
        return probs.detach() if self.mask_pooling == "detached" else probs

    def embed_masks(
        self, images: Tensor | None, masks: Tensor, embed_features: Tensor | None = None
    ) -> Tensor:
        """Embed GIVEN masks (the `gt` mask source): masks [B, M, h', w'] in [0, 1] -> [B, M, D].

        Pass `embed_features` (J from `forward(..., return_embed_features=True)`) to avoid a second
        backbone pass; otherwise `images` [B, 3, H, W] are encoded. Masks at another resolution are
        resized to F_z's with area averaging (a binary mask becomes the fraction of each cell it
        covers). An empty mask gives a zero vector. ValueError when neither input is given.
        """
        if embed_features is None:
            if images is None:
                raise ValueError("embed_masks needs images or embed_features")
            embed_features = self.pixel_features(images)[1]
        masks = masks.to(embed_features.dtype)
        if masks.shape[-2:] != embed_features.shape[-2:]:
            masks = F.interpolate(masks, size=embed_features.shape[-2:], mode="area")
        return F.normalize(pool_regions(masks, embed_features), dim=-1)
