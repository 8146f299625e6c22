"""MaskCLIP dense features: per-patch embeddings in CLIP's joint space from a frozen visual tower.

Zhou, Loy & Dai, "Extract Free Dense Labels from CLIP" (ECCV 2022). CLIP's last attention layer mixes all
tokens into the global image embedding; MaskCLIP drops the query/key path of that layer and keeps each
position's own *value* embedding, so every patch gets a vector the text embeddings can be compared with.

- ViT towers (`VisionTransformer`): blocks 1..L-1 run as usual; in block L every token x goes through
      v   = W_v · ln_1(x) + b_v                (the value rows of `attn.in_proj_weight`)
      y   = x + ls_1(out_proj(v))              (the residual of the block is kept, see below)
      y   = y + ls_2(mlp(ln_2(y)))
      out = ln_post(y) @ proj                  → [B, D, H/p, W/p]
  This is the authors' released ViT code (value path of the last layer, residual and FFN kept). The
  residual matters: with it, the dense feature equals what the unchanged last block would give if each
  token attended only to itself, so it lives in the space of the global embedding the text tower was
  trained against (tests/models/test_maskclip.py checks this against `encode_image`).
  `keep_residual=False` is the stricter "value embedding only" reading (out_proj(v), then ln_post, proj)
  for comparison.
- ModifiedResNet towers: the C5 map goes through the attention pool's value and output projections
  as 1×1 convolutions, `c_proj(v_proj(x))`, without the pool's positional embedding → [B, D, H/32, W/32].

Position embeddings of a ViT are resized (bicubic) to the input's patch grid, so any input whose sides
are multiples of the patch size works. Features are NOT normalised here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import Tensor, nn

from openseg_cli.errors import UsageError


def interpolate_position_embedding(pos: Tensor, base_grid: tuple[int, int], grid: tuple[int, int]) -> Tensor:
    """pos [1 + gh0·gw0, width] (class position first, grid row-major) → [1 + gh·gw, width].

    The grid part is resized with bicubic interpolation (align_corners=False); the class position is
    kept. At the native grid the input tensor itself is returned (exactly the identity).
    """
    base_grid, grid = tuple(int(g) for g in base_grid), tuple(int(g) for g in grid)
    if base_grid == grid:
        return pos
    width = pos.shape[-1]
    grid_pos = pos[1:].reshape(1, base_grid[0], base_grid[1], width).permute(0, 3, 1, 2)
    grid_pos = F.interpolate(grid_pos.float(), size=grid, mode="bicubic", align_corners=False)
    grid_pos = grid_pos.to(pos.dtype).flatten(2).squeeze(0).T  # [gh·gw, width]
    return torch.cat([pos[:1], grid_pos])


def vit_tokens_before_last_block(visual: VisionTransformer, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """images [B, 3, H, W] → (tokens [B, 1 + gh·gw, width] entering the last block, grid (gh, gw)).

    The position embedding is resized to the input's patch grid (`interpolate_position_embedding`);
    patch dropout is not applied (it would break the token grid).
    """
    x = visual.conv1(images)  # [B, width, gh, gw]
    batch, width, gh, gw = x.shape
    x = x.flatten(2).transpose(1, 2)  # [B, gh·gw, width]
    cls = visual.class_embedding.to(x.dtype).expand(batch, 1, width)
    pos = interpolate_position_embedding(visual.positional_embedding, visual.grid_size, (gh, gw))
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + pos.to(x.dtype))
    for block in visual.transformer.resblocks[:-1]:  # open_clip's VisionTransformer is batch-first
        x = block(x)
    return x, (gh, gw)


def last_block_value_path(block: ResidualAttentionBlock, x: Tensor, keep_residual: bool = True) -> Tensor:
    """MaskCLIP's reading of a ViT's last block: tokens [B, T, width] → [B, T, width], each token alone.

    `keep_residual`: the block's residual and FFN are kept (the authors' code); otherwise the value
    embedding alone, out_proj(W_v · ln_1(x) + b_v).
    """
    attn = block.attn
    width = x.shape[-1]
    # nn.MultiheadAttention packs W_q, W_k, W_v as rows [0:w], [w:2w], [2w:3w] of in_proj_weight.
    w_v = attn.in_proj_weight[2 * width :]
    b_v = attn.in_proj_bias[2 * width :] if attn.in_proj_bias is not None else None
    value = attn.out_proj(F.linear(block.ln_1(x), w_v, b_v))
    if not keep_residual:
        return value
    y = x + block.ls_1(value)
    return y + block.ls_2(block.mlp(block.ln_2(y)))


def _check_multiple(images: Tensor, stride: int) -> None:
    height, width = images.shape[-2:]
    if height % stride or width % stride:
        raise UsageError(
            f"image size {height}x{width} must be a multiple of the CLIP tower's stride {stride}"
        )


class MaskClipViT(nn.Module):
    """Dense MaskCLIP features of an open_clip `VisionTransformer`: images [B, 3, H, W] → [B, D, H/p, W/p].

    H and W must be multiples of the patch size p (UsageError otherwise). Raises UsageError at build time
    for towers this route cannot read: an attentional pool (CoCa), custom attention blocks, or no `proj`.
    """

    def __init__(self, visual: VisionTransformer, keep_residual: bool = True) -> None:
        super().__init__()
        if getattr(visual, "attn_pool", None) is not None:
            raise UsageError("zero-shot MaskCLIP does not support ViT towers with an attentional pool")
        if not all(isinstance(b, ResidualAttentionBlock) for b in visual.transformer.resblocks):
            raise UsageError("zero-shot MaskCLIP needs a ViT with standard attention blocks")
        if visual.proj is None:
            raise UsageError("zero-shot MaskCLIP needs a ViT with a projection into the joint space")
        self.visual = visual
        self.keep_residual = keep_residual
        self.stride = int(visual.patch_size[0])
        self.embed_dim = int(visual.proj.shape[1])

    def tokens_before_last_block(self, images: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """images → (tokens [B, 1 + gh·gw, width] entering the last block, grid (gh, gw))."""
        return vit_tokens_before_last_block(self.visual, images)

    def value_path(self, x: Tensor) -> Tensor:
        """The last block without query/key: tokens [B, T, width] → [B, T, width], each token alone."""
        return last_block_value_path(self.visual.transformer.resblocks[-1], x, self.keep_residual)

    def forward(self, images: Tensor) -> Tensor:
        _check_multiple(images, self.stride)
        x, (gh, gw) = self.tokens_before_last_block(images)
        y = self.visual.ln_post(self.value_path(x)[:, 1:])  # patch tokens only
        dense = y @ self.visual.proj  # [B, gh·gw, D]
        return dense.transpose(1, 2).reshape(images.shape[0], -1, gh, gw)


class MaskClipResNet(nn.Module):
    """Dense MaskCLIP features of an open_clip `ModifiedResNet`: images [B, 3, H, W] → [B, D, H/32, W/32].

    The attention pool's v_proj and c_proj are applied to every C5 position (1×1 convolutions); its
    positional embedding and query/key projections are unused. H, W multiples of 32 (UsageError).
    """

    def __init__(self, visual: ModifiedResNet) -> None:
        super().__init__()
        if getattr(visual, "attnpool", None) is None:
            raise UsageError("zero-shot MaskCLIP needs the ResNet tower's attention pool")
        self.visual = visual
        self.stride = 32
        self.embed_dim = int(visual.attnpool.c_proj.out_features)

    def forward(self, images: Tensor) -> Tensor:
        _check_multiple(images, self.stride)
        vis = self.visual
        x = vis.layer4(vis.layer3(vis.layer2(vis.layer1(vis.stem(images)))))  # C5 [B, C, h, w]
        pool = vis.attnpool
        tokens = pool.c_proj(pool.v_proj(x.permute(0, 2, 3, 1)))  # [B, h, w, D]
        return tokens.permute(0, 3, 1, 2)


def build_dense_clip(visual: nn.Module, keep_residual: bool = True) -> nn.Module:
    """The MaskCLIP dense route for an open_clip visual tower (ViT or ModifiedResNet).

    Raises UsageError for other towers (timm towers, CoCa's attentional pool, custom attention blocks).
    """
    if isinstance(visual, VisionTransformer):
        return MaskClipViT(visual, keep_residual=keep_residual)
    if isinstance(visual, ModifiedResNet):
        return MaskClipResNet(visual)
    raise UsageError(
        f"zero-shot MaskCLIP needs an open_clip ViT or ModifiedResNet (RN50…) tower, not "
        f"{type(visual).__name__}"
    )
