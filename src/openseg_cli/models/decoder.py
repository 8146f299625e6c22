"""Mask queries: N learned queries cross-attend the mask features F_s [paper]; Mask2Former layers [ours].

Each layer is cross-attention (queries -> pixels, with a 2-D sine positional encoding on the pixels and a
learned one on the queries), then self-attention among queries, then an FFN; residual + LayerNorm after
each (post-norm, as Mask2Former). Attention goes through `nn.MultiheadAttention(need_weights=False)`,
which uses PyTorch's fused scaled-dot-product kernels, so the [N x h*w] attention map of a 640 px
image (160x160 pixels) is not materialised on GPUs. No masked attention and no auxiliary per-layer
losses (the paper describes neither).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from openseg_cli.models.layers import MLP


def sine_position_encoding(height: int, width: int, dim: int, *, device=None, dtype=None) -> Tensor:
    """2-D sine/cosine encoding [height*width, dim] (row-major pixels): first dim/2 code y, last dim/2 x.

    Positions are normalised to (0, 2*pi) so the code does not depend on the image size. Raises
    ValueError unless dim is a multiple of 4.
    """
    if dim % 4:
        raise ValueError(f"positional encoding dim must be a multiple of 4, got {dim}")
    quarter = dim // 4
    freqs = 10000.0 ** (-torch.arange(quarter, device=device, dtype=torch.float32) / quarter)  # [dim/4]

    def axis(n: int) -> Tensor:  # [n, dim/2]
        pos = (torch.arange(n, device=device, dtype=torch.float32) + 0.5) / n * 2 * math.pi
        angles = pos[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    y = axis(height)[:, None, :].expand(height, width, 2 * quarter)
    x = axis(width)[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat([y, x], dim=-1).reshape(height * width, dim).to(dtype or torch.float32)


class DecoderLayer(nn.Module):
    """cross-attention -> self-attention -> FFN, each with residual + LayerNorm. Shapes [B, N, dim]."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, dim))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3))

    def forward(self, queries: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor) -> Tensor:
        """queries/query_pos [B, N, dim]; memory [B, h*w, dim]; memory_pos [1, h*w, dim]."""
        attended = self.cross_attn(queries + query_pos, memory + memory_pos, memory, need_weights=False)[0]
        queries = self.norms[0](queries + attended)
        q = queries + query_pos
        queries = self.norms[1](queries + self.self_attn(q, q, queries, need_weights=False)[0])
        return self.norms[2](queries + self.ffn(queries))


class QueryDecoder(nn.Module):
    """N learned queries refined against pixel features; also turns queries into mask logits.

    Args:
        num_queries: N.
        dim: query width (decoder_dim); must be divisible by `heads` and by 4.
        layers: number of DecoderLayers (decoder_layers).
        heads: attention heads.
        in_dim: channels of the features attended to (F_s: head_width); projected to `dim` by a 1x1 conv.
        mask_dim: channels of the mask features the queries are dotted with (head_width).
    `forward(features [B, in_dim, h, w]) -> queries [B, N, dim]`;
    `mask_logits(queries, mask_features [B, mask_dim, h, w]) -> [B, N, h, w]`.
    """

    def __init__(
        self, num_queries: int, dim: int, layers: int, heads: int, in_dim: int, mask_dim: int
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"decoder dim {dim} is not divisible by {heads} heads")
        self.query_feat = nn.Embedding(num_queries, dim)  # content q0
        self.query_pos = nn.Embedding(num_queries, dim)  # learned positional part of each query
        self.input_proj = nn.Conv2d(in_dim, dim, 1)
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, 4 * dim) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        # Mask2Former's 3-layer MLP from query width to the mask-feature width (head_width).
        self.mask_embed = MLP(dim, dim, mask_dim, num_layers=3)
        self.num_queries = num_queries
        self.dim = dim

    def forward(self, features: Tensor) -> Tensor:
        batch, _, height, width = features.shape
        memory = self.input_proj(features).flatten(2).transpose(1, 2)  # [B, h*w, dim]
        memory_pos = sine_position_encoding(
            height, width, self.dim, device=features.device, dtype=memory.dtype
        )[None]
        queries = self.query_feat.weight[None].expand(batch, -1, -1)
        query_pos = self.query_pos.weight[None].expand(batch, -1, -1)
        for layer in self.layers:
            queries = layer(queries, query_pos, memory, memory_pos)
        return self.norm(queries)

    def mask_logits(self, queries: Tensor, mask_features: Tensor) -> Tensor:
        """<q_i, F_s(p)>: queries [B, N, dim], mask_features [B, mask_dim, h, w] -> [B, N, h, w]."""
        return torch.einsum("bnc,bchw->bnhw", self.mask_embed(queries), mask_features)
