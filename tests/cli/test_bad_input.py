"""Every bad input gives one clear `error:` line on stderr, a non-zero exit code from the `OpenSegError`
family (errors.py) and no traceback; `--debug` shows the traceback.

Most cases run the real `openseg` in a subprocess. Cases that must import torch to get to the error cost
~5 s each that way, so one of each kind runs as a subprocess and its variants call the same
`cli.app.main(argv)` in this process (same error handling, same stderr text, no interpreter start-up).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import torch

from tests.cli.helpers import assert_clean_error, run_cli, run_main
from tests.engine.helpers import write_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]
TOY = REPO / "recipes" / "toy.yaml"

# Exit codes are part of the contract (errors.py): scripts tell failures apart by them.
RECIPE, USAGE, INPUT, CHECKPOINT, PRETRAINED, STANZA = 2, 2, 3, 3, 4, 4


@pytest.fixture(autouse=True)
def _offline_in_tmp(monkeypatch, tmp_path: Path) -> None:
    """No network, and a fresh working directory, so a default `runs/` folder would land in tmp."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Bad and good inputs, built once: checkpoints, images, shard folders."""
    from openseg_cli.data.coco import coco_paths, write_coco_shards
    from openseg_cli.data.toy import write_toy_dataset

    root = tmp_path_factory.mktemp("bad-input")
    f = {
        "model": root / "model.pt",
        "random_bytes": root / "random.pt",
        "plain_dict": root / "plain.pt",
        "missing": root / "does-not-exist.pt",
        "text_jpg": root / "notes.jpg",
        "text_ckpt": root / "hello.pt",
        "empty_dir": root / "empty",
        "fake_shards": root / "fake-shards",
        "toy": root / "toy",
        "val": root / "val",
    }
    write_tiny_checkpoint(f["model"])
    f["random_bytes"].write_bytes(random.Random(0).randbytes(4096))
    torch.save({"weights": torch.zeros(3)}, f["plain_dict"])
    f["text_jpg"].write_text("this is not a JPEG, just text\n")
    f["text_ckpt"].write_text("hello")
    f["empty_dir"].mkdir()
    # `train` lists shards before it builds anything: one (empty) tar is enough to get past that check.
    f["fake_shards"].mkdir()
    (f["fake_shards"] / "toy-train-000000.tar").write_bytes(b"")
    write_toy_dataset(f["toy"], num_train=0, num_val=2, image_size=32, seed=1)
    write_coco_shards(coco_paths(f["toy"], "val2017", captions=False), f["val"], "val2017")
    return f


# --- recipes (subprocess; no torch import on this path) ---------------------------------------------


def test_missing_recipe_file(tmp_path: Path) -> None:
    result = run_cli("train", tmp_path / "nope.yaml")
    assert_clean_error(result, "recipe not found", "nope.yaml")
    assert result.returncode == RECIPE


def test_unknown_recipe_key_in_file(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  num_querys: 4\n")
    result = run_cli("train", recipe)
    assert_clean_error(result, "'model.num_querys'", "did you mean model.num_queries")
    assert result.returncode == RECIPE


def test_unknown_recipe_key_via_set() -> None:
    result = run_cli("train", TOY, "--set", "optim.learning_rate=0.1")
    assert_clean_error(result, "'optim.learning_rate'")
    assert result.returncode == RECIPE


def test_malformed_recipe_yaml(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\nmodel:\n  fpn_dim: 16\n  head_width: 16: 3\n")
    result = run_cli("train", recipe)
    assert_clean_error(result, "malformed YAML (line 4)", "r.yaml")
    assert result.returncode == RECIPE


def test_invalid_run_name_is_refused_before_any_folder_is_made(tmp_path: Path) -> None:
    result = run_cli("train", TOY, "--name", "../x", cwd=tmp_path)
    assert_clean_error(result, "run name '../x'")
    assert result.returncode == USAGE
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run_cli("--debug", "train", tmp_path / "nope.yaml")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "RecipeError" in result.stderr


# --- predict: queries and images (subprocess; checked before torch is imported) ---------------------


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("", "empty query list"),
        ("   ", "empty query list"),
        (" , ", "empty class name"),
        ("cat, Cat", "duplicate class name 'Cat'"),
        ("wall, walls; sky; Walls", "duplicate class name 'Walls'"),
    ],
)
def test_predict_bad_queries(files: dict[str, Path], query: str, needle: str) -> None:
    result = run_cli(
        "predict", files["text_jpg"], "-q", query, "-c", files["model"], "--out", files["empty_dir"]
    )
    assert_clean_error(result, needle)
    assert result.returncode == USAGE


def test_predict_missing_image(files: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli(
        "predict", tmp_path / "no-such.jpg", "-q", "cat", "-c", files["model"], "--out", tmp_path
    )
    assert_clean_error(result, "no-such.jpg", "no such image")
    assert result.returncode == INPUT


def test_predict_needs_queries_or_class_file(files: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("predict", files["text_jpg"], "-c", files["model"], "--out", tmp_path)
    assert_clean_error(result, "-q/--queries", "--classes")
    assert result.returncode == USAGE


# --- checkpoints ------------------------------------------------------------------------------------


def test_predict_random_bytes_checkpoint_subprocess(files: dict[str, Path], tmp_path: Path) -> None:
    """The real process: a file torch cannot read is called 'not an openseg checkpoint'."""
    image = sorted((files["toy"] / "val2017").glob("*.jpg"))[0]
    result = run_cli("predict", image, "-q", "circle", "-c", files["random_bytes"], "--out", tmp_path)
    assert_clean_error(result, "random.pt is not an openseg checkpoint")
    assert result.returncode == CHECKPOINT


@pytest.mark.parametrize(
    ("kind", "needle", "code"),
    [
        ("random_bytes", "is not an openseg checkpoint", CHECKPOINT),
        ("plain_dict", "is not an openseg checkpoint (no openseg recipe inside)", CHECKPOINT),
        ("missing", "checkpoint not found", INPUT),
    ],
)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_not_an_openseg_checkpoint(
    files: dict[str, Path], tmp_path: Path, command: str, kind: str, needle: str, code: int
) -> None:
    image = sorted((files["toy"] / "val2017").glob("*.jpg"))[0]
    if command == "predict":
        args = ["predict", image, "-q", "circle", "-c", files[kind], "--out", tmp_path]
    else:
        args = ["evaluate", files[kind], "--shards", files["val"], "--out", tmp_path, "--workers", "0"]
    result = run_main(*args)
    assert_clean_error(result, needle, files[kind].name)
    assert result.returncode == code
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob("*.png"))  # nothing half-written


def test_text_file_as_checkpoint(files: dict[str, Path], tmp_path: Path) -> None:
    """A 5-byte text file passed as the checkpoint is 'not an openseg checkpoint' like any other."""
    result = run_main(
        "predict", files["text_jpg"], "-q", "circle", "-c", files["text_ckpt"], "--out", tmp_path
    )
    assert_clean_error(result, "hello.pt is not an openseg checkpoint")
    assert result.returncode == CHECKPOINT


def test_predict_unreadable_image(files: dict[str, Path], tmp_path: Path) -> None:
    """A `.jpg` that holds text: named in the error, after the (valid) checkpoint loaded."""
    result = run_main("predict", files["text_jpg"], "-q", "circle", "-c", files["model"], "--out", tmp_path)
    assert_clean_error(result, "notes.jpg", "unreadable image")
    assert result.returncode == INPUT


def test_predict_truncated_real_jpeg(files: dict[str, Path], tmp_path: Path, shared_data: Path) -> None:
    """A real COCO photo cut short (an interrupted copy): PIL decodes lazily, the error must still come."""
    photo = sorted((shared_data / "coco-val2017-mini" / "val2017").glob("*.jpg"))[0]
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photo.read_bytes()[:3000])
    result = run_main("predict", cut, "-q", "person, grass", "-c", files["model"], "--out", tmp_path / "out")
    assert_clean_error(result, "cut.jpg", "unreadable image")
    assert result.returncode == INPUT


# --- data -------------------------------------------------------------------------------------------


def test_prepare_coco_missing_folder(tmp_path: Path) -> None:
    result = run_cli("prepare", "coco", tmp_path / "no-coco", "--split", "val2017", "--out", tmp_path / "out")
    assert_clean_error(result, "no-coco/val2017", "image folder not found")
    assert result.returncode == INPUT


def test_prepare_coco_malformed_panoptic_json(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    (root / "annotations" / "panoptic_val2017").mkdir(parents=True)
    # A trailing comma inside the list on line 3.
    (root / "annotations" / "panoptic_val2017.json").write_text(
        '{\n  "images": [],\n  "annotations": [,]\n}\n'
    )
    result = run_cli(
        "prepare", "coco", root, "--split", "val2017", "--no-captions", "--out", tmp_path / "out"
    )
    assert_clean_error(result, "panoptic_val2017.json", "malformed panoptic JSON", "line 3")
    assert result.returncode == INPUT
    assert not list((tmp_path / "out").glob("*.tar"))


def test_prepare_real_coco_folder_without_panoptic_annotations(shared_data: Path, tmp_path: Path) -> None:
    """A real COCO download with captions and instances but no panoptic files: the missing part is named."""
    root = shared_data / "coco-val2017-mini"
    result = run_cli("prepare", "coco", root, "--split", "val2017", "--out", tmp_path / "out")
    assert_clean_error(result, "annotations/panoptic_val2017.json", "panoptic JSON not found")
    assert result.returncode == INPUT


def test_prepare_real_coco_truncated_captions(shared_data: Path, tmp_path: Path) -> None:
    """Real panoptic samples with a captions file cut in half (an interrupted download)."""
    real = shared_data / "coco-panoptic-panopticapi"
    text = (real / "captions_val2017_subset.json").read_text()
    captions = tmp_path / "captions_val2017.json"
    captions.write_text(text[: len(text) // 2])
    result = run_cli(
        "prepare", "coco", real, "--split", "val2017", "--out", tmp_path / "out",
        "--images", real / "input_images", "--panoptic-json", real / "panoptic_examples.json",
        "--panoptic-dir", real / "panoptic_examples", "--captions", captions,
    )  # fmt: skip
    assert_clean_error(result, "captions_val2017.json", "malformed captions JSON")
    assert result.returncode == INPUT
    assert not list((tmp_path / "out").glob("*.tar"))


def test_extract_nouns_offline_without_models_says_how_to_get_them(files: dict[str, Path]) -> None:
    result = run_cli("extract-nouns", files["fake_shards"], "--offline", "--model-dir", files["empty_dir"])
    assert_clean_error(result, "no stanza English models", str(files["empty_dir"]), "stanza.download('en')",
                       "--model-dir")  # fmt: skip
    assert result.returncode == STANZA
    assert not list(files["fake_shards"].glob("*.nouns.json"))


def test_train_on_an_empty_shard_folder(files: dict[str, Path], tmp_path: Path) -> None:
    result = run_main(
        "train", TOY, "--set", f"data.train_shards={files['empty_dir']}", "--out", tmp_path / "run"
    )
    assert_clean_error(result, str(files["empty_dir"]), "no shard files")
    assert result.returncode == INPUT


@pytest.mark.parametrize(
    ("flags", "needle"),
    [(["--devices", "abc"], "trainer.devices"), (["--set", "trainer.precision=bf17"], "trainer.precision")],
    ids=["devices", "precision"],
)
def test_train_with_a_trainer_setting_lightning_refuses(
    files: dict[str, Path], tmp_path: Path, flags: list[str], needle: str
) -> None:
    data = [f"data.train_shards={files['fake_shards']}", "data.val_shards="]
    result = run_main(
        "train", TOY, *flags, *[x for o in data for x in ("--set", o)], "--out", tmp_path / "run"
    )
    assert_clean_error(result, needle)
    assert "internal error" not in result.stderr
    assert result.returncode == RECIPE


def test_pretrained_tag_offline_fails_fast_with_a_way_out(
    files: dict[str, Path], tmp_path, monkeypatch
) -> None:
    """No silent random init: an open_clip tag offline is one PretrainedWeightsError line, in seconds."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache: the weights cannot be found there
    overrides = [
        f"data.train_shards={files['fake_shards']}",
        "data.val_shards=",
        "model.clip.pretrained=openai",
        "model.clip.name=RN50",
    ]
    start = time.monotonic()
    result = run_cli("train", TOY, *[x for o in overrides for x in ("--set", o)], "--out", tmp_path / "run")
    elapsed = time.monotonic() - start
    assert_clean_error(result, "RN50/openai", "HF_HUB_OFFLINE", "pass a local file")
    assert result.returncode == PRETRAINED
    assert elapsed < 20, f"took {elapsed:.1f} s: the offline check must not wait on the network"
