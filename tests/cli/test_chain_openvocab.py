"""`make demo`'s open-vocabulary chain through the real CLI, at a few images and steps: toy world → CLIP
corpus shards → `clip-train` (open_clip_train) → `recipes/toy_openvocab.yaml` on that CLIP file → evaluate
by class group → predict with unseen names. Asserts the hand-offs (files, groups, weights), not learning:
the learning figures come from `make demo` and benchmarks/openvocab.py (README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from openseg_cli.data.toy_openvocab import class_groups
from tests.cli.helpers import assert_ok, run_cli

REPO = Path(__file__).resolve().parents[2]
CLIP = "openseg-toy-clip"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chain-ov")
    toy = root / "toy"
    assert_ok(run_cli("toy-data", "--open-vocab", "--out", toy, "--train", 16, "--val", 6, "--clip", 48))
    corpus = toy / "clip"
    assert_ok(run_cli("prepare", "folder", corpus / "images", "--captions", corpus / "captions.tsv",
                      "--source", "clip", "--out", root / "clip"))  # fmt: skip
    for split, name in (("train2017", "train"), ("val2017", "val")):
        assert_ok(run_cli("prepare", "coco", toy, "--split", split, "--out", root / name, "--maxcount", 8))
    nouns = run_cli("extract-nouns", root / "train", "--offline", "--model-dir", root / "no-models",
                    "--fallback-lexicon", toy / "classes.txt")  # fmt: skip
    assert_ok(nouns)
    return root


@pytest.mark.slow
def test_the_open_vocabulary_chain_runs_on_its_own_clip(world: Path, tmp_path: Path) -> None:
    clip = world / "clip-model"
    assert_ok(run_cli("clip-train", world / "clip", "--out", clip, "--model", CLIP, "--epochs", "1",
                      "--batch-size", "16", "--workers", "0", "--captions", "one"))  # fmt: skip
    weights = clip / f"{CLIP}.safetensors"
    overrides = [
        f"data.train_shards={world / 'train'}", f"data.val_shards={world / 'val'}",
        f"model.clip.pretrained={weights}", "data.batch_size=4", "trainer.global_batch_size=4",
        "trainer.val_every_steps=2", "trainer.checkpoint_every_steps=2",
    ]  # fmt: skip
    run = tmp_path / "run"
    args = [x for o in overrides for x in ("--set", o)]
    assert_ok(
        run_cli("train", REPO / "recipes" / "toy_openvocab.yaml", *args, "--max-steps", 3, "--out", run)
    )

    # the frozen text tower is the CLIP file's, untouched by training
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    text = {
        k.removeprefix("text_encoder.clip."): v for k, v in state["state_dict"].items() if "text_encoder" in k
    }
    clip_weights = load_file(weights)
    shared = set(text) & set(clip_weights)
    assert len(shared) > 10 and "token_embedding.weight" in shared
    assert all(torch.equal(clip_weights[k], text[k]) for k in shared)

    groups = world / "toy" / "class_groups.json"
    out = tmp_path / "eval"
    assert_ok(run_cli("evaluate", run / "model.pt", "--shards", world / "val", "--class-groups", groups,
                      "--no-report", "--out", out))  # fmt: skip
    doc = json.loads((out / "metrics.json").read_text())
    assert {g: doc["groups"][g]["classes"] for g in ("seen", "caption_only", "unseen")} == class_groups()
    assert doc["hiou"] is not None and doc["meta"]["rule"] == "sum"

    image = next((world / "toy" / "val2017").glob("*.jpg"))
    unseen = "; ".join(class_groups()["unseen"])
    predicted = run_cli(
        "predict", image, "-c", run / "model.pt", "-q", f"circle; {unseen}", "--out", tmp_path / "p"
    )
    assert_ok(predicted)
    queries = json.loads((tmp_path / "p" / f"{image.stem}.json").read_text())["queries"]
    assert [q["name"] for q in queries] == ["circle", *class_groups()["unseen"]]
