"""Pure-torch OpenSeg model: CLIP backbone, FPN, heads, query decoder, text encoder, `build_model`."""

from openseg_cli.models.backbone import Backbone, ResNetBackbone, ViTBackbone, build_backbone
from openseg_cli.models.build import build_model
from openseg_cli.models.clip import ClipTowers, load_clip, register_clip_configs
from openseg_cli.models.decoder import QueryDecoder, sine_position_encoding
from openseg_cli.models.fpn import FPN
from openseg_cli.models.heads import ConvHead, pool_regions
from openseg_cli.models.openseg import OpenSegModel, SegOutput
from openseg_cli.models.text_encoder import TextEncoder

__all__ = [
    "FPN",
    "Backbone",
    "ClipTowers",
    "ConvHead",
    "OpenSegModel",
    "QueryDecoder",
    "ResNetBackbone",
    "SegOutput",
    "TextEncoder",
    "ViTBackbone",
    "build_backbone",
    "build_model",
    "load_clip",
    "pool_regions",
    "register_clip_configs",
    "sine_position_encoding",
]
