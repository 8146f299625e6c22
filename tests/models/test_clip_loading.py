"""Tiny config registry and pretrained weights: tags, files, offline hubs, one-line errors, fast."""

from __future__ import annotations

import time

import open_clip
import pytest
import torch

from openseg_cli.config.schema import ClipConfig
from openseg_cli.errors import InputFileError, PretrainedWeightsError, RecipeError
from openseg_cli.models import clip as clip_module
from openseg_cli.models import load_clip, register_clip_configs


def test_tiny_configs_are_registered():
    names = register_clip_configs()
    assert {"openseg-tiny-rn", "openseg-tiny-vit", "openseg-toy-clip"} <= set(names)
    assert {"openseg-tiny-rn", "openseg-tiny-vit", "openseg-toy-clip"} <= set(open_clip.list_models())


def _assert_fast_one_line_error(cfg: ClipConfig, *fragments: str) -> str:
    start = time.monotonic()
    with pytest.raises(PretrainedWeightsError) as info:
        load_clip(cfg)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message
    for fragment in (cfg.name, "clip.pretrained: /path/to/", *fragments):
        assert fragment in message
    return message


def test_unknown_tag_is_a_clear_error():
    _assert_fast_one_line_error(ClipConfig(name="openseg-tiny-rn", pretrained="not-a-tag"), "not-a-tag")


def test_missing_file_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "nope.safetensors")
    _assert_fast_one_line_error(ClipConfig(name="openseg-tiny-rn", pretrained=missing), missing)


def test_hub_tag_fails_fast_when_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(clip_module, "_cached_hub_file", lambda hub_id: None)
    _assert_fast_one_line_error(
        ClipConfig(name="RN50-quickgelu", pretrained="openai"), "openai", "HF_HUB_OFFLINE"
    )


def test_openai_weights_on_a_gelu_model_warn(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(clip_module, "_cached_hub_file", lambda hub_id: None)
    with pytest.warns(UserWarning, match="RN50-quickgelu"), pytest.raises(PretrainedWeightsError):
        load_clip(ClipConfig(name="RN50", pretrained="openai"))


def test_hub_tag_fails_fast_when_unreachable(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(clip_module, "_cached_hub_file", lambda hub_id: None)
    monkeypatch.setattr(clip_module, "_reachable", lambda url: False)
    _assert_fast_one_line_error(ClipConfig(name="RN50-quickgelu", pretrained="openai"), "unreachable")


def test_local_file_loads_its_weights(tmp_path):
    torch.manual_seed(0)
    source = load_clip(ClipConfig(name="openseg-tiny-vit"))
    path = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), path)
    loaded = load_clip(ClipConfig(name="openseg-tiny-vit", pretrained=str(path)))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_file_with_wrong_weights_is_a_pretrained_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(load_clip(ClipConfig(name="openseg-tiny-vit")).state_dict(), path)
    _assert_fast_one_line_error(ClipConfig(name="openseg-tiny-rn", pretrained=str(path)))


def test_unknown_model_name_suggests_close_matches():
    with pytest.raises(RecipeError, match="openseg-tiny-rn"):
        load_clip(ClipConfig(name="openseg-tiny-rm"))


def test_missing_config_file_is_an_input_error(tmp_path):
    with pytest.raises(InputFileError, match="config_file"):
        load_clip(ClipConfig(name="x", config_file=str(tmp_path / "x.json")))
