"""Tiny recipes, models and checkpoints for engine and CLI tests (random init, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import torch

from openseg_cli.config import Recipe, load_recipe

REPO = Path(__file__).resolve().parents[2]
TOY_RECIPE = REPO / "recipes" / "toy.yaml"

# `--set`-style overrides that shrink any recipe to a model built in well under a second on CPU:
# the packaged tiny open_clip config, random init, narrow heads and a one-layer decoder.
TINY_MODEL_OVERRIDES = (
    "model.clip.name=openseg-tiny-rn",
    "model.clip.pretrained=null",
    "model.clip.config_file=null",
    "model.fpn_dim=16",
    "model.head_width=16",
    "model.head_convs=1",
    "model.num_queries=4",
    "model.decoder_dim=16",
    "model.decoder_layers=1",
    "model.decoder_heads=2",
    "model.vit_pyramid_dim=16",
)


def tiny_recipe(*extra: str, path: Path = TOY_RECIPE) -> Recipe:
    """`path` (default: toy.yaml) with the tiny model overrides, then `extra` overrides."""
    return load_recipe(path, [*TINY_MODEL_OVERRIDES, *extra])


def combined_state_dict(model: torch.nn.Module, text_encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The keys a LightningModule holding `model` and `text_encoder` would save."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state.update({f"text_encoder.{k}": v for k, v in text_encoder.state_dict().items()})
    return state


def write_tiny_checkpoint(path: Path, recipe: Recipe | None = None, seed: int = 0):
    """Build a random tiny model (seeded) and write it as a slim `model.pt`; returns (recipe, model, text)."""
    from openseg_cli.engine.checkpoint import write_slim_checkpoint
    from openseg_cli.models import build_model

    recipe = recipe or tiny_recipe("data.crop_size=32")
    torch.manual_seed(seed)
    model, text_encoder = build_model(recipe.model)
    write_slim_checkpoint(path, recipe, combined_state_dict(model, text_encoder))
    return recipe, model.eval(), text_encoder.eval()


def write_toy_shards(root: Path, split: str, count: int, maxcount: int, seed: int = 0) -> Path:
    """`count` 64-px toy images of `split` ("train2017" | "val2017") as shards in `root/shards-<split>`."""
    from openseg_cli.data.coco import coco_paths, write_coco_shards
    from openseg_cli.data.toy import write_toy_dataset

    train, val = (count, 0) if split == "train2017" else (0, count)
    write_toy_dataset(root / "toy", num_train=train, num_val=val, image_size=64, seed=seed)
    out = root / f"shards-{split}"
    write_coco_shards(coco_paths(root / "toy", split), out, split, maxcount=maxcount)
    return out
