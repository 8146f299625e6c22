"""`openseg predict` on the files users really have (every image mode, EXIF-rotated photos, broken
files, huge images) and its options (--masks, --background, --batch-size, --device, --strict).

The real command runs in-process through `cli.app.main` (same error handling and stderr as the
installed script; one subprocess case checks the script itself)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openseg_cli.data.images import read_image_file
from openseg_cli.inference.visualize import palette, read_label_png
from tests.cli.helpers import assert_clean_error, assert_ok, run_cli
from tests.cli.test_bad_input import run_main
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint

USAGE, INPUT = 2, 3
QUERIES = "circle, square; grass"


@pytest.fixture(autouse=True)
def _in_tmp(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("OPENSEG_MAX_PIXELS", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("predict-cli") / "model.pt"
    write_tiny_checkpoint(path, tiny_recipe("data.crop_size=64"))  # 32 px: 1×1 maps break GroupNorm
    return path


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour blocks with a gradient: asymmetric, so a wrong rotation cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (4, 4, 3)).repeat((h + 3) // 4, 0).repeat((w + 3) // 4, 1)[:h, :w]
    ramp = np.linspace(0, 60, w)[None, :, None]
    return np.clip(blocks * 0.7 + ramp, 0, 255).astype(np.uint8)


def _predict(model: Path, *args) -> tuple:
    return run_main("predict", *args, "-q", QUERIES, "-c", model)


def test_every_common_image_mode_is_segmented(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "modes"
    folder.mkdir()
    rgb = _photo(20, 28)
    Image.fromarray(rgb[..., 0]).save(folder / "grey.png")
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
    Image.fromarray(np.dstack([rgb, np.full((20, 28), 128, np.uint8)]), "RGBA").save(folder / "rgba.png")
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(folder / "deep.png")
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    result = _predict(model, folder, "--out", tmp_path / "out", "--batch-size", "2")
    assert_ok(result)
    assert "5 image(s) segmented into 2 classes" in result.stdout and "skipped" not in result.stderr
    for stem in ("grey", "palette", "rgba", "deep", "cmyk"):
        assert read_label_png(tmp_path / "out" / f"{stem}_labels.png").shape == (20, 28)


def test_exif_rotated_jpeg_outputs_follow_the_displayed_orientation(model: Path, tmp_path: Path) -> None:
    stored = Image.fromarray(_photo(24, 40, seed=3))  # stored landscape 40×24 …
    exif = stored.getexif()
    exif[0x0112] = 6  # … displayed portrait 24×40, turned 90° clockwise
    photo = tmp_path / "phone.jpg"
    stored.save(photo, exif=exif, quality=95)
    assert_ok(_predict(model, photo, "--out", tmp_path / "out"))
    labels = read_label_png(tmp_path / "out" / "phone_labels.png")
    assert labels.shape == (40, 24)
    doc = json.loads((tmp_path / "out" / "phone.json").read_text())
    assert doc["image"] == {"height": 40, "width": 24}
    # overlay = round(0.5·image + 0.5·colour): undo the blend and find the displayed (rotated) photo.
    overlay = np.asarray(Image.open(tmp_path / "out" / "phone_overlay.png"), np.int64)[:40, :24]
    colours = np.concatenate([palette(2), [[0, 0, 0]]]).astype(np.int64)[np.where(labels < 0, 2, labels)]
    recovered = 2 * overlay - colours
    displayed = read_image_file(photo).astype(np.int64)
    assert np.abs(recovered - displayed).max() <= 1
    upright = np.asarray(Image.open(photo).convert("RGB").rotate(-90, expand=True), np.int64)
    assert np.array_equal(upright, displayed)  # independent of our decoder: PIL's own rotation


def test_broken_images_in_a_folder_are_skipped_and_counted(model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(_photo(16, 16)).save(folder / "good.png")
    (folder / "cut.png").write_bytes((folder / "good.png").read_bytes()[:60])
    (folder / "notes.jpg").write_text("not an image\n")
    result = _predict(model, folder, "--out", tmp_path / "out")
    assert_ok(result)
    assert "1 image(s) segmented" in result.stdout
    err = " ".join(result.stderr.split())
    assert "2 unreadable image(s) skipped" in err and "cut.png" in err and "notes.jpg" in err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == ["good.json"]

    strict = _predict(model, folder, "--out", tmp_path / "strict", "--strict")
    assert_clean_error(strict, "cut.png", "unreadable image")
    assert strict.returncode == INPUT


def test_a_huge_image_is_refused_with_its_pixel_count_and_the_limit(model: Path, tmp_path: Path) -> None:
    image = tmp_path / "wide.png"
    Image.fromarray(_photo(20, 30)).save(image)
    result = _predict(model, image, "--out", tmp_path / "out", "--max-pixels", "500")
    assert_clean_error(result, "wide.png", "image too large", "600 pixels", "limit 500", "--max-pixels")
    assert result.returncode == INPUT
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]  # one line says it all
    assert "600 pixels, limit 500" in line
    assert_ok(_predict(model, image, "--out", tmp_path / "ok", "--max-pixels", "600"))


def test_masks_rle_round_trip_and_png_files(model: Path, tmp_path: Path) -> None:
    from pycocotools import mask as mask_utils

    image = tmp_path / "scene.png"
    Image.fromarray(_photo(27, 35, seed=5)).save(image)
    assert_ok(
        _predict(model, image, "--out", tmp_path / "rle", "--masks", "rle", "--unknown-threshold", "0.5")
    )
    labels = read_label_png(tmp_path / "rle" / "scene_labels.png")
    doc = json.loads((tmp_path / "rle" / "scene.json").read_text())
    assert sum(q["area_px"] for q in doc["queries"]) + doc["unknown"]["area_px"] == 27 * 35
    for query in doc["queries"]:
        rle = {"size": query["rle"]["size"], "counts": query["rle"]["counts"].encode()}
        decoded = mask_utils.decode(rle).astype(bool)
        assert np.array_equal(decoded, labels == query["index"])
        assert int(decoded.sum()) == query["area_px"]

    assert_ok(_predict(model, image, "--out", tmp_path / "png", "--masks", "png"))
    doc = json.loads((tmp_path / "png" / "scene.json").read_text())
    labels = read_label_png(tmp_path / "png" / "scene_labels.png")
    assert sorted(p.name for p in (tmp_path / "png" / "scene_masks").iterdir()) == [
        "0-circle.png",
        "1-grass.png",
    ]
    for query in doc["queries"]:
        mask = np.asarray(Image.open(tmp_path / "png" / query["mask"]))
        assert np.array_equal(mask == 255, labels == query["index"])


def test_background_classes_compete_but_are_not_queries(model: Path, tmp_path: Path) -> None:
    image = tmp_path / "scene.png"
    Image.fromarray(_photo(24, 24, seed=9)).save(image)
    assert_ok(_predict(model, image, "--out", tmp_path / "out", "--background", "sky, wall; floor"))
    doc = json.loads((tmp_path / "out" / "scene.json").read_text())
    assert [q["name"] for q in doc["queries"]] == ["circle", "grass"]
    assert [b["synonyms"] for b in doc["background"]] == [["sky", "wall"], ["floor"]]
    background = sum(b["area_px"] for b in doc["background"])
    assert sum(q["area_px"] for q in doc["queries"]) + background == 24 * 24  # no threshold: all assigned
    assert doc["unknown"]["area_px"] == background
    assert int((read_label_png(tmp_path / "out" / "scene_labels.png") < 0).sum()) == background

    clash = _predict(model, image, "--out", tmp_path / "x", "--background", "Grass")
    assert_clean_error(clash, "background class 'Grass' is also query 2")
    assert clash.returncode == USAGE


@pytest.mark.parametrize(
    ("args", "needles", "code"),
    [
        (["--device", "cuda"], ["device 'cuda' is not available", "available here: cpu"], USAGE),
        (["--device", "tpu9"], ["'tpu9' is not a torch device"], USAGE),
        (["--masks", "zip"], ["--masks must be none, png or rle"], USAGE),
        (
            ["--background", "a", "--background-file", "b.txt"],
            ["either --background or --background-file"],
            USAGE,
        ),
        (["--background", "sky, , wall"], ["empty class name"], USAGE),
    ],
    ids=["cuda-missing", "bad-device", "bad-masks", "two-backgrounds", "empty-background"],
)
def test_bad_options_are_one_line_errors(model: Path, tmp_path: Path, args, needles, code) -> None:
    import torch

    if args[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    image = tmp_path / "a.png"
    Image.fromarray(_photo(8, 8)).save(image)
    result = _predict(model, image, "--out", tmp_path / "out", *args)
    assert_clean_error(result, *needles)
    assert result.returncode == code
    assert not list((tmp_path / "out").glob("*.json")) if (tmp_path / "out").exists() else True


def test_an_overlong_query_is_refused_not_cut(model: Path, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    Image.fromarray(_photo(8, 8)).save(image)
    query = "a small red circle right next to a large blue square on the green grass of a park"
    result = run_main("predict", image, "-q", query, "-c", model, "--out", tmp_path / "out")
    assert_clean_error(result, "tokens long", "at most 14", "shorten it")
    assert result.returncode == USAGE


def test_an_empty_folder_subprocess(model: Path, tmp_path: Path) -> None:
    """The installed script, end to end: an empty folder fails before torch is even imported."""
    (tmp_path / "empty").mkdir()
    result = run_cli("predict", tmp_path / "empty", "-q", "cat", "-c", model, "--out", tmp_path / "out")
    assert_clean_error(result, "no images found", "empty")
    assert result.returncode == INPUT
