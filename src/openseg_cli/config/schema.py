"""Frozen dataclasses for every recipe section; YAML keys are exactly these field names.

Defaults are the seed's COCO recipe (METHOD.md); `recipes/*.yaml` override what differs.
Fields tagged [ours] are decisions the paper leaves open.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ClipConfig:
    """Which open_clip model gives the backbone and the text tower."""

    name: str = "RN50"  # open_clip model name, e.g. RN50, RN101, ViT-B-16
    pretrained: str | None = None  # open_clip tag ("openai"), a local .pt/.safetensors path, or null = random
    config_file: str | None = None  # optional open_clip model-config JSON to register (custom / tiny towers)


@dataclass(frozen=True)
class ModelConfig:
    clip: ClipConfig = field(default_factory=ClipConfig)
    freeze_backbone: bool = False
    freeze_text: bool = True  # [paper] the text encoder stays frozen
    fpn_dim: int = 256  # [ours] FPN width
    head_width: int = 640  # [paper] width of F_s and F_z
    head_convs: int = 3  # [paper] 3x3 convs after the fc layer
    num_queries: int = 128  # [paper] N
    decoder_dim: int = 256  # [ours] query width
    decoder_layers: int = 6  # [ours] Mask2Former-style depth
    decoder_heads: int = 8  # [ours]
    vit_pyramid_dim: int = 256  # [ours] simple-feature-pyramid width for ViT towers
    temperature_init: float = 0.07  # [ours] tau of the grounding softmaxes, learnable (CLIP's init)
    # [ours] masks pooled into region embeddings: "soft" (sigmoid, the grounding gradient reaches the
    # masks) | "detached" (sigmoid, no gradient) | "binary" (> 0.5, no gradient; ODISE's choice)
    mask_pooling: str = "soft"
    # [ours] add the CLIP tower's own dense joint-space features (MaskCLIP: the ResNet attention pool's
    # value/output projections, a ViT's last-block value path + proj) to J = region_proj(F_z); region_proj
    # then starts at zero, so region embeddings start as CLIP's own and training learns a correction
    clip_dense: bool = False


@dataclass(frozen=True)
class LossConfig:
    segmentation: str = "max_dice"  # [paper] "max_dice" | [ours] "hungarian" (dice + BCE, scipy)
    segmentation_weight: float = 4.0  # [seed] 4:1
    grounding_weight: float = 1.0
    hungarian_bce_weight: float = 1.0  # only for segmentation: hungarian
    # [ours] "batch": mean over every mask of the batch | "image": per image, then over images (METHOD §3)
    segmentation_reduction: str = "batch"
    grounding_negatives: str = "device"  # [paper] "device" | "all_gather" (negatives from every rank)


@dataclass(frozen=True)
class DataConfig:
    train_shards: str = ""  # folder of shards (or a brace pattern) with the training samples
    val_shards: str = ""  # held-out split for validation during training (never a benchmark set)
    mix_shards: str = ""  # optional second source (e.g. pseudo-labelled Localized Narratives shards)
    mix_probability: float = 0.5  # [paper] COCO and Localized Narratives sampled with equal probability
    crop_size: int = 640  # [seed] 640x640 crops
    scale_range: tuple[float, float] = (0.5, 2.0)  # [ours] large-scale jitter before the crop
    hflip: bool = True
    word_keep_prob: float = 0.75  # [seed] each word is kept with this probability
    caption_sampling: str = "one"  # [ours] "one": one caption per image per step | "all": union of all
    max_words: int = 16  # [ours] words per caption after keep-prob sampling (K pad)
    workers: int = 4
    shuffle_buffer: int = 1000
    batch_size: int = 16  # per device
    strict: bool = False  # a corrupt shard or sample stops the run instead of being counted and skipped


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = "sgd"  # [ours] "sgd" (momentum 0.9) | "adamw"
    lr: float = 0.005  # [paper] with a CLIP/ALIGN-initialised backbone
    backbone_lr_mult: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 1e-5  # [paper]
    schedule: str = "cosine"  # [paper] cosine decay
    warmup_steps: int = 1000
    grad_clip: float = 0.0  # 0 = off


@dataclass(frozen=True)
class TrainerConfig:
    max_steps: int = 30000  # [seed] 30k steps on COCO
    global_batch_size: int = 1024  # [seed]; must equal batch_size x devices x nodes x accumulate
    devices: int | str = 1
    num_nodes: int = 1
    accelerator: str = "auto"
    precision: int | str = "32-true"  # "bf16-mixed" on GPUs
    val_every_steps: int = 1000
    checkpoint_every_steps: int = 1000
    log_every_steps: int = 50
    seed: int = 0


@dataclass(frozen=True)
class InferenceConfig:
    """How a trained model turns proposals into pixel labels (evaluate, predict, validation)."""

    # [ours] "sum": S(p,c) = sum_i s_i(p) p_i(c) | "max": max_i s_i(p) p_i(c), the release's rule
    rule: str = "sum"


@dataclass(frozen=True)
class Recipe:
    name: str = "openseg"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
