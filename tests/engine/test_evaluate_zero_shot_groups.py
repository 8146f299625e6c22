"""`run_evaluation` and `run_benchmark_evaluation` with CLIP weights alone (`clip`: zero-shot MaskCLIP)
and with class groups: every image counted once, the group figures equal `eval.groups` on the per-class
IoUs, and metrics.json records what was evaluated."""

from __future__ import annotations

import json

import pytest
import torch

from openseg_cli.engine.evaluate import EvalRequest, dataset_classes, run_evaluation
from openseg_cli.engine.evaluate_benchmark import BenchmarkRequest, run_benchmark_evaluation
from openseg_cli.errors import InputFileError, UsageError
from openseg_cli.eval.groups import group_figures, read_class_groups
from openseg_cli.inference.zero_shot import ZERO_SHOT_SIZE
from tests.engine.benchmark_helpers import write_synthetic_benchmark
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint, write_toy_shards

TINY_CLIP = "openseg-tiny-vit:none"
VOC_GROUPS = {"seen": ["aeroplane", "bicycle", "bird", "cat"], "unseen": ["dog", "horse", "person"]}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_toy_shards(tmp_path_factory.mktemp("zs"), "val2017", count=4, maxcount=2, seed=3)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    write_tiny_checkpoint(path, tiny_recipe("data.crop_size=64"))
    return path


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    write_synthetic_benchmark(root, "voc20", [(40, 50), (33, 64), (64, 21), (50, 50)])
    groups = root / "groups.json"
    groups.write_text(json.dumps(VOC_GROUPS))
    return root, groups


def _groups_file(tmp_path, classes) -> object:
    """seen: the first two classes (the first by a synonym, upper-cased), unseen: the last one."""
    path = tmp_path / "groups.json"
    path.write_text(json.dumps({"seen": [classes[0][-1].upper(), classes[1][0]], "unseen": [classes[-1][0]]}))
    return path


@pytest.mark.parametrize("grounding", [False, True])
def test_zero_shot_on_shards_counts_every_image_and_records_the_clip_weights(
    shards, tmp_path, grounding
) -> None:
    req = EvalRequest(None, str(shards), size=64, workers=0, grounding=grounding, clip=TINY_CLIP)
    result = run_evaluation(req, tmp_path)
    meta = json.loads((tmp_path / "metrics.json").read_text())["meta"]
    assert result["images"] == meta["images"] == 4 and 0.0 <= result["miou"] <= 1.0
    assert meta["clip"] == TINY_CLIP and "checkpoint" not in meta and meta["size"] == 64
    assert meta["mask_source"].startswith("maskclip")
    assert (tmp_path / "report.html").is_file()


def test_zero_shot_default_size_is_the_zero_shot_size(shards, tmp_path) -> None:
    req = EvalRequest(None, str(shards), workers=0, clip=TINY_CLIP, report=False)
    run_evaluation(req, tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text())["meta"]["size"] == ZERO_SHOT_SIZE


def test_class_groups_on_shards_with_synonyms(shards, checkpoint, tmp_path) -> None:
    classes = [[names[0], f"{names[0]} thing"] for names in dataset_classes(str(shards))]
    path = _groups_file(tmp_path, classes)
    req = EvalRequest(checkpoint, str(shards), classes=classes, size=64, workers=0, class_groups=path)
    result = run_evaluation(req, tmp_path / "out")
    expected = group_figures(result["per_class_iou"], read_class_groups(path, classes))
    assert result["groups"] == expected["groups"] and result["hiou"] == expected["hiou"]
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert list(doc["groups"]) == ["seen", "unseen", "ungrouped"]
    assert doc["groups"]["seen"]["classes"] == [classes[0][0], classes[1][0]]
    assert doc["per_class"][0]["group"] == "seen" and doc["meta"]["class_groups"] == str(path)
    assert "hiou" in doc and "Class groups" in (tmp_path / "out" / "report.html").read_text()


def test_a_bad_groups_file_fails_before_the_model_loads(shards, tmp_path) -> None:
    (tmp_path / "g.json").write_text('{"seen": ["circel"]}')
    req = EvalRequest(tmp_path / "no-model.pt", str(shards), workers=0, class_groups=tmp_path / "g.json")
    with pytest.raises(InputFileError, match="did you mean 'circle'"):
        run_evaluation(req, tmp_path / "out")
    with pytest.raises(UsageError, match="--mask-source gt needs an openseg checkpoint"):
        run_evaluation(EvalRequest(None, str(shards), mask_source="gt", clip=TINY_CLIP), tmp_path)


def test_zero_shot_benchmark_with_groups_names_group_scalars(voc, tmp_path) -> None:
    root, groups = voc
    req = BenchmarkRequest(
        None, "voc20", root, size=64, workers=0, clip=TINY_CLIP, class_groups=groups, examples=1
    )
    result = run_benchmark_evaluation(req, tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    meta = doc["meta"]
    assert result["images"] == meta["images"] == 4 and meta["clip"] == TINY_CLIP and "checkpoint" not in meta
    assert meta["scalars"]["val/miou_seen_voc20"] == pytest.approx(doc["groups"]["seen"]["miou"])
    assert meta["scalars"]["val/hiou_voc20"] == pytest.approx(doc["hiou"])
    assert set(doc["groups"]) == {"seen", "unseen", "ungrouped"}
    assert doc["groups"]["ungrouped"]["classes"][:2] == ["boat", "bottle"]


def test_zero_shot_benchmark_refuses_proposals(voc, tmp_path) -> None:
    root, _ = voc
    req = BenchmarkRequest(None, "voc20", root, mask_source="pred", clip=TINY_CLIP)
    with pytest.raises(UsageError, match="--mask-source pred needs an openseg checkpoint"):
        run_benchmark_evaluation(req, tmp_path)


@pytest.mark.slow  # ~20 s: two spawned processes load torch and the tower
def test_two_processes_give_the_same_groups_as_one(voc, tmp_path) -> None:
    """Each rank draws the same `:none` weights (a fixed seed), so the summed confusion is exact."""
    root, groups = voc
    results = []
    for devices in (1, 2):
        req = BenchmarkRequest(
            None, "voc20", root, size=64, workers=0, devices=devices, report=False, clip=TINY_CLIP,
            class_groups=groups, sliding_window=True,
        )  # fmt: skip
        results.append(run_benchmark_evaluation(req, tmp_path / f"out{devices}"))
    one, two = results
    assert torch.equal(one["confusion"], two["confusion"]) and two["images"] == 4
    assert one["groups"] == two["groups"] and one["hiou"] == two["hiou"]
