"""Multi-scale features (strides 4, 8, 16, 32) from an open_clip visual tower.

ModifiedResNet towers give C2-C5 directly. ViT towers give one map at the patch stride; a simple feature
pyramid (deconvs / max-pool, as in ViTDet) [ours] turns it into four levels of width `pyramid_dim`.
The parts of the towers that pool to one image vector (ResNet attnpool, ViT proj / attentional pool) are
unused here and are dropped, so that every remaining parameter receives gradients and checkpoints do not
carry dead weights.
"""

from __future__ import annotations

import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import Tensor, nn

from openseg_cli.errors import RecipeError, UsageError
from openseg_cli.models.layers import group_norm
from openseg_cli.models.maskclip import last_block_value_path, vit_tokens_before_last_block

STRIDES = (4, 8, 16, 32)


class Backbone(nn.Module):
    """Base class: `forward(images [B,3,H,W]) -> [C2 [B,c0,H/4,W/4], ..., C5 [B,c3,H/32,W/32]]`.

    H and W must be multiples of 32 (UsageError otherwise). `channels` lists c0..c3. `freeze()` stops
    gradients to the open_clip tower and keeps it in eval mode (BatchNorm statistics included).
    With `clip_dense`, the tower keeps its own projection into CLIP's joint space and
    `forward_with_dense` also returns MaskCLIP's dense features [B, D, H/s, W/s] (`dense_dim` = D).
    """

    channels: list[int]
    strides = STRIDES
    dense_dim: int = 0

    def __init__(self, visual: nn.Module, clip_dense: bool = False) -> None:
        super().__init__()
        self.visual = visual
        self.frozen = False
        self.clip_dense = clip_dense

    def forward_with_dense(self, images: Tensor) -> tuple[list[Tensor], Tensor | None]:
        """(the four feature maps, dense joint-space features or None without `clip_dense`)."""
        return self(images), None

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
    """C2-C5 of an open_clip ModifiedResNet (stem + layer1..layer4). The attention pool is dropped; with
    `clip_dense` its value and output projections stay, applied to every C5 position (MaskCLIP)."""

    def __init__(self, visual: ModifiedResNet, clip_dense: bool = False) -> None:
        super().__init__(visual, clip_dense)
        pool = visual.attnpool
        visual.attnpool = None  # its query/key/position parts only make the global image vector
        if clip_dense:
            self.clip_value, self.clip_out = pool.v_proj, pool.c_proj
            self.dense_dim = pool.c_proj.out_features
        layers = [visual.layer1, visual.layer2, visual.layer3, visual.layer4]
        self.channels = [layer[-1].bn3.num_features for layer in layers]

    def forward_with_dense(self, images: Tensor) -> tuple[list[Tensor], Tensor | None]:
        feats = self(images)
        if not self.clip_dense:
            return feats, None
        tokens = self.clip_out(self.clip_value(feats[-1].permute(0, 2, 3, 1)))  # [B, h, w, D]
        return feats, tokens.permute(0, 3, 1, 2)

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
    before the pyramid. Patch dropout is not applied (it would break the token grid). With `clip_dense`
    the tower keeps `proj`, and the dense features are MaskCLIP's value path of the last block.
    """

    def __init__(self, visual: VisionTransformer, pyramid_dim: int, clip_dense: bool = False) -> None:
        super().__init__(visual, clip_dense)
        if getattr(visual, "attn_pool", None) is not None:
            raise RecipeError("ViT towers with an attentional pool (CoCa) are not supported as backbones")
        if clip_dense:
            self.dense_dim = int(visual.proj.shape[1])
        else:
            visual.proj = None  # projects the pooled token into the joint space: unused here
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

    def forward_with_dense(self, images: Tensor) -> tuple[list[Tensor], Tensor | None]:
        self.check_size(images)
        x, grid = vit_tokens_before_last_block(self.visual, images)  # [B, 1 + gh*gw, width]
        feats = self._pyramid(self.visual.transformer.resblocks[-1](x), grid, images.shape[-2:])
        if not self.clip_dense:
            return feats, None
        value = self.visual.ln_post(last_block_value_path(self.visual.transformer.resblocks[-1], x)[:, 1:])
        dense = value @ self.visual.proj  # [B, gh*gw, D]
        return feats, dense.transpose(1, 2).reshape(images.shape[0], -1, *grid)

    def _pyramid(self, tokens: Tensor, grid: tuple[int, int], size: tuple[int, int]) -> list[Tensor]:
        """Last-block tokens [B, 1 + gh*gw, width] → ln_post → map → the four pyramid levels."""
        x = self.visual.ln_post(tokens[:, 1:])
        x = x.transpose(1, 2).reshape(x.shape[0], -1, *grid)  # [B, width, gh, gw]
        size16 = (size[0] // 16, size[1] // 16)
        if x.shape[-2:] != size16:  # patch 14 / 32 towers: bring the token map to stride 16
            x = F.interpolate(x, size=size16, mode="bilinear", align_corners=False)
        return [level(x) for level in self.levels]

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.forward_with_dense(images)[0]


def build_backbone(visual: nn.Module, pyramid_dim: int, clip_dense: bool = False) -> Backbone:
    """Wrap an open_clip visual tower (`clip_dense`: keep its joint-space projection, see Backbone);
    RecipeError for tower types other than ModifiedResNet / ViT."""
    if isinstance(visual, ModifiedResNet):
        return ResNetBackbone(visual, clip_dense)
    if isinstance(visual, VisionTransformer):
        return ViTBackbone(visual, pyramid_dim, clip_dense)
    raise RecipeError(
        f"visual tower {type(visual).__name__} is not supported: use a ModifiedResNet (RN50, RN101...) "
        "or ViT open_clip model"
    )
