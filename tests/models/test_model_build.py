"""build_model on the tiny towers: shapes, normalisation, gradients to every trainable parameter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from openseg_cli.errors import UsageError
from openseg_cli.losses import OpenSegCriterion, masks_from_segment_maps
from openseg_cli.models import OpenSegModel, ResNetBackbone, TextEncoder, ViTBackbone, build_model


@pytest.fixture(scope="module", params=["openseg-tiny-rn", "openseg-tiny-vit"])
def built(request, tiny_config) -> tuple[str, OpenSegModel, TextEncoder]:
    torch.manual_seed(0)
    model, text_encoder = build_model(tiny_config(request.param))
    return request.param, model, text_encoder


@pytest.mark.parametrize("size", [(128, 128), (96, 160)])
def test_output_shapes_and_unit_norms(built, size):
    _, model, text_encoder = built
    height, width = size
    out = model(torch.randn(2, 3, height, width))
    dim = text_encoder.embed_dim
    assert dim == 64  # embed_dim of the tiny configs
    assert out.mask_logits.shape == (2, 6, height // 4, width // 4)
    assert out.region_embeds.shape == (2, 6, dim)
    assert out.pixel_embeds.shape == (2, dim, height // 4, width // 4)
    assert out.logit_scale.ndim == 0
    assert out.logit_scale.item() == pytest.approx(1 / 0.07, rel=1e-5)
    assert out.embed_features is None
    torch.testing.assert_close(out.region_embeds.norm(dim=-1), torch.ones(2, 6))
    torch.testing.assert_close(out.pixel_embeds.norm(dim=1), torch.ones(2, height // 4, width // 4))


def test_backbone_strides_and_dropped_pooling_heads(built):
    name, model, _ = built
    feats = model.backbone(torch.randn(1, 3, 64, 96))
    assert [f.shape[-2:] for f in feats] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert [f.shape[1] for f in feats] == model.backbone.channels
    keys = model.state_dict().keys()
    if name.endswith("rn"):
        assert isinstance(model.backbone, ResNetBackbone)
        assert model.backbone.channels == [128, 256, 512, 1024]
        assert not any("attnpool" in k for k in keys)
    else:
        assert isinstance(model.backbone, ViTBackbone)
        assert "backbone.visual.proj" not in keys
    with pytest.raises(UsageError, match="multiple of 32"):
        model(torch.randn(1, 3, 100, 100))


def _wake_zero_init(model: nn.Module) -> None:
    """open_clip's ResNet zero-inits each block's last BN scale, which blocks gradients to the rest of
    the block on a first step (a real property of that init, gone after one update): give them a value."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d) and not module.weight.any():
            nn.init.uniform_(module.weight, 0.5, 1.5)


@pytest.mark.parametrize("segmentation", ["max_dice", "hungarian"])
def test_one_backward_reaches_every_trainable_parameter(built, segmentation):
    _, model, text_encoder = built
    _wake_zero_init(model)
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    out = model(torch.randn(2, 3, 64, 64))
    segment_maps = torch.zeros(2, 64, 64, dtype=torch.long)
    segment_maps[0, :32], segment_maps[0, 32:, :20] = 1, 2
    segment_maps[1, 10:50, 10:50] = 1
    targets = masks_from_segment_maps(segment_maps, [2, 1], (16, 16))
    words = [["cat", "grass", "sky"], ["dog"]]
    word_embeds = torch.zeros(2, 3, text_encoder.embed_dim)
    word_mask = torch.zeros(2, 3, dtype=torch.bool)
    for b, caption in enumerate(words):
        word_embeds[b, : len(caption)] = text_encoder.encode(caption)
        word_mask[b, : len(caption)] = True
    criterion = OpenSegCriterion(segmentation=segmentation)
    losses = criterion(out, targets, word_embeds, word_mask)
    losses["loss"].backward()

    missing = [
        name
        for name, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert missing == []
    assert all(not p.requires_grad and p.grad is None for p in text_encoder.parameters())
    assert model.log_logit_scale.grad is not None


def test_freeze_backbone_freezes_the_visual_tower_only(tiny_config):
    model, _ = build_model(tiny_config("openseg-tiny-rn", freeze_backbone=True))
    model.train()
    assert not any(p.requires_grad for p in model.backbone.visual.parameters())
    assert not model.backbone.visual.training  # BatchNorm statistics stay fixed
    assert all(p.requires_grad for p in model.fpn.parameters())


def test_state_dicts_restore_random_towers(tiny_config):
    torch.manual_seed(0)
    model_a, text_a = build_model(tiny_config("openseg-tiny-vit"))
    torch.manual_seed(1)
    model_b, text_b = build_model(tiny_config("openseg-tiny-vit"))
    words = ["cat", "dog"]
    before = text_b.encode(words)  # fills text_b's cache with the old weights
    assert not torch.allclose(before, text_a.encode(words))
    model_b.load_state_dict(model_a.state_dict())
    text_b.load_state_dict(text_a.state_dict())
    torch.testing.assert_close(text_b.encode(words), text_a.encode(words))  # cache was cleared
    images = torch.randn(1, 3, 64, 64)
    model_a.eval(), model_b.eval()
    with torch.no_grad():
        torch.testing.assert_close(model_b(images).region_embeds, model_a(images).region_embeds)
    assert not any(k.startswith("clip.visual") for k in text_a.state_dict())  # owned by the backbone
