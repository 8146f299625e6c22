"""TextEncoder: per-word cache, class names with synonyms and templates, frozen vs trainable."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from openseg_cli.models import TextEncoder, build_model


@pytest.fixture(scope="module")
def text_encoder(tiny_config) -> TextEncoder:
    torch.manual_seed(0)
    return build_model(tiny_config("openseg-tiny-rn"))[1]


@pytest.fixture
def counted(text_encoder, monkeypatch):
    """Counts tower calls and the number of texts in each."""
    text_encoder.clear_cache()
    calls: list[int] = []
    original = text_encoder.clip.encode_text

    def encode_text(tokens):
        calls.append(tokens.shape[0])
        return original(tokens)

    monkeypatch.setattr(text_encoder.clip, "encode_text", encode_text)
    return text_encoder, calls


def test_cache_encodes_each_unique_word_once(counted):
    encoder, calls = counted
    first = encoder.encode(["cat", "dog", "cat"])
    assert calls == [2]  # one batch with the two unique misses
    assert first.shape == (3, encoder.embed_dim)
    torch.testing.assert_close(first[0], first[2])
    torch.testing.assert_close(first.norm(dim=-1), torch.ones(3))
    again = encoder.encode(["dog", "cat"])
    assert calls == [2]  # no new tower call
    assert torch.equal(again, first[[1, 0]])
    encoder.encode(["cat", "bird"])
    assert calls == [2, 1]  # only the miss
    assert encoder.encode([]).shape == (0, encoder.embed_dim)


def test_frozen_tower_has_no_grads_and_stays_in_eval(text_encoder):
    text_encoder.train()
    assert not text_encoder.clip.training
    assert not any(p.requires_grad for p in text_encoder.parameters())
    assert not text_encoder.encode(["tree"]).requires_grad


def test_encode_classes_synonyms_templates_and_valid_mask(counted):
    encoder, _ = counted
    classes = [["wall", "walls", "brick wall"], ["sky"]]
    templates = ["a photo of a {}.", "{}"]
    embeds, valid = encoder.encode_classes(classes, templates)
    assert embeds.shape == (2, 3, encoder.embed_dim)
    assert valid.tolist() == [[True, True, True], [True, False, False]]
    assert embeds[1, 1:].abs().sum() == 0
    torch.testing.assert_close(embeds[valid].norm(dim=-1), torch.ones(4))
    sky = encoder.encode(["a photo of a sky.", "sky"]).mean(dim=0)
    torch.testing.assert_close(embeds[1, 0], F.normalize(sky, dim=0))
    bare, _ = encoder.encode_classes([["sky"]])
    torch.testing.assert_close(bare[0, 0], encoder.encode(["sky"])[0])
    with pytest.raises(ValueError, match="'\\{\\}'"):
        encoder.encode_classes(classes, ["no placeholder"])


def test_trainable_tower_does_not_cache_and_passes_grads(tiny_config):
    model_cfg = tiny_config("openseg-tiny-rn", freeze_text=False)
    _, encoder = build_model(model_cfg)
    out = encoder.encode(["cat", "cat"])
    assert out.requires_grad
    out.sum().backward()
    assert encoder.clip.token_embedding.weight.grad is not None
    assert encoder._cache == {}
