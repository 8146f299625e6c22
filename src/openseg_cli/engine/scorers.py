"""`load_scorer`: what `evaluate` and `predict` score with — an openseg checkpoint, or CLIP weights alone
(`--clip MODEL:PRETRAINED`, zero-shot MaskCLIP) — as one `inference.scorers.Scorer` with the input side to
use by default; `scorer_meta`: what metrics.json and the prediction JSON record about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from openseg_cli.config.loader import CHOICES
from openseg_cli.engine.checkpoint import load_model
from openseg_cli.errors import UsageError
from openseg_cli.inference.scorers import OpenSegScorer, Scorer, ZeroShotScorer
from openseg_cli.inference.segmenter import MASK_SOURCES
from openseg_cli.inference.zero_shot import ZERO_SHOT_SIZE, load_zero_shot

INFERENCE_RULES = CHOICES[("inference", "rule")]
ZERO_SHOT_MASK_SOURCE = "pixel"  # MaskCLIP scores every pixel: there are no mask proposals to pool


class LoadedScorer(NamedTuple):
    scorer: Scorer
    size: int  # the default input side: the recipe's crop, or ZERO_SHOT_SIZE for CLIP weights alone


def checked_mask_source(checkpoint: Path | None, clip: str | None, mask_source: str | None) -> str:
    """The mask source to score with, checked before anything is loaded: `mask_source`, or by default
    `pred` for a checkpoint and `pixel` for `clip`.

    Raises UsageError unless exactly one of `checkpoint` and `clip` is given, for an unknown mask source,
    and for `pred`/`gt` with `clip` (zero-shot CLIP has no mask proposals, nor region embeddings to pool
    ground-truth masks into).
    """
    if (checkpoint is None) == (clip is None):
        raise UsageError("give either an openseg checkpoint or --clip MODEL[:PRETRAINED] (exactly one)")
    if mask_source is None:
        return ZERO_SHOT_MASK_SOURCE if clip else "pred"
    if mask_source not in MASK_SOURCES:
        raise UsageError(f"unknown mask source {mask_source!r}; choose {' | '.join(MASK_SOURCES)}")
    if clip and mask_source != ZERO_SHOT_MASK_SOURCE:
        raise UsageError(
            f"--mask-source {mask_source} needs an openseg checkpoint: --clip scores every pixel with "
            f"MaskCLIP's dense features (leave --mask-source out, or pass {ZERO_SHOT_MASK_SOURCE})"
        )
    return mask_source


def checked_rule(clip: str | None, rule: str | None) -> str | None:
    """`rule` (None: the checkpoint recipe's `inference.rule`), checked before anything is loaded.

    Raises UsageError for a rule not in `inference.rule`'s choices, and for any rule with `clip` (MaskCLIP
    scores pixels: there are no proposals to combine).
    """
    if rule is None:
        return None
    if clip is not None:
        raise UsageError("--rule combines mask proposals; --clip has none (leave --rule out)")
    if rule not in INFERENCE_RULES:
        raise UsageError(f"unknown rule {rule!r}; choose {' | '.join(INFERENCE_RULES)}")
    return rule


def load_scorer(
    checkpoint: Path | None,
    clip: str | None,
    mask_source: str | None,
    device: str | torch.device,
    rule: str | None = None,
) -> LoadedScorer:
    """Load exactly one of `checkpoint` (an openseg model.pt / .ckpt) and `clip` ("MODEL:PRETRAINED",
    `inference.zero_shot.load_zero_shot`) on `device`, scoring with `checked_mask_source`'s mask source
    (and, for a checkpoint, `rule` or else its recipe's `inference.rule`).

    Raises UsageError as `checked_mask_source` does, plus the loaders' errors: InputFileError /
    CheckpointError for a checkpoint; RecipeError / PretrainedWeightsError for CLIP weights (e.g. an
    open_clip tag that cannot be downloaded offline).
    """
    mask_source = checked_mask_source(checkpoint, clip, mask_source)
    rule = checked_rule(clip, rule)
    if clip is not None:
        return LoadedScorer(ZeroShotScorer(load_zero_shot(clip, device)), ZERO_SHOT_SIZE)
    model, text_encoder, recipe = load_model(checkpoint, device)
    scorer = OpenSegScorer(model, text_encoder, mask_source, rule or recipe.inference.rule)  # as validation
    return LoadedScorer(scorer, recipe.data.crop_size)


def scorer_meta(
    checkpoint: Path | None, clip: str | None, mask_source: str | None, rule: str | None = None
) -> dict:
    """What was evaluated / predicted with, for the output files: {"checkpoint": path, "mask_source": …,
    "rule": `rule`, or "recipe" for the checkpoint recipe's inference.rule} or {"clip": "MODEL:PRETRAINED",
    "mask_source": "maskclip (zero-shot dense CLIP)"}."""
    if clip is not None:
        return {"clip": clip, "mask_source": "maskclip (zero-shot dense CLIP)"}
    mask_source = checked_mask_source(checkpoint, clip, mask_source)
    return {"checkpoint": str(checkpoint), "mask_source": mask_source, "rule": rule or "recipe"}
