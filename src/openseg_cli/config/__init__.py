"""Recipes: frozen dataclasses read from YAML with strict keys and `--set a.b=c` overrides."""

from openseg_cli.config.loader import dump_recipe, load_recipe, recipe_from_dict, recipe_to_dict
from openseg_cli.config.schema import (
    ClipConfig,
    DataConfig,
    InferenceConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    Recipe,
    TrainerConfig,
)

__all__ = [
    "ClipConfig",
    "DataConfig",
    "InferenceConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "Recipe",
    "TrainerConfig",
    "dump_recipe",
    "load_recipe",
    "recipe_from_dict",
    "recipe_to_dict",
]
