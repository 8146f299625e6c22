"""Small building blocks shared by the backbone pyramid, the FPN, the heads and the decoder."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm that also takes groups of a single value (one channel per group at 1×1, e.g. the
    stride-32 map of a 32-px image with a narrow model, batch 1), where torch refuses. There x - mean
    is 0, so the output is the bias (0 without affine): the limit of the normalisation, not a guess."""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] // self.num_groups * x[0, 0].numel() > 1:
            return super().forward(x)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return torch.zeros_like(x) + (self.bias.view(shape) if self.affine else 0)


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= `max_groups` dividing `channels` (tiny widths work too)."""
    return GroupNorm(math.gcd(max_groups, channels), channels)


def conv_norm_relu(in_dim: int, out_dim: int, kernel_size: int) -> nn.Sequential:
    """Conv (no bias: the norm has one) -> GroupNorm -> ReLU, spatial size kept."""
    return nn.Sequential(
        nn.Conv2d(in_dim, out_dim, kernel_size, padding=kernel_size // 2, bias=False),
        group_norm(out_dim),
        nn.ReLU(inplace=True),
    )


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last): [..., in_dim] -> [..., out_dim]."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.relu()
        return x
