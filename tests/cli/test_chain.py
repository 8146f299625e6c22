"""The whole chain through the real CLI on a tiny toy set: toy data → shards → extract-nouns → train →
evaluate → pseudo-label → predict, asserting files, shapes and exit codes."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.cli.helpers import assert_ok, run_cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def toy_shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chain")
    assert_ok(run_cli("toy-data", "--out", root / "toy", "--train", 24, "--val", 6, "--size", 64))
    for split, name in (("train2017", "train"), ("val2017", "val")):
        assert_ok(
            run_cli("prepare", "coco", root / "toy", "--split", split, "--out", root / name, "--maxcount", 12)
        )
    return root


def test_prepare_writes_shards_and_manifest(toy_shards: Path) -> None:
    tars = sorted((toy_shards / "train").glob("*.tar"))
    assert [t.name for t in tars] == ["coco-train2017-000000.tar", "coco-train2017-000001.tar"]
    sizes = json.loads((toy_shards / "train" / "sizes.json").read_text())
    assert sum(sizes.values()) == 24
    manifest = json.loads((toy_shards / "train" / "manifest.json").read_text())
    assert [c["name"] for c in manifest["categories"]][:2] == ["circle", "square"]
    with tarfile.open(tars[0]) as tar:
        names = tar.getnames()
    assert {n.split(".", 1)[1] for n in names} == {"image.jpg", "panoptic.png", "meta.json"}


def test_full_chain(toy_shards: Path, tmp_path: Path) -> None:
    root = toy_shards
    nouns = run_cli("extract-nouns", root / "train", "--offline", "--model-dir", tmp_path / "no-models",
                    "--fallback-lexicon", root / "toy" / "classes.txt")  # fmt: skip
    assert_ok(nouns)
    assert "stanza unavailable" in nouns.stderr  # the fallback is said out loud, with its words
    sidecar = json.loads((root / "train" / "coco-train2017-000000.nouns.json").read_text())
    assert len(sidecar["words"]) == 12 and all(sidecar["words"].values())

    run = tmp_path / "run"
    overrides = [
        f"data.train_shards={root / 'train'}", f"data.val_shards={root / 'val'}", "data.crop_size=64",
        "data.batch_size=4", "trainer.global_batch_size=4", "trainer.val_every_steps=2",
        "trainer.checkpoint_every_steps=2", "model.num_queries=8",
    ]  # fmt: skip
    args = [x for o in overrides for x in ("--set", o)]
    trained = run_cli("train", REPO / "recipes" / "toy.yaml", *args, "--max-steps", 4, "--out", run)
    assert_ok(trained)
    printed = trained.stdout + trained.stderr
    assert "training to step 4" in printed and "/-2" not in printed  # not Lightning's "Epoch 0/-2"
    assert (run / "model.pt").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "recipe.yaml").is_file() and (run / "logs" / "metrics.csv").is_file()
    resumed = run_cli("train", REPO / "recipes" / "toy.yaml", *args, "--max-steps", 6,
                      "--resume", run / "checkpoints" / "last.ckpt")  # fmt: skip
    assert_ok(resumed)
    assert "done: 6 steps" in " ".join(resumed.stdout.split())  # continued from step 4 in the same folder
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6

    report = tmp_path / "eval"
    evaluated = run_cli(
        "evaluate", run / "model.pt", "--shards", root / "val", "--out", report, "--examples", 4
    )
    assert_ok(evaluated)
    metrics = json.loads((report / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0 and len(metrics["per_class"]) == 9
    assert metrics["meta"]["images"] == 6
    html = (report / "report.html").read_text()  # --report is the default: 4 example rows, 3 images each
    assert html.count('<div class="ex">') == 4 and html.count('src="data:image/png;base64,') == 3 * 4
    assert "report →" in evaluated.stdout
    assert f"<b>{100 * metrics['miou']:.2f}%</b><span>mIoU</span>" in html
    quiet = tmp_path / "eval-quiet"
    assert_ok(run_cli("evaluate", run / "model.pt", "--shards", root / "val", "--out", quiet, "--no-report"))
    assert (quiet / "metrics.json").is_file() and not (quiet / "report.html").exists()

    pseudo = tmp_path / "pseudo"
    assert_ok(run_cli("pseudo-label", root / "train", "--teacher", run / "checkpoints" / "last.ckpt",
                      "--out", pseudo, "--min-confidence", 0.0, "--min-area", 0.0))  # fmt: skip
    manifest = json.loads((pseudo / "manifest.json").read_text())
    assert manifest["counts"]["written"] == 24

    pred = tmp_path / "pred"
    images = sorted((root / "toy" / "val2017").glob("*.jpg"))[:2]
    assert_ok(
        run_cli("predict", *images, "-q", "circle, square; grass", "-c", run / "model.pt", "--out", pred)
    )
    for image in images:
        labels = np.asarray(Image.open(pred / f"{image.stem}_labels.png"))
        assert labels.shape == (64, 64)
        doc = json.loads((pred / f"{image.stem}.json").read_text())
        assert [q["name"] for q in doc["queries"]] == ["circle", "grass"]
        assert sum(q["area_px"] for q in doc["queries"]) == 64 * 64
        assert Image.open(pred / f"{image.stem}_overlay.png").width > 64  # legend panel beside the image
