"""`run_benchmark_evaluation` on prepared semantic benchmarks: the original-resolution protocol with an
oracle scorer, a real ADE-150 sample with a tiny model, and 2 processes against 1."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from openseg_cli.data.semantic import LAYOUTS
from openseg_cli.data.transforms import CLIP_MEAN, CLIP_STD
from openseg_cli.engine import evaluate_benchmark
from openseg_cli.engine.evaluate_benchmark import BenchmarkRequest, run_benchmark_evaluation
from openseg_cli.engine.evaluate_examples import example_indices
from openseg_cli.engine.scorers import load_scorer
from openseg_cli.errors import InputFileError, UsageError
from openseg_cli.inference.scorers import OpenSegScorer
from tests.engine.benchmark_helpers import write_ade150_sample, write_label, write_synthetic_benchmark
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    write_tiny_checkpoint(path, tiny_recipe("data.crop_size=64"))
    return path


def _write_coded(root, sizes, seed=0):
    """ADE-150-layout images whose red channel encodes the label (40·c + 20, c < 5), stored losslessly
    (PNG bytes under a .jpg name: the reader sniffs the format); labels with ~10 % ignore."""
    layout = LAYOUTS[("ade150", "detectron2")]
    (root / layout.image_dir).mkdir(parents=True)
    (root / layout.label_dir).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for index, (height, width) in enumerate(sizes):
        rows = (np.arange(height) * 3 // height)[:, None]
        label = (rows + (np.arange(width) * 4 // width)[None, :]) % 5
        image = np.stack([40 * label + 20, np.full_like(label, 90), np.full_like(label, 200)], -1)
        buffer = io.BytesIO()
        Image.fromarray(image.astype(np.uint8)).save(buffer, format="PNG")
        (root / layout.image_dir / f"c{index}.jpg").write_bytes(buffer.getvalue())
        write_label(
            root / layout.label_dir / f"c{index}.png", np.where(rng.random(label.shape) < 0.1, 255, label)
        )


class _OracleScorer(OpenSegScorer):
    """Scores = one-hot of the class the red channel encodes, at the input resolution."""

    def forward(self, images, segment_maps=None, num_segments=None):
        return images

    def scores(self, images, class_embeds, class_valid, image=None):
        red = (images[:, 0] * CLIP_STD[0] + CLIP_MEAN[0]) * 255
        cls = ((red - 20) / 40).round().clamp(0, 4).long()
        return F.one_hot(cls, class_embeds.shape[0]).permute(0, 3, 1, 2).float()


def _oracle_loader(checkpoint, clip, mask_source, device, rule=None):
    loaded = load_scorer(checkpoint, clip, mask_source, device, rule)
    oracle = _OracleScorer(loaded.scorer.model, loaded.scorer.text_encoder)
    return loaded._replace(scorer=oracle)


@pytest.mark.parametrize(
    ("sliding", "size", "sizes"),
    [(False, 704, [(512, 704), (704, 333)]), (True, 64, [(64, 150), (97, 64)])],
)
def test_an_oracle_scorer_scores_miou_one_at_original_resolution(
    tmp_path, checkpoint, monkeypatch, sliding, size, sizes
) -> None:
    monkeypatch.setattr(evaluate_benchmark, "load_scorer", _oracle_loader)
    _write_coded(tmp_path / "data", sizes)
    req = BenchmarkRequest(
        checkpoint, "ade150", tmp_path / "data", size=size, sliding_window=sliding, workers=0, report=False
    )
    result = run_benchmark_evaluation(req, tmp_path / "out")
    assert result["miou"] == 1.0 and result["pixel_accuracy"] == 1.0
    labels = [np.array(Image.open(p)) for p in sorted((tmp_path / "data").rglob("c*.png"))]
    assert result["num_pixels"] == sum(int((lab != 255).sum()) for lab in labels)  # original resolution
    assert result["num_classes_evaluated"] == 5


def test_real_ade150_sample_with_a_tiny_model(shared_data, tmp_path, checkpoint) -> None:
    root = write_ade150_sample(shared_data, tmp_path / "data")
    req = BenchmarkRequest(checkpoint, "ade150", root, size=64, workers=0, examples=2)
    result = run_benchmark_evaluation(req, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    meta = doc["meta"]
    assert (meta["benchmark"], meta["convention"], meta["mode"], meta["size"]) == (
        "ade150",
        "detectron2",
        "whole",
        64,
    )
    assert meta["images"] == 3 and meta["skips"] == {} and meta["vocabulary"] == "built-in ade150"
    raw = [
        np.array(Image.open(p))
        for p in sorted(
            (shared_data / "ade20k-150-sceneparsing/ADEChallengeData2016/annotations").rglob("*.png")
        )
    ]
    assert doc["num_pixels"] == sum(int((r > 0).sum()) for r in raw)  # every labelled pixel, full size
    assert doc["num_classes"] == 150 and doc["num_classes_evaluated"] == len(
        set(np.concatenate([np.unique(r[r > 0]) for r in raw]))
    )
    assert set(meta["scalars"]) == {
        "val/miou_ade150",
        "val/fwiou_ade150",
        "val/pixel_accuracy_ade150",
        "val/mean_accuracy_ade150",
    }
    assert meta["scalars"]["val/miou_ade150"] == pytest.approx(doc["miou"])
    if result["report"] is not None:  # eval/html_report.py present
        html = (tmp_path / "out" / "report.html").read_text()
        assert "ADE_val_00000001" in html and "ADE_val_00000003" in html and "ADE_val_00000002" not in html


def test_grounding_and_sliding_run_on_the_tiny_model(shared_data, tmp_path, checkpoint) -> None:
    root = write_ade150_sample(shared_data, tmp_path / "data")
    req = BenchmarkRequest(
        checkpoint, "ade150", root, size=64, workers=0, grounding=True, sliding_window=True, report=False
    )
    result = run_benchmark_evaluation(req, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["meta"]["mode"] == "sliding" and doc["meta"]["stride"] == 43 and doc["meta"]["grounding"]
    assert result["images"] == 3 and 0.0 <= result["miou"] <= 1.0


def test_two_processes_count_every_image_once_and_sum_the_same_confusion(tmp_path, checkpoint) -> None:
    write_synthetic_benchmark(tmp_path / "data", "ade150", [(40, 50), (33, 64), (64, 21), (50, 50), (17, 45)])
    results = []
    for devices in (1, 2):
        req = BenchmarkRequest(
            checkpoint, "ade150", tmp_path / "data", size=64, workers=1, devices=devices, report=False
        )
        results.append(run_benchmark_evaluation(req, tmp_path / f"out{devices}"))
    one, two = results
    assert one["images"] == two["images"] == 5
    assert torch.equal(two["confusion"], one["confusion"]) and int(one["confusion"].sum()) > 0
    assert two["per_class_iou"] == one["per_class_iou"] and two["num_pixels"] == one["num_pixels"]
    assert json.loads((tmp_path / "out2" / "metrics.json").read_text())["meta"]["devices"] == 2


def test_a_bad_label_on_one_rank_stops_every_rank_with_one_clean_error(tmp_path, checkpoint) -> None:
    write_synthetic_benchmark(tmp_path, "ade150", [(16, 16), (16, 16), (16, 16)])
    layout = LAYOUTS[("ade150", "detectron2")]
    write_label(tmp_path / layout.label_dir / "img_001.png", np.full((16, 16), 200))  # rank 1's image
    req = BenchmarkRequest(checkpoint, "ade150", tmp_path, size=64, workers=0, devices=2, report=False)
    with pytest.raises(InputFileError, match=r"img_001\.png holds value 200"):
        run_benchmark_evaluation(req, tmp_path / "out")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mask_source": "gt"}, "not available on semantic benchmarks"),
        ({"size": 100}, "multiple of 32"),
        ({"classes": [["a"], ["b"]]}, "has 2 classes but ade150 has 150"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, checkpoint, options, message) -> None:
    write_synthetic_benchmark(tmp_path, "ade150", [(8, 8)])
    with pytest.raises(UsageError, match=message):
        run_benchmark_evaluation(
            BenchmarkRequest(checkpoint, "ade150", tmp_path, **options), tmp_path / "out"
        )


def test_example_indices_spread_over_the_set() -> None:
    assert example_indices(9, 3) == {0, 4, 8}
    assert example_indices(2, 8) == {0, 1}
    assert example_indices(5, 1) == {0} and example_indices(0, 8) == set() and example_indices(5, 0) == set()
    assert len(example_indices(1000, 8)) == 8


def test_coco_benchmark_uses_the_shard_path_and_names_its_keys(tmp_path, checkpoint) -> None:
    from openseg_cli.engine.evaluate import EvalRequest, run_evaluation
    from tests.engine.helpers import write_toy_shards

    shards = write_toy_shards(tmp_path, "val2017", count=3, maxcount=3)
    req = EvalRequest(checkpoint, str(shards), size=64, workers=0, benchmark="coco")
    run_evaluation(req, tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "metrics.json").read_text())["meta"]
    assert meta["benchmark"] == "coco" and meta["images"] == 3 and meta["resolution"].startswith("fitted")
    assert set(meta["scalars"]) >= {"val/miou_coco", "val/pixel_accuracy_coco"}
