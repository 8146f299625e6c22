"""The CLI chain on real COCO panoptic samples (not the toy set): prepare with explicit paths → stanza
nouns → a few training steps → evaluate on COCO's own 133 categories → predict free text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import assert_ok, run_cli

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.stanza
def test_chain_on_real_coco_samples(shared_data: Path, stanza_model_dir: Path, tmp_path: Path) -> None:
    src = shared_data / "coco-panoptic-panopticapi"
    shards = tmp_path / "shards"
    assert_ok(
        run_cli(
            "prepare", "coco", src, "--split", "val2017", "--out", shards,
            "--images", src / "input_images", "--panoptic-json", src / "panoptic_examples.json",
            "--panoptic-dir", src / "panoptic_examples", "--captions", src / "captions_val2017_subset.json",
        )
    )  # fmt: skip
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["counts"]["written"] == 2 and len(manifest["categories"]) == 133

    nouns = run_cli("extract-nouns", shards, "--offline", "--model-dir", stanza_model_dir)
    assert_ok(nouns)
    sidecar = json.loads(next(shards.glob("*.nouns.json")).read_text())
    words = {w for captions in sidecar["words"].values() for caption in captions for w in caption}
    assert {"horse", "field"} & words, words  # image 439180: people riding horses in a field

    run = tmp_path / "run"
    overrides = [
        f"data.train_shards={shards}", f"data.val_shards={shards}", "data.batch_size=2",
        "trainer.global_batch_size=2", "trainer.val_every_steps=2", "model.num_queries=8",
    ]  # fmt: skip
    args = [x for o in overrides for x in ("--set", o)]
    assert_ok(run_cli("train", REPO / "recipes" / "toy.yaml", *args, "--max-steps", 2, "--out", run))

    report = tmp_path / "eval"
    assert_ok(run_cli("evaluate", run / "model.pt", "--shards", shards, "--size", 256, "--out", report))
    metrics = json.loads((report / "metrics.json").read_text())
    assert len(metrics["per_class"]) == 133 and metrics["meta"]["images"] == 2
    # only the classes present in the two images are evaluated (detectron2's convention)
    assert metrics["num_classes_evaluated"] == 8

    pred = tmp_path / "pred"
    image = src / "input_images" / "000000439180.jpg"
    assert_ok(
        run_cli("predict", image, "-q", "horse; person, people; grass", "-c", run / "model.pt", "--out", pred)
    )
    doc = json.loads((pred / "000000439180.json").read_text())
    assert doc["image"] == {"height": 360, "width": 640}
    assert [q["name"] for q in doc["queries"]] == ["horse", "person", "grass"]
