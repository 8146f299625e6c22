"""Query decoder pieces: the sine positional encoding by hand, shapes and argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from openseg_cli.models import QueryDecoder, sine_position_encoding


def test_sine_encoding_by_hand():
    # dim 4: one frequency (1) per axis; a 1x2 grid has y = pi (centre) and x = pi/2, 3pi/2.
    pe = sine_position_encoding(1, 2, 4)
    expected = [
        [math.sin(math.pi), math.cos(math.pi), math.sin(math.pi / 2), math.cos(math.pi / 2)],
        [math.sin(math.pi), math.cos(math.pi), math.sin(3 * math.pi / 2), math.cos(3 * math.pi / 2)],
    ]
    torch.testing.assert_close(pe, torch.tensor(expected), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="multiple of 4"):
        sine_position_encoding(2, 2, 6)


def test_decoder_shapes_and_mask_logits_are_dot_products():
    torch.manual_seed(0)
    decoder = QueryDecoder(num_queries=5, dim=16, layers=1, heads=2, in_dim=12, mask_dim=12)
    feats = torch.randn(2, 12, 6, 4)
    queries = decoder(feats)
    assert queries.shape == (2, 5, 16)
    logits = decoder.mask_logits(queries, feats)
    assert logits.shape == (2, 5, 6, 4)
    by_hand = (decoder.mask_embed(queries)[1, 3] * feats[1, :, 2, 1]).sum()
    torch.testing.assert_close(logits[1, 3, 2, 1], by_hand)
    with pytest.raises(ValueError, match="divisible"):
        QueryDecoder(num_queries=5, dim=18, layers=1, heads=4, in_dim=12, mask_dim=12)
