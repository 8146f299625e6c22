"""Mask pooling (the seed's 4x4 example) and `embed_masks`, the ground-truth mask source."""

from __future__ import annotations

import pytest
import torch

from openseg_cli.models import pool_regions

FEATURE_ROWS = [
    [7.56, 8.23, 6.19, 8.31],
    [6.95, 9.13, 9.27, 1.89],
    [0.06, 6.61, 6.59, 5.13],
    [5.97, 9.29, 7.96, 2.82],
]
MASK_ROWS = [[0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0]]


def test_seed_example_binary_mask_gives_the_mean_of_the_selected_cells():
    feats = torch.tensor(FEATURE_ROWS)[None, None]  # [B=1, C=1, 4, 4]
    mask = torch.tensor(MASK_ROWS, dtype=torch.float32)[None, None]  # [B=1, M=1, 4, 4]
    pooled = pool_regions(mask, feats)
    assert pooled.shape == (1, 1, 1)
    expected = (9.27 + 1.89 + 6.61 + 6.59 + 5.13) / 5  # 5.898
    assert pooled.item() == pytest.approx(expected, abs=1e-5)
    assert pooled.item() == pytest.approx(5.898, abs=1e-3)


def test_soft_masks_weight_cells_and_channels_are_pooled_independently():
    feats = torch.tensor([[[1.0, 3.0]], [[10.0, 20.0]]])[None]  # [1, C=2, 1, 2]
    mask = torch.tensor([[[0.25, 0.75]], [[0.0, 0.0]]])[None]  # [1, M=2, 1, 2]; second mask empty
    pooled = pool_regions(mask, feats)
    # (0.25*1 + 0.75*3) / 1 = 2.5 and (0.25*10 + 0.75*20) / 1 = 17.5; the empty mask pools to 0
    assert pooled[0, 0].tolist() == pytest.approx([2.5, 17.5], rel=1e-5)  # eps = 1e-6
    assert pooled[0, 1].tolist() == [0.0, 0.0]


def test_pool_regions_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="pool_regions"):
        pool_regions(torch.ones(1, 2, 4, 4), torch.ones(1, 3, 8, 8))


def test_embed_masks_reuses_features_and_resizes_masks(tiny_config):
    from openseg_cli.models import build_model

    torch.manual_seed(0)
    model, _ = build_model(tiny_config("openseg-tiny-rn"))
    model.eval()
    images = torch.randn(1, 3, 64, 96)
    masks = torch.zeros(1, 2, 64, 96)  # input resolution; F_z is at 16x24
    masks[0, 0, :32] = 1
    masks[0, 1, :, 48:] = 1
    with torch.no_grad():
        out = model(images, return_embed_features=True)
        from_images = model.embed_masks(images, masks)
        from_features = model.embed_masks(None, masks, embed_features=out.embed_features)
        # by hand: average the joint-space features J over the top half, then normalise
        top = out.embed_features[0, :, :8].mean(dim=(1, 2))
        expected = torch.nn.functional.normalize(top, dim=-1)
    assert out.embed_features.shape == (1, model.embed_dim, 16, 24)
    assert from_images.shape == (1, 2, model.embed_dim)
    torch.testing.assert_close(from_images, from_features)
    torch.testing.assert_close(from_features[0, 0], expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="images or embed_features"):
        model.embed_masks(None, masks)


@pytest.mark.parametrize("mode", ["soft", "detached", "binary"])
def test_mask_pooling_modes_choose_the_masks_and_the_gradient(mode, tiny_config):
    from openseg_cli.models import build_model

    torch.manual_seed(0)
    model, _ = build_model(tiny_config(mask_pooling=mode))
    images = torch.randn(1, 3, 64, 64)
    out = model(images, return_embed_features=True)
    probs = out.mask_logits.sigmoid()
    pooled = {"soft": probs, "detached": probs, "binary": (probs > 0.5).float()}[mode]
    expected = torch.nn.functional.normalize(pool_regions(pooled, out.embed_features), dim=-1)
    torch.testing.assert_close(out.region_embeds, expected)
    # does the grounding signal reach the mask logits through pooling?
    grads = torch.autograd.grad(out.region_embeds.sum(), model.decoder.query_feat.weight, allow_unused=True)[
        0
    ]
    reaches = grads is not None and bool(grads.abs().sum() > 0)
    assert reaches == (mode == "soft")


def test_unknown_mask_pooling_is_refused(tiny_config):
    from openseg_cli.config.loader import recipe_from_dict
    from openseg_cli.errors import RecipeError

    with pytest.raises(RecipeError, match="mask_pooling"):
        recipe_from_dict({"model": {"mask_pooling": "hard"}})


def test_pooling_joint_features_equals_projecting_pooled_head_features(tiny_config):
    """J = region_proj(F_z) pooled equals region_proj(pooled F_z): the paper's order, up to ε."""
    from openseg_cli.models import build_model

    torch.manual_seed(0)
    model, _ = build_model(tiny_config())
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.fpn(model.backbone(images))
        f_z = model.embed_head(feats)
        out = model(images)
        masks = out.mask_logits.sigmoid()
        paper = torch.nn.functional.normalize(model.region_proj(pool_regions(masks, f_z)), dim=-1)
    torch.testing.assert_close(out.region_embeds, paper, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["openseg-tiny-rn", "openseg-tiny-vit"])
def test_clip_dense_starts_as_mask_pooled_maskclip_features(name, tiny_config):
    """With clip_dense, region_proj starts at zero: region embeddings are CLIP's dense features (the
    MaskCLIP route of models/maskclip.py on the same tower) pooled by the predicted masks."""
    import torch.nn.functional as F

    from openseg_cli.models import ClipTowers, build_model
    from openseg_cli.models.maskclip import build_dense_clip

    torch.manual_seed(0)
    cfg = tiny_config(name, clip_dense=True)
    model, _ = build_model(cfg)
    model.eval()
    torch.manual_seed(0)  # the same random tower again, untouched, for the reference route
    reference = build_dense_clip(ClipTowers.from_config(cfg.clip).visual).eval()
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        out = model(images)
        dense = F.interpolate(reference(images), size=out.mask_logits.shape[-2:], mode="bilinear")
        expected = F.normalize(pool_regions(out.mask_logits.sigmoid(), dense), dim=-1)
    assert model.backbone.dense_dim == model.embed_dim
    torch.testing.assert_close(out.region_embeds, expected, atol=1e-5, rtol=1e-4)
