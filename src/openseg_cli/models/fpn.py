"""Feature pyramid network: multi-scale backbone features -> one pixel feature map F at stride 4."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from openseg_cli.models.layers import conv_norm_relu, group_norm


class FPN(nn.Module):
    """Top-down FPN that returns only the finest level [ours: the paper does not give the level].

    `forward(feats)` takes the backbone levels finest first ([B, in_channels[i], H/4/2^i, W/4/2^i]) and
    returns F [B, dim, H/4, W/4]. Only the stride-4 output gets a 3x3 smoothing conv: output convs on the
    coarser levels would receive no gradient.
    """

    def __init__(self, in_channels: list[int], dim: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 1, bias=False), group_norm(dim)) for c in in_channels
        )
        self.output = conv_norm_relu(dim, dim, 3)
        self.dim = dim

    def forward(self, feats: list[Tensor]) -> Tensor:
        if len(feats) != len(self.lateral):
            raise ValueError(f"FPN expects {len(self.lateral)} levels, got {len(feats)}")
        x = self.lateral[-1](feats[-1])
        for lateral, feat in zip(self.lateral[-2::-1], feats[-2::-1], strict=True):
            x = lateral(feat) + F.interpolate(x, size=feat.shape[-2:], mode="nearest")
        return self.output(x)
