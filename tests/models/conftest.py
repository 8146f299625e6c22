"""Tiny model configs: random open_clip towers shipped with the package, small heads and decoder."""

from __future__ import annotations

import pytest

from openseg_cli.config.schema import ClipConfig, ModelConfig


def tiny_model_config(name: str = "openseg-tiny-rn", **overrides) -> ModelConfig:
    fields = dict(
        clip=ClipConfig(name=name),
        fpn_dim=32,
        head_width=48,
        head_convs=2,
        num_queries=6,
        decoder_dim=32,
        decoder_layers=2,
        decoder_heads=4,
        vit_pyramid_dim=32,
    )
    fields.update(overrides)
    return ModelConfig(**fields)


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(name="openseg-tiny-rn", **overrides) -> ModelConfig`."""
    return tiny_model_config
