"""The real `openseg evaluate` with `--class-groups` (per-group mIoU, hIoU) and `--clip` (zero-shot
MaskCLIP baseline without a checkpoint), on shards and on a prepared benchmark, and its bad inputs: one
clean line, a non-zero exit, no traceback.

Every case calls the CLI's `main(argv)` in this process (`run_main`: the same parsing, engine, output and
error handling as the `openseg` command), which skips ~5 s of interpreter and torch start-up each; the
subprocess path of `evaluate` is exercised by tests/cli/test_evaluate_benchmark.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openseg_cli.engine.evaluate import dataset_classes
from tests.cli.helpers import assert_clean_error, assert_ok, run_main
from tests.engine.benchmark_helpers import write_synthetic_benchmark
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint, write_toy_shards

TINY_CLIP = "openseg-tiny-vit:none"
USAGE, INPUT = 2, 3


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Toy val shards, a class file with synonyms, a groups file naming a synonym, a tiny checkpoint."""
    root = tmp_path_factory.mktemp("evaluate-groups")
    shards = write_toy_shards(root, "val2017", count=3, maxcount=3, seed=4)
    names = [names[0] for names in dataset_classes(str(shards))]
    (root / "classes.txt").write_text("".join(f"{name}, {name} shape\n" for name in names))
    groups = {"seen": [names[0], names[1]], "caption_only": [f"{names[2]} SHAPE"], "unseen": names[-2:]}
    (root / "groups.json").write_text(json.dumps(groups))
    write_tiny_checkpoint(root / "model.pt", tiny_recipe("data.crop_size=64"))
    return {"root": root, "shards": shards, "names": names, "groups": root / "groups.json",
            "classes": root / "classes.txt", "model": root / "model.pt"}  # fmt: skip


@pytest.fixture(autouse=True)
def _offline_in_tmp(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


def test_shards_with_class_groups_print_and_write_the_group_figures(files, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_main(
        "evaluate", files["model"], "--shards", files["shards"], "--classes", files["classes"],
        "--class-groups", files["groups"], "--size", "64", "--workers", "0", "--examples", "1", "--out", out,
    )  # fmt: skip
    assert_ok(result)
    doc = json.loads((out / "metrics.json").read_text())
    names = files["names"]
    assert list(doc["groups"]) == ["seen", "caption_only", "unseen", "ungrouped"]
    assert doc["groups"]["caption_only"]["classes"] == [names[2]]  # matched by a synonym, any case
    assert doc["groups"]["unseen"]["classes"] == names[-2:]
    assert [c["group"] for c in doc["per_class"][:3]] == ["seen", "seen", "caption_only"]
    assert doc["meta"]["class_groups"] == str(files["groups"]) and doc["meta"]["checkpoint"]
    seen, unseen = doc["groups"]["seen"]["miou"], doc["groups"]["unseen"]["miou"]
    if seen is not None and unseen is not None:
        expected = 2 * seen * unseen / (seen + unseen) if seen + unseen else 0.0
        assert doc["hiou"] == pytest.approx(expected)
    printed = " ".join(result.stdout.split())
    assert "class groups (%)" in printed and "hIoU (seen, unseen)" in printed
    assert f"{names[2]} │ caption_only" in printed  # the per-class table's group column
    ungrouped = doc["groups"]["ungrouped"]
    assert f"ungrouped │ {ungrouped['classes_evaluated']} / {len(names) - 5} │" in printed  # the group table
    html = (out / "report.html").read_text()
    assert "Class groups" in html and "mIoU caption_only" in html and "hIoU (seen, unseen)" in html


def test_clip_on_shards_evaluates_without_a_checkpoint(files, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["--shards", files["shards"], "--size", "64", "--workers", "0", "--no-report", "--out", out]
    result = run_main("evaluate", "--clip", TINY_CLIP, "--grounding", *args)
    assert_ok(result)
    meta = json.loads((out / "metrics.json").read_text())["meta"]
    assert meta["clip"] == TINY_CLIP and "checkpoint" not in meta and meta["images"] == 3
    assert "on 3 images" in result.stdout


def test_rule_chosen_on_the_command_line_is_recorded(files, tmp_path: Path) -> None:
    docs = {}
    for rule in ("sum", "max"):
        out = tmp_path / rule
        args = ["--shards", files["shards"], "--size", "64", "--workers", "0", "--no-report", "--out", out]
        assert_ok(run_main("evaluate", files["model"], *args, "--rule", rule))
        docs[rule] = json.loads((out / "metrics.json").read_text())
    assert docs["sum"]["meta"]["rule"] == "sum" and docs["max"]["meta"]["rule"] == "max"
    assert docs["sum"]["meta"]["images"] == docs["max"]["meta"]["images"] == 3


def test_clip_on_a_benchmark_with_class_groups(tmp_path: Path) -> None:
    write_synthetic_benchmark(tmp_path / "data", "voc20", [(40, 50), (33, 64)])
    (tmp_path / "groups.json").write_text(json.dumps({"seen": ["cat", "dog"], "unseen": ["person"]}))
    out = tmp_path / "out"
    result = run_main(
        "evaluate", "--clip", TINY_CLIP, "--benchmark", "voc20", "--data", tmp_path / "data",
        "--class-groups", tmp_path / "groups.json", "--size", "64", "--workers", "0", "--out", out,
    )  # fmt: skip
    assert_ok(result)
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["meta"]["clip"] == TINY_CLIP and doc["meta"]["benchmark"] == "voc20"
    assert {"val/miou_seen_voc20", "val/miou_unseen_voc20", "val/hiou_voc20"} <= set(doc["meta"]["scalars"])
    assert doc["groups"]["ungrouped"]["classes"][0] == "aeroplane"
    assert "hIoU (seen, unseen)" in result.stdout and "Class groups" in (out / "report.html").read_text()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "groups.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('{"seen": ["circle",]}', ["groups.json is not valid JSON", "line 1"]),
        ('["circle"]', ["must hold a JSON object"]),
        ('{"seen": ["circel"]}', ["group 'seen' lists 'circel'", "did you mean 'circle'?"]),
        (
            '{"seen": ["circle"], "unseen": ["Circle"]}',
            ["class 'circle' is in group 'seen' and in group 'unseen'"],
        ),
        ('{"seen": []}', ["group 'seen' is empty"]),
    ],
)
def test_bad_class_groups_are_one_clean_line(files, tmp_path: Path, text, needles) -> None:
    args = ["--shards", files["shards"], "--class-groups", _write(tmp_path, text), "--workers", "0"]
    result = run_main("evaluate", files["model"], *args, "--out", tmp_path / "out")
    assert_clean_error(result, *needles)
    assert result.returncode == INPUT and "internal error" not in result.stderr
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("model", "extra", "needles"),
    [
        (True, ["--clip", TINY_CLIP], ["exactly one of an openseg CHECKPOINT or --clip"]),
        (False, [], ["exactly one of an openseg CHECKPOINT or --clip"]),
        (
            False,
            ["--clip", TINY_CLIP, "--mask-source", "gt"],
            ["--mask-source gt needs an openseg checkpoint"],
        ),
        (False, ["--clip", "openseg-tiny-vit"], ["MODEL:PRETRAINED"]),
        (False, ["--clip", TINY_CLIP, "--size", "72"], ["--size 72 must be a multiple of 16"]),
        (False, ["--clip", TINY_CLIP, "--rule", "max"], ["--rule combines mask proposals; --clip has none"]),
        (True, ["--rule", "mean"], ["unknown rule 'mean'; choose sum | max"]),
    ],
)
def test_bad_checkpoint_or_clip_combinations_are_usage_errors(files, tmp_path, model, extra, needles) -> None:
    args = ["--shards", files["shards"], "--workers", "0", "--out", tmp_path / "out"]
    result = run_main("evaluate", *([files["model"]] if model else []), *extra, *args)
    assert_clean_error(result, *needles)
    assert result.returncode == USAGE and "internal error" not in result.stderr


def test_an_offline_clip_tag_is_one_clean_line(files, tmp_path: Path) -> None:
    result = run_main(
        "evaluate", "--clip", "RN50-quickgelu:openai", "--shards", files["shards"], "--out", tmp_path
    )
    assert_clean_error(result, "RN50-quickgelu/openai", "pass a local file")
    assert result.returncode == 4  # PretrainedWeightsError
