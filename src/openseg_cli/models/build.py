"""`build_model`: the one place that reads `ModelConfig`; every constructor below takes ready objects."""

from __future__ import annotations

from torch import nn

from openseg_cli.config.schema import ModelConfig
from openseg_cli.models.backbone import build_backbone
from openseg_cli.models.clip import ClipTowers
from openseg_cli.models.decoder import QueryDecoder
from openseg_cli.models.fpn import FPN
from openseg_cli.models.heads import ConvHead
from openseg_cli.models.openseg import OpenSegModel
from openseg_cli.models.text_encoder import TextEncoder


def build_model(model_cfg: ModelConfig) -> tuple[OpenSegModel, TextEncoder]:
    """Build the segmentation model and the text encoder from one open_clip model.

    The visual tower becomes the backbone (frozen when `freeze_backbone`), the text tower the
    TextEncoder (frozen when `freeze_text`); D, the region embedding dim, is the text embedding dim.
    With `clip_dense` the backbone keeps the tower's joint-space projection and `region_proj` starts at
    zero (see `OpenSegModel`).
    Failure modes are those of `load_clip`: RecipeError (unknown model), PretrainedWeightsError
    (weights asked for but unavailable), InputFileError (missing `clip.config_file`).
    """
    towers = ClipTowers.from_config(model_cfg.clip)
    backbone = build_backbone(towers.visual, model_cfg.vit_pyramid_dim, model_cfg.clip_dense)
    if model_cfg.freeze_backbone:
        backbone.freeze()
    text_encoder = TextEncoder(towers.text, towers.tokenizer, freeze=model_cfg.freeze_text)
    width = model_cfg.head_width
    region_proj = nn.Linear(width, text_encoder.embed_dim)
    if model_cfg.clip_dense:  # start from CLIP's own region embeddings: the learned part adds to them
        nn.init.zeros_(region_proj.weight)
        nn.init.zeros_(region_proj.bias)
    decoder = QueryDecoder(
        num_queries=model_cfg.num_queries,
        dim=model_cfg.decoder_dim,
        layers=model_cfg.decoder_layers,
        heads=model_cfg.decoder_heads,
        in_dim=width,
        mask_dim=width,
    )
    model = OpenSegModel(
        backbone=backbone,
        fpn=FPN(backbone.channels, model_cfg.fpn_dim),
        mask_head=ConvHead(model_cfg.fpn_dim, width, model_cfg.head_convs),
        embed_head=ConvHead(model_cfg.fpn_dim, width, model_cfg.head_convs),
        decoder=decoder,
        region_proj=region_proj,
        logit_scale_init=1.0 / model_cfg.temperature_init,
        mask_pooling=model_cfg.mask_pooling,
    )
    return model, text_encoder
