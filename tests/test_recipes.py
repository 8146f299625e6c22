"""Every shipped recipe loads and builds (with a tiny backbone swapped in), and the seed recipes hold the
paper's numbers. Parametrised over the `recipes/` listing, so a new recipe is covered without an edit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from openseg_cli.config import load_recipe
from openseg_cli.errors import RecipeError
from tests.engine.helpers import TINY_MODEL_OVERRIDES

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
RECIPE_FILES = sorted(RECIPES.glob("*.yaml"))


def test_the_seed_recipes_are_shipped() -> None:
    assert {"coco", "coco_narratives", "teacher", "toy"} <= {p.stem for p in RECIPE_FILES}


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.stem)
def test_recipe_loads_and_is_named_after_its_file(path: Path) -> None:
    """`openseg train recipes/X.yaml` writes runs/train/X: the recipe's name is its file stem."""
    assert load_recipe(path).name == path.stem


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.stem)
def test_recipe_builds_with_a_tiny_backbone(path: Path) -> None:
    """The recipe's model and loss sections are accepted by build_model/build_criterion and run forward."""
    from openseg_cli.losses import build_criterion
    from openseg_cli.models import build_model

    full = load_recipe(path)
    tiny = load_recipe(path, TINY_MODEL_OVERRIDES)
    # Only the model's size changed: the recipe's own choices (freezing, loss, temperature) are built.
    assert tiny.loss == full.loss
    assert tiny.model.freeze_backbone == full.model.freeze_backbone
    assert tiny.model.temperature_init == full.model.temperature_init

    torch.manual_seed(0)
    model, text_encoder = build_model(tiny.model)
    criterion = build_criterion(tiny.loss)
    assert criterion.segmentation_weight == full.loss.segmentation_weight
    assert criterion.grounding_weight == full.loss.grounding_weight

    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 64, 64))
    n, d = tiny.model.num_queries, text_encoder.embed_dim
    assert out.mask_logits.shape == (1, n, 16, 16)  # masks at H/4, W/4
    assert out.region_embeds.shape == (1, n, d)
    assert float(out.logit_scale) == pytest.approx(1.0 / full.model.temperature_init, rel=1e-4)
    # The text tower follows the recipe's freeze_text.
    assert all(p.requires_grad != full.model.freeze_text for p in text_encoder.parameters())


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: p.stem)
def test_recipe_global_batch_divides_on_its_own_devices(path: Path) -> None:
    """`train` derives gradient accumulation from the recipe: it must be a whole number as shipped."""
    from openseg_cli.engine.train import accumulation, world_size_of

    recipe = load_recipe(path)
    steps = accumulation(recipe, world_size_of(recipe))
    assert steps * recipe.data.batch_size * world_size_of(recipe) == recipe.trainer.global_batch_size


def test_coco_holds_the_seed_schedule() -> None:
    r = load_recipe(RECIPES / "coco.yaml")
    assert r.trainer.global_batch_size == 1024
    assert r.trainer.max_steps == 30000
    assert r.data.crop_size == 640
    assert (r.loss.segmentation_weight, r.loss.grounding_weight) == (4.0, 1.0)
    assert r.loss.segmentation == "max_dice"
    assert r.data.word_keep_prob == 0.75
    assert r.optim.schedule == "cosine"
    assert r.model.clip.pretrained == "openai"  # CLIP-initialised backbone
    assert r.model.num_queries == 128 and r.model.head_width == 640
    assert r.data.mix_shards == ""  # COCO only


def test_coco_narratives_doubles_the_steps_and_mixes_two_sources() -> None:
    coco = load_recipe(RECIPES / "coco.yaml")
    r = load_recipe(RECIPES / "coco_narratives.yaml")
    assert r.trainer.max_steps == 60000
    assert r.data.mix_shards and r.data.mix_probability == 0.5  # equal probability
    # Everything else comes from coco.yaml through `base:`.
    assert r.data.crop_size == 640 and r.trainer.global_batch_size == 1024
    assert r.loss == coco.loss and r.model == coco.model and r.optim == coco.optim


def test_teacher_trains_the_segmentation_loss_only() -> None:
    coco = load_recipe(RECIPES / "coco.yaml")
    r = load_recipe(RECIPES / "teacher.yaml")
    assert r.loss.grounding_weight == 0.0
    assert r.loss.segmentation_weight == 4.0
    assert dataclasses.replace(r.loss, grounding_weight=1.0) == coco.loss


def test_toy_openvocab_is_the_papers_configuration_on_the_toy_clip() -> None:
    """Issue #8: pretrained tower fine-tuned, frozen text tower, one caption per step with words kept at
    p = 0.75, losses 4:1; the crop is the toy CLIP's own image size (a CLIP is used at its scale)."""
    import open_clip

    from openseg_cli.models.clip import register_clip_configs

    register_clip_configs()
    r = load_recipe(RECIPES / "toy_openvocab.yaml")
    assert r.model.clip.name == "openseg-toy-clip" and r.model.clip.pretrained.endswith(".safetensors")
    assert r.model.freeze_text and not r.model.freeze_backbone
    assert (r.data.caption_sampling, r.data.word_keep_prob) == ("one", 0.75)
    assert (r.loss.segmentation_weight, r.loss.grounding_weight) == (4.0, 1.0)
    assert r.data.crop_size == open_clip.get_model_config("openseg-toy-clip")["vision_cfg"]["image_size"]
    unfrozen = load_recipe(RECIPES / "toy_openvocab_text_unfrozen.yaml")
    assert not unfrozen.model.freeze_text
    assert dataclasses.replace(unfrozen.model, freeze_text=True) == r.model and unfrozen.data == r.data


def test_coco_accumulation_on_eight_devices() -> None:
    """1024 = 16 per device × 8 devices × 8 accumulation steps."""
    from openseg_cli.engine.train import accumulation, world_size_of

    r = load_recipe(RECIPES / "coco.yaml")
    assert world_size_of(r) == 8
    assert accumulation(r, 8) == 8
    assert accumulation(r, 64) == 1
    assert world_size_of(load_recipe(RECIPES / "coco.yaml", ["trainer.num_nodes=2"])) == 16


def test_accumulation_refuses_a_batch_that_does_not_divide() -> None:
    from openseg_cli.engine.train import accumulation

    r = load_recipe(RECIPES / "coco.yaml")
    with pytest.raises(RecipeError, match="global_batch_size=1024"):
        accumulation(r, 3)  # 16 × 3 = 48 does not divide 1024
    with pytest.raises(RecipeError):
        accumulation(load_recipe(RECIPES / "coco.yaml", ["data.batch_size=24"]), 1)


def test_accumulation_refuses_a_global_batch_smaller_than_one_step() -> None:
    from openseg_cli.engine.train import accumulation

    with pytest.raises(RecipeError):
        accumulation(load_recipe(RECIPES / "coco.yaml"), 128)  # 16 × 128 = 2048 > 1024


def test_accumulation_refuses_a_zero_batch_size() -> None:
    from openseg_cli.engine.train import accumulation

    with pytest.raises(RecipeError, match="batch_size"):
        accumulation(load_recipe(RECIPES / "toy.yaml", ["data.batch_size=0"]), 1)


def test_accumulation_refuses_negative_batch_sizes() -> None:
    from openseg_cli.engine.train import accumulation

    recipe = load_recipe(RECIPES / "toy.yaml", ["data.batch_size=-4", "trainer.global_batch_size=-16"])
    with pytest.raises(RecipeError, match="batch_size"):
        accumulation(recipe, 1)
