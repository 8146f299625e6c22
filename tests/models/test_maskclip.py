"""Zero-shot MaskCLIP (issue #4): dense features against a step-by-step reference, against open_clip's own
global image embedding, position-embedding resizing, and the scorer's contract with `label_map`.

Random tiny towers cannot segment anything real; the synthetic check at the end shows the pipeline's
argmax follows the text embedding most aligned with each patch's dense feature.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from openseg_cli.engine.text_cache import class_embeddings
from openseg_cli.errors import PretrainedWeightsError, UsageError
from openseg_cli.inference.scoring import label_map
from openseg_cli.inference.zero_shot import ZeroShotSegmenter, parse_clip_spec
from openseg_cli.models.maskclip import (
    MaskClipResNet,
    MaskClipViT,
    build_dense_clip,
    interpolate_position_embedding,
)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter gets noise: LayerNorm weights 1 / biases 0 would hide a missing or swapped step."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.2 * torch.randn(param.shape, generator=gen))


@pytest.fixture(scope="module")
def vit_segmenter() -> ZeroShotSegmenter:
    torch.manual_seed(0)
    segmenter = ZeroShotSegmenter.from_clip("openseg-tiny-vit", None)
    _randomise(segmenter.dense, seed=1)
    return segmenter


def _layer_norm(x, ln):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def _gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def _reference_dense(visual, images, keep_residual: bool):
    """Independent of maskclip.py: open_clip's own embedding + first blocks, then the last block's value
    path written out with explicit matmuls on the raw weights. Native size only (no interpolation)."""
    x = visual._embeds(images)
    for block in visual.transformer.resblocks[:-1]:
        x = block(x)
    block = visual.transformer.resblocks[-1]
    width = x.shape[-1]
    w_qkv, b_qkv = block.attn.in_proj_weight, block.attn.in_proj_bias
    value = _layer_norm(x, block.ln_1) @ w_qkv[2 * width :].T + b_qkv[2 * width :]
    y = value @ block.attn.out_proj.weight.T + block.attn.out_proj.bias
    if keep_residual:
        y = x + y
        hidden = _gelu(_layer_norm(y, block.ln_2) @ block.mlp.c_fc.weight.T + block.mlp.c_fc.bias)
        y = y + hidden @ block.mlp.c_proj.weight.T + block.mlp.c_proj.bias
    return _layer_norm(y, visual.ln_post) @ visual.proj  # [B, 1 + L, D]; token 1 + i·gw + j = patch (i, j)


@pytest.mark.parametrize("keep_residual", [True, False])
def test_vit_dense_features_equal_a_step_by_step_reference(vit_segmenter, keep_residual: bool) -> None:
    visual = vit_segmenter.dense.visual
    route = MaskClipViT(visual, keep_residual=keep_residual)
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        dense = route(images)  # [B, D, 8, 8]
        reference = _reference_dense(visual, images, keep_residual)
    assert dense.shape == (2, 64, 8, 8)
    for i, j in [(0, 0), (0, 7), (3, 5), (7, 0), (7, 7)]:
        torch.testing.assert_close(dense[:, :, i, j], reference[:, 1 + i * 8 + j], rtol=1e-4, atol=1e-5)
    # Not a tautology: the reference's patch tokens differ from each other and from the class token.
    assert not torch.allclose(reference[:, 1], reference[:, 2], atol=1e-3)


def _uniform_tokens(visual, images):
    """Zero the positions and set the class token to the patch embedding of a constant image, so every
    token is identical in every block: attention over identical values returns that value."""
    with torch.no_grad():
        visual.positional_embedding.zero_()
        visual.class_embedding.copy_(visual.conv1(images)[0, :, 0, 0])


def test_vit_dense_features_equal_the_global_embedding_when_all_tokens_agree() -> None:
    torch.manual_seed(3)
    segmenter = ZeroShotSegmenter.from_clip("openseg-tiny-vit", None)
    _randomise(segmenter.dense, seed=4)
    visual = segmenter.dense.visual
    images = torch.ones(1, 3, 128, 128) * torch.tensor([0.3, -1.2, 0.8]).view(1, 3, 1, 1)
    _uniform_tokens(visual, images)
    with torch.no_grad():
        global_embed = visual(images)  # open_clip's route: class token → ln_post → proj, [1, D]
        dense = MaskClipViT(visual)(images)
        value_only = MaskClipViT(visual, keep_residual=False)(images)
    expected = global_embed[:, :, None, None].expand_as(dense)
    torch.testing.assert_close(dense, expected, rtol=1e-4, atol=1e-5)
    # The "value embedding only" variant leaves the space of the global embedding: the invariant fails.
    assert not torch.allclose(value_only, expected, rtol=1e-2, atol=1e-2)


def test_resnet_dense_feature_equals_the_attention_pool_of_a_uniform_map() -> None:
    torch.manual_seed(5)
    segmenter = ZeroShotSegmenter.from_clip("openseg-tiny-rn", None)
    visual = segmenter.dense.visual
    _randomise(visual.attnpool, seed=6)
    with torch.no_grad():
        visual.attnpool.positional_embedding.zero_()
        images = torch.randn(1, 3, 96, 160, generator=torch.Generator().manual_seed(7))
        dense = MaskClipResNet(visual)(images)  # [1, D, 3, 5]
        c5 = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(images)))))
        side = visual.image_size // 32
        for i, j in [(0, 0), (2, 4), (1, 3)]:
            # A map holding one position's vector everywhere: the pool's query, keys and values agree.
            uniform = c5[:, :, i : i + 1, j : j + 1].expand(-1, -1, side, side)
            torch.testing.assert_close(dense[:, :, i, j], visual.attnpool(uniform), rtol=1e-4, atol=1e-5)
    assert dense.shape == (1, 64, 3, 5)


def test_position_embedding_interpolation() -> None:
    pos = torch.randn(1 + 8 * 8, 16)
    assert interpolate_position_embedding(pos, (8, 8), (8, 8)) is pos  # native size: the identity
    # Rows constant along the width must stay so: a swapped (h, w) order would mix them.
    rows = torch.arange(8.0).view(8, 1, 1).expand(8, 8, 16).reshape(64, 16)
    grid_pos = torch.cat([torch.full((1, 16), 7.0), rows])
    resized = interpolate_position_embedding(grid_pos, (8, 8), (12, 5))
    assert resized.shape == (1 + 12 * 5, 16)
    assert torch.equal(resized[0], grid_pos[0])
    grid = resized[1:].reshape(12, 5, 16)
    torch.testing.assert_close(grid, grid[:, :1].expand_as(grid))
    assert bool((grid[1:, 0, 0] >= grid[:-1, 0, 0] - 1e-5).all())  # still increasing down the rows


def test_vit_runs_at_other_sizes_and_rejects_sizes_off_the_patch_grid(vit_segmenter) -> None:
    with torch.no_grad():
        assert vit_segmenter.dense(torch.randn(1, 3, 96, 160)).shape == (1, 64, 6, 10)
    with pytest.raises(UsageError, match="multiple of the CLIP tower's stride 16"):
        vit_segmenter.dense(torch.randn(1, 3, 100, 160))
    with pytest.raises(UsageError, match="multiple of 16"):
        vit_segmenter.check_size(200)


def test_scores_fit_label_map(vit_segmenter) -> None:
    # The same cached text path `predict` uses, fed with the segmenter's own text tower.
    embeds, valid = class_embeddings(vit_segmenter.text_encoder, [["cat"], ["dog", "puppy"], ["sky"]], None)
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        scores = vit_segmenter.scores(images, embeds, valid)
    assert scores.shape == (2, 3, 4, 6) and scores.dtype == torch.float32
    assert bool((scores >= 0).all())
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(2, 4, 6))
    labels = label_map(scores, out_size=(64, 96), valid_size=(60, 90), image_size=(120, 180))
    assert labels.shape == (2, 120, 180) and set(labels.unique().tolist()) <= {0, 1, 2}


def test_argmax_follows_the_text_embedding_aligned_with_each_patch(vit_segmenter) -> None:
    """Text embeddings equal to two patches' dense features: those patches get those classes."""
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        feats = vit_segmenter.dense_features(images)[0]  # [D, 4, 4], L2-normalised
    distractor = F.normalize(torch.randn(64, generator=torch.Generator().manual_seed(9)), dim=0)
    # class 0: distractor; class 1: padded synonym + patch (3, 1); class 2: patch (0, 2)
    embeds = torch.stack(
        [
            torch.stack([distractor, torch.zeros(64)]),
            torch.stack([torch.zeros(64), feats[:, 3, 1]]),
            torch.stack([feats[:, 0, 2], torch.zeros(64)]),
        ]
    )
    valid = torch.tensor([[True, False], [False, True], [True, False]])
    with torch.no_grad():
        scores = vit_segmenter.scores(images, embeds, valid)
    labels = label_map(scores, out_size=(4, 4))[0]
    assert labels[3, 1] == 1 and labels[0, 2] == 2
    # The max over synonyms skips the padded zero slot, and cosine 1 wins by a margin.
    assert scores[0, 1, 3, 1] > scores[0, 2, 3, 1] and scores[0, 2, 0, 2] > scores[0, 1, 0, 2]


def test_pretrained_weights_from_a_local_file(tmp_path) -> None:
    torch.manual_seed(10)
    source = ZeroShotSegmenter.from_clip("openseg-tiny-vit", None)
    import open_clip

    torch.manual_seed(11)
    model = open_clip.create_model("openseg-tiny-vit", pretrained=None)
    path = tmp_path / "tiny-vit.pt"
    torch.save(model.state_dict(), path)
    loaded = ZeroShotSegmenter.from_clip("openseg-tiny-vit", str(path))
    torch.testing.assert_close(loaded.dense.visual.proj, model.visual.proj)
    assert not torch.equal(loaded.dense.visual.proj, source.dense.visual.proj)


@pytest.mark.parametrize(
    ("pretrained", "needle"),
    [("no-such-tag", "neither a file nor a tag"), ("/nowhere/clip.safetensors", "file not found")],
)
def test_unavailable_weights_fail_with_one_line(pretrained: str, needle: str) -> None:
    with pytest.raises(PretrainedWeightsError, match=needle) as info:
        ZeroShotSegmenter.from_clip("openseg-tiny-vit", pretrained)
    assert "\n" not in str(info.value)


def test_offline_tag_fails_at_once(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedWeightsError, match="HF_HUB_OFFLINE"):
        ZeroShotSegmenter.from_clip("RN50-quickgelu", "openai")


def test_unsupported_tower_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="ViT or ModifiedResNet"):
        build_dense_clip(torch.nn.Linear(2, 2))


def test_parse_clip_spec() -> None:
    assert parse_clip_spec("ViT-B-16:openai") == ("ViT-B-16", "openai")
    assert parse_clip_spec("RN50") == ("RN50", None)
    assert parse_clip_spec("RN50:/w/c:d.pt") == ("RN50", "/w/c:d.pt")
    assert parse_clip_spec("hf-hub:org/repo") == ("hf-hub:org/repo", None)
    with pytest.raises(UsageError):
        parse_clip_spec(":openai")
