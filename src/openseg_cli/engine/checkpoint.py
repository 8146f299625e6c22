"""Load and write openseg checkpoints (no Lightning import: usable from plain torch code).

Two files are openseg checkpoints: Lightning's training checkpoints (`checkpoints/*.ckpt`) and the slim
`model.pt` written at the end of training. Both hold `hyper_parameters = {"recipe": …, "openseg_format": 1}`
and a `state_dict` with `model.*` and `text_encoder.*` keys, so one loader reads both. Files are always read
with `torch.load(weights_only=True)`: a checkpoint cannot run code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from openseg_cli.atomic import atomic_write
from openseg_cli.config import Recipe, recipe_from_dict, recipe_to_dict
from openseg_cli.errors import CheckpointError, InputFileError, RecipeError

CHECKPOINT_FORMAT = 1
_PREFIXES = ("model.", "text_encoder.")


def read_checkpoint(path: str | Path) -> tuple[Recipe, dict[str, torch.Tensor]]:
    """Return (recipe, state_dict) of an openseg checkpoint.

    Raises InputFileError (missing/unreadable) or CheckpointError (not a torch file, not openseg's,
    saved by an incompatible version, or a recipe the code no longer understands).
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - garbage bytes raise KeyError, IndexError, struct.error, …
        raise CheckpointError(
            f"{path} is not an openseg checkpoint (torch cannot read it: {_first_line(err)})"
        ) from None
    hparams = data.get("hyper_parameters") if isinstance(data, dict) else None
    if not isinstance(hparams, dict) or "openseg_format" not in hparams or "state_dict" not in data:
        raise CheckpointError(f"{path} is not an openseg checkpoint (no openseg recipe inside)")
    if hparams["openseg_format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {hparams['openseg_format']} is not supported (this openseg reads "
            f"format {CHECKPOINT_FORMAT})"
        )
    try:
        recipe = recipe_from_dict(hparams["recipe"], source=f"{path} (saved recipe)")
    except RecipeError as err:
        raise CheckpointError(str(err)) from None
    state = {k: v for k, v in data["state_dict"].items() if k.startswith(_PREFIXES)}
    return recipe, state


def _first_line(err: Exception) -> str:
    """The cause in a few words; torch's advice to retry with weights_only=False is dropped on purpose."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(err).__name__
    return text if "weights_only" not in text else type(err).__name__


def load_model(path: str | Path, device: str | torch.device = "cpu"):
    """Build the model and text encoder a checkpoint describes and load its weights (eval mode).

    Returns (model, text_encoder, recipe). Weights that do not fit the built model → CheckpointError.
    Pretrained weights are never downloaded here: the checkpoint already holds every weight.
    """
    from dataclasses import replace

    from openseg_cli.models import build_model

    recipe, state = read_checkpoint(path)
    clip = replace(recipe.model.clip, pretrained=None)  # the checkpoint holds the trained weights
    logging.disable(logging.WARNING)  # open_clip's "initialized randomly" is untrue here: weights follow
    try:
        model, text_encoder = build_model(replace(recipe.model, clip=clip))
    finally:
        logging.disable(logging.NOTSET)
    _load_prefixed(model, state, "model.", path)
    _load_prefixed(text_encoder, state, "text_encoder.", path)
    model.to(device).eval()
    text_encoder.to(device).eval()
    return model, text_encoder, recipe


def _load_prefixed(module: torch.nn.Module, state: dict, prefix: str, path) -> None:
    sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        module.load_state_dict(sub, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit the model its recipe describes ({first})"
        ) from None


def write_slim_checkpoint(
    path: str | Path, recipe: Recipe, state_dict: dict[str, torch.Tensor], extra=None
) -> None:
    """Weights + recipe only (no optimiser state): the file to share and to pass to `predict`."""
    path = Path(path)
    payload = {
        "hyper_parameters": {"recipe": recipe_to_dict(recipe), "openseg_format": CHECKPOINT_FORMAT},
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items() if k.startswith(_PREFIXES)},
        "openseg": dict(extra or {}),
    }
    atomic_write(path, lambda file: torch.save(payload, file))
