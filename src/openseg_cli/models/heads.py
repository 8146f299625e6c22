"""The two pixel heads (F_s for masks, F_z for region embeddings) and mask pooling."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from openseg_cli.models.layers import group_norm


class ConvHead(nn.Module):
    """ "A fc layer followed by 3 layers of 3x3 convolutions with 640 channels" [paper].

    fc = 1x1 conv (in_dim -> width), then `num_convs` 3x3 convs of `width`; GroupNorm + ReLU between
    layers, none after the last conv so the output is unconstrained (it feeds dot products and pooling).
    `forward(x [B, in_dim, h, w]) -> [B, width, h, w]`.
    """

    def __init__(self, in_dim: int, width: int, num_convs: int) -> None:
        super().__init__()
        # A bias just before a GroupNorm is cancelled by it (exactly, for one channel per group), so
        # only the last layer has one.
        layers: list[nn.Module] = [nn.Conv2d(in_dim, width, 1, bias=num_convs == 0)]
        for i in range(num_convs):
            layers += [group_norm(width), nn.ReLU(inplace=True)]
            layers.append(nn.Conv2d(width, width, 3, padding=1, bias=i == num_convs - 1))
        self.layers = nn.Sequential(*layers)
        self.width = width

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


def pool_regions(mask_probs: Tensor, feats: Tensor, eps: float = 1e-6) -> Tensor:
    """Mask pooling: z_m = sum_p s_m(p) F(p) / (sum_p s_m(p) + eps).

    mask_probs [B, M, h, w] in [0, 1] (soft or binary), feats [B, C, h, w] -> [B, M, C]. An empty mask
    pools to the zero vector (no NaN). Raises ValueError when the spatial sizes differ.
    """
    if mask_probs.shape[-2:] != feats.shape[-2:] or mask_probs.shape[0] != feats.shape[0]:
        raise ValueError(f"pool_regions: masks {tuple(mask_probs.shape)} vs features {tuple(feats.shape)}")
    weighted = torch.einsum("bmhw,bchw->bmc", mask_probs, feats)
    area = mask_probs.flatten(2).sum(-1, keepdim=True)  # [B, M, 1]
    return weighted / (area + eps)
