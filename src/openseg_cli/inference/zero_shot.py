"""Zero-shot segmentation with CLIP weights alone (no openseg checkpoint): MaskCLIP dense features
scored against class text embeddings (issue #4).

The scorer keeps the contract of `segmenter.segment_scores`: CLIP-normalised pixels [B, 3, S, S] and
class embeddings [C, S_syn, D] + valid [C, S_syn] (from `engine.text_cache.class_embeddings` with this
segmenter's `text_encoder`) → class scores [B, C, h, w] for `scoring.label_map`. The scores are the
`pixel` mask source's: per pixel, softmax over classes of CLIP's logit scale × max-synonym cosine
(prompt templates are averaged on the text side). h, w = S / stride (16 for ViT-B-16, 32 for RN50).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from openseg_cli.config.schema import ClipConfig
from openseg_cli.errors import UsageError
from openseg_cli.inference.scoring import pixel_scores
from openseg_cli.models.clip import ClipTowers
from openseg_cli.models.maskclip import build_dense_clip
from openseg_cli.models.text_encoder import TextEncoder

# CLIP's own cap on exp(logit_scale) (also openseg's MAX_LOGIT_SCALE).
MAX_LOGIT_SCALE = 100.0
# Default input side without a recipe (`predict --clip`, `evaluate --clip --shards`): a multiple of every
# CLIP stride (16, 32), twice CLIP's 224-pixel pre-training side.
ZERO_SHOT_SIZE = 448


def parse_clip_spec(spec: str) -> tuple[str, str | None]:
    """`MODEL[:PRETRAINED]` → (model, pretrained or None): "ViT-B-16:openai", "RN50:/w/rn50.pt".

    Only the first colon splits, so a pretrained path may hold colons; `hf-hub:` / `local-dir:` model
    names keep theirs. Raises UsageError for an empty model name.
    """
    prefix = ""
    for scheme in ("hf-hub:", "local-dir:"):
        if spec.startswith(scheme):
            prefix, spec = scheme, spec[len(scheme) :]
    name, _, pretrained = spec.partition(":")
    if not name.strip():
        raise UsageError(f"--clip needs MODEL[:PRETRAINED], e.g. ViT-B-16:openai, not {spec!r}")
    return prefix + name.strip(), (pretrained.strip() or None)


def load_zero_shot(spec: str, device: str | torch.device = "cpu") -> ZeroShotSegmenter:
    """`--clip MODEL:PRETRAINED` → a ZeroShotSegmenter on `device`. PRETRAINED is required, never a silent
    random init: an open_clip tag, a local file, or `none` for random weights (tests only), drawn from a
    fixed seed so that every process of `evaluate --devices N` and every run gets the same ones.

    Raises UsageError for a missing PRETRAINED or model name, and what `ZeroShotSegmenter.from_clip`
    raises (RecipeError for an unknown model, PretrainedWeightsError for weights not to be had offline).
    """
    name, pretrained = parse_clip_spec(spec)
    if pretrained is None:
        raise UsageError(
            f"--clip {spec}: say which weights, MODEL:PRETRAINED (an open_clip tag or a local file); "
            "MODEL:none gives random weights, which only tests want"
        )
    if pretrained.lower() != "none":
        return ZeroShotSegmenter.from_clip(name, pretrained, device)
    with torch.random.fork_rng(devices=[]):  # the caller's random state stays as it was
        torch.manual_seed(0)
        return ZeroShotSegmenter.from_clip(name, None, device)


class ZeroShotSegmenter(nn.Module):
    """A frozen CLIP as a segmenter: `scores(pixels, class_embeds, class_valid) -> [B, C, h, w]`.

    Args:
        dense: a MaskCLIP dense route (`models.maskclip.build_dense_clip`) with `.stride`.
        text_encoder: the same CLIP's text tower (`encode_classes` gives the class embeddings).
        logit_scale: CLIP's 1/τ (exp of its learned logit scale, capped at 100).
    """

    def __init__(self, dense: nn.Module, text_encoder: TextEncoder, logit_scale: float) -> None:
        super().__init__()
        self.dense = dense
        self.text_encoder = text_encoder
        self.logit_scale = float(logit_scale)
        self.eval()

    @classmethod
    def from_clip(
        cls,
        name: str,
        pretrained: str | None = None,
        device: str | torch.device = "cpu",
        config_file: str | None = None,
        keep_residual: bool = True,
    ) -> ZeroShotSegmenter:
        """Load open_clip `name` with `pretrained` (a tag, a local file, or None = random, for tests).

        Raises RecipeError for an unknown model, PretrainedWeightsError (one line) for weights that
        cannot be had offline, UsageError for a tower MaskCLIP cannot read.
        """
        towers = ClipTowers.from_config(ClipConfig(name, pretrained or None, config_file))
        dense = build_dense_clip(towers.visual, keep_residual=keep_residual)
        scale = getattr(towers.text, "logit_scale", None)  # log(1/τ), learned by CLIP
        logit_scale = 1 / 0.07 if scale is None else float(scale.detach().exp().clamp(max=MAX_LOGIT_SCALE))
        text_encoder = TextEncoder(towers.text, towers.tokenizer, freeze=True)
        segmenter = cls(dense, text_encoder, logit_scale).to(device)
        for param in segmenter.parameters():
            param.requires_grad = False
        return segmenter

    @property
    def stride(self) -> int:
        return int(self.dense.stride)

    def check_size(self, size: int) -> None:
        """UsageError unless `size` (the square input side) is a positive multiple of `stride`."""
        if size <= 0 or size % self.stride:
            raise UsageError(f"--size {size} must be a multiple of {self.stride} for this CLIP tower")

    def dense_features(self, pixels: Tensor) -> Tensor:
        """pixels [B, 3, H, W] (CLIP-normalised) → L2-normalised features [B, D, H/stride, W/stride]."""
        device = next(self.dense.parameters()).device
        return F.normalize(self.dense(pixels.to(device)).float(), dim=1)

    def scores(self, pixels: Tensor, class_embeds: Tensor, class_valid: Tensor) -> Tensor:
        """[B, C, h, w] float32 probabilities (≥ 0, sum 1 over classes), as `pixel_scores` returns.

        Raises UsageError for a size that is not a multiple of `stride`, ValueError (from `pixel_scores`)
        for class embeddings of the wrong shape or a class without a valid synonym.
        """
        feats = self.dense_features(pixels)
        return pixel_scores(feats, class_embeds, class_valid, self.logit_scale)
