"""Multi-scale features (strides 4, 8, 16, 32) from an open_clip visual tower.

ModifiedResNet towers give C2-C5 directly. ViT towers give one map at the patch stride; a simple feature
pyramid (deconvs / max-pool, as in ViTDet) [ours] turns it into four levels of width `pyramid_dim`.
The parts of the towers that pool to one image vector (ResNet attnpool, ViT proj / attentional pool) are
unused here and are dropped, so that every remaining parameter receives gradients and checkpoints do not
carry dead weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import Tensor, nn

from openseg_cli.errors import RecipeError, UsageError
from openseg_cli.models.layers import group_norm

STRIDES = (4, 8, 16, 32)


class Backbone(nn.Module):
    """Base class: `forward(images [B,3,H,W]) -> [C2 [B,c0,H/4,W/4], ..., C5 [B,c3,H/32,W/32]]`.

    H and W must be multiples of 32 (UsageError otherwise). `channels` lists c0..c3. `freeze()` stops
    gradients to the open_clip tower and keeps it in eval mode (BatchNorm statistics included).
    """

    channels: list[int]
    strides = STRIDES

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.frozen = False

    def freeze(self) -> None:
        self.frozen = True
        for param in self.visual.parameters():
            param.requires_grad = False
        self.visual.eval()

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if self.frozen:
            self.visual.eval()  # a frozen tower must not update its BatchNorm running statistics
        return self

    @staticmethod
    def check_size(images: Tensor) -> None:
        height, width = images.shape[-2:]
        if height % 32 or width % 32:
            raise UsageError(f"image size {height}x{width} must be a multiple of 32 (pad or resize it)")


class ResNetBackbone(Backbone):
    """C2-C5 of an open_clip ModifiedResNet (stem + layer1..layer4); the attention pool is dropped."""

    def __init__(self, visual: ModifiedResNet) -> None:
        super().__init__(visual)
        visual.attnpool = None  # only used for the global image vector
        layers = [visual.layer1, visual.layer2, visual.layer3, visual.layer4]
        self.channels = [layer[-1].bn3.num_features for layer in layers]

    def forward(self, images: Tensor) -> list[Tensor]:
        self.check_size(images)
        x = self.visual.stem(images)  # stride 4
        feats = []
        for layer in (self.visual.layer1, self.visual.layer2, self.visual.layer3, self.visual.layer4):
            x = layer(x)
            feats.append(x)
        return feats


def _level(in_dim: int, out_dim: int, resample: list[nn.Module]) -> nn.Sequential:
    """One pyramid level: resample, then 1x1 and 3x3 convs with GroupNorm (ViTDet's simple FPN)."""
    return nn.Sequential(
        *resample,
        nn.Conv2d(in_dim, out_dim, 1, bias=False),
        group_norm(out_dim),
        nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False),
        group_norm(out_dim),
    )


class ViTBackbone(Backbone):
    """Simple feature pyramid from the last block of an open_clip VisionTransformer.

    The positional embedding is interpolated (bicubic) to the input's patch grid, so any H, W multiple of
    32 works, square or not. Towers whose patch is not 16 have their token map resized to stride 16
    before the pyramid. Patch dropout is not applied (it would break the token grid).
    """

    def __init__(self, visual: VisionTransformer, pyramid_dim: int) -> None:
        super().__init__(visual)
        if getattr(visual, "attn_pool", None) is not None:
            raise RecipeError("ViT towers with an attentional pool (CoCa) are not supported as backbones")
        visual.proj = None  # projects the pooled token into the joint space: unused for dense features
        width = visual.conv1.out_channels
        half, quarter = width // 2, width // 4
        self.levels = nn.ModuleList(
            [
                _level(
                    quarter,
                    pyramid_dim,
                    [
                        nn.ConvTranspose2d(width, half, 2, stride=2, bias=False),  # GroupNorm follows
                        group_norm(half),
                        nn.GELU(),
                        nn.ConvTranspose2d(half, quarter, 2, stride=2),
                    ],
                ),
                _level(half, pyramid_dim, [nn.ConvTranspose2d(width, half, 2, stride=2)]),
                _level(width, pyramid_dim, []),
                _level(width, pyramid_dim, [nn.MaxPool2d(2)]),
            ]
        )
        self.channels = [pyramid_dim] * 4

    def _position_embedding(self, grid: tuple[int, int]) -> Tensor:
        """[1 + gh*gw, width]: the class position, then the grid positions resized to `grid`."""
        pos = self.visual.positional_embedding
        base = self.visual.grid_size
        if tuple(base) == grid:
            return pos
        grid_pos = pos[1:].reshape(1, base[0], base[1], -1).permute(0, 3, 1, 2)
        grid_pos = F.interpolate(grid_pos, size=grid, mode="bicubic", align_corners=False)
        return torch.cat([pos[:1], grid_pos.flatten(2).squeeze(0).T])

    def _tokens(self, images: Tensor) -> Tensor:
        """Last-block patch tokens after ln_post, as a map [B, width, H/p, W/p]."""
        vis = self.visual
        x = vis.conv1(images)  # [B, width, gh, gw]
        batch, width, gh, gw = x.shape
        x = x.flatten(2).transpose(1, 2)  # [B, gh*gw, width]
        cls = vis.class_embedding.to(x.dtype).expand(batch, 1, width)
        x = torch.cat([cls, x], dim=1) + self._position_embedding((gh, gw)).to(x.dtype)
        x = vis.transformer(vis.ln_pre(x))
        x = vis.ln_post(x[:, 1:])
        return x.transpose(1, 2).reshape(batch, width, gh, gw)

    def forward(self, images: Tensor) -> list[Tensor]:
        self.check_size(images)
        x = self._tokens(images)
        size16 = (images.shape[-2] // 16, images.shape[-1] // 16)
        if x.shape[-2:] != size16:  # patch 14 / 32 towers: bring the token map to stride 16
            x = F.interpolate(x, size=size16, mode="bilinear", align_corners=False)
        return [level(x) for level in self.levels]


def build_backbone(visual: nn.Module, pyramid_dim: int) -> Backbone:
    """Wrap an open_clip visual tower; RecipeError for tower types other than ModifiedResNet / ViT."""
    if isinstance(visual, ModifiedResNet):
        return ResNetBackbone(visual)
    if isinstance(visual, VisionTransformer):
        return ViTBackbone(visual, pyramid_dim)
    raise RecipeError(
        f"visual tower {type(visual).__name__} is not supported: use a ModifiedResNet (RN50, RN101...) "
        "or ViT open_clip model"
    )
