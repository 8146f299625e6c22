"""`run_evaluation` with every mask source and with grounding mIoU, on tiny toy shards and a random model."""

from __future__ import annotations

import json

import pytest
import torch

from openseg_cli.data.loader import build_eval_loader
from openseg_cli.engine.checkpoint import load_model
from openseg_cli.engine.evaluate import EvalRequest, _batch_labels, run_evaluation
from openseg_cli.eval.grounding import present_classes
from openseg_cli.inference.scorers import OpenSegScorer
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint, write_toy_shards


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    shards = write_toy_shards(root, "val2017", count=6, maxcount=3, seed=2)
    ckpt = root / "model.pt"
    write_tiny_checkpoint(ckpt, tiny_recipe("data.crop_size=64"))
    return shards, ckpt


@pytest.mark.parametrize("mask_source", ["pred", "pixel", "gt"])
@pytest.mark.parametrize("grounding", [False, True])
def test_every_image_is_counted_once_and_the_report_is_written(
    setup, tmp_path, mask_source, grounding
) -> None:
    shards, ckpt = setup
    options = {"mask_source": mask_source, "batch_size": 4, "workers": 0, "grounding": grounding}
    req = EvalRequest(ckpt, str(shards), **options)
    result = run_evaluation(req, tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    assert result["images"] == doc["meta"]["images"] == 6
    assert doc["meta"]["mask_source"] == mask_source and len(doc["per_class"]) == 9
    assert 0.0 <= doc["miou"] <= 1.0


def test_grounding_predicts_only_each_images_own_classes(setup) -> None:
    """With grounding, every predicted label is one of that image's ground-truth classes."""
    shards, ckpt = setup
    model, text_encoder, _ = load_model(ckpt)
    names = [[n] for n in ("circle", "square", "triangle", "star", "ring", "cross", "grass", "sand", "water")]
    embeds, valid = text_encoder.encode_classes(names, None)
    scorer = OpenSegScorer(model, text_encoder, "pred")
    with torch.inference_mode():
        for batch in build_eval_loader(shards, batch_size=3, crop_size=64, workers=0):
            labels = _batch_labels(scorer, batch, embeds, valid, grounding=True, device="cpu")
            for b in range(labels.shape[0]):
                allowed = set(present_classes(batch["semantic"][b]).tolist())
                assert set(labels[b].unique().tolist()) <= allowed | {-1}
