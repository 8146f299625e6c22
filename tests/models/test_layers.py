"""Small building blocks: GroupNorm that takes single-value groups."""

from __future__ import annotations

import torch
from tests.engine.helpers import tiny_recipe

from openseg_cli.models.layers import group_norm


def test_group_norm_matches_torch_and_gives_the_bias_for_single_value_groups() -> None:
    torch.manual_seed(0)
    norm = group_norm(16)  # 16 groups of one channel
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    x = torch.randn(2, 16, 3, 5)
    reference = torch.nn.functional.group_norm(x, 16, norm.weight, norm.bias, norm.eps)
    torch.testing.assert_close(norm(x), reference)
    one = torch.randn(1, 16, 1, 1)  # one value per group: torch.nn.GroupNorm raises here
    torch.testing.assert_close(norm(one), norm.bias.view(1, 16, 1, 1).detach().expand(1, 16, 1, 1))


def test_tiny_model_segments_one_32px_image() -> None:
    """Batch 1 at 32 px: the stride-32 map is 1×1 and the narrow FPN has one channel per group."""
    from openseg_cli.models import build_model

    model, _ = build_model(tiny_recipe("data.crop_size=32").model)
    with torch.inference_mode():
        out = model.eval()(torch.randn(1, 3, 32, 32))
    assert out.mask_logits.shape[0] == 1 and torch.isfinite(out.mask_logits).all()
