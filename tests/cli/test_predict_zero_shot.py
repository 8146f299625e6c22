"""`openseg predict --clip MODEL:PRETRAINED`: zero-shot segmentation from CLIP weights alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli.helpers import assert_clean_error, assert_ok, run_cli

# The packaged tiny ViT config, random weights (":none" asks for them explicitly; nothing downloads).
TINY_CLIP = "openseg-tiny-vit:none"


@pytest.fixture()
def image(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return path


def test_zero_shot_writes_every_output_at_the_image_size(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "out"
    result = run_cli(
        "predict", image, "--clip", TINY_CLIP, "-q", "cat; dog, puppy", "--size", "64", "--out", out
    )
    assert_ok(result)
    report = json.loads((out / "photo.json").read_text())
    assert report["meta"]["clip"] == TINY_CLIP
    assert [q["name"] for q in report["queries"]] == ["cat", "dog"]
    labels = np.asarray(Image.open(out / "photo_labels.png"))
    assert labels.shape == (90, 120)  # scored at 64, mapped back to the original size
    assert sum(q["area_px"] for q in report["queries"]) == 90 * 120  # no threshold: every pixel labelled
    assert (out / "photo_overlay.png").is_file()


def test_zero_shot_on_a_real_photo_with_the_real_cli(tmp_path: Path, shared_data: Path) -> None:
    photo = sorted((shared_data / "coco-val2017-mini" / "val2017").glob("*.jpg"))[0]
    out = tmp_path / "out"
    assert_ok(
        run_cli("predict", photo, "--clip", TINY_CLIP, "-q", "person, dog", "--size", "96", "--out", out)
    )
    with Image.open(photo) as source:
        width, height = source.size
    assert np.asarray(Image.open(out / f"{photo.stem}_labels.png")).shape == (height, width)


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--clip", "openseg-tiny-vit"], ["MODEL:PRETRAINED"]),  # no silent random weights
        (["--clip", "openseg-tiny-vit:none", "-c", "model.pt"], ["either"]),
        ([], ["either"]),
        (["--clip", "openseg-tiny-vit:none", "--size", "72"], ["multiple of 16"]),
        (["--clip", "openseg-tiny-vit:/nowhere/weights.pt"], ["/nowhere/weights.pt"]),
        (["--clip", "openseg-tiny-vit:none", "--rule", "max"], ["--rule combines mask proposals"]),
    ],
)
def test_zero_shot_bad_input_is_one_clean_line(image: Path, tmp_path: Path, args, needles) -> None:
    result = run_cli("predict", image, "-q", "cat", "--out", tmp_path / "out", *args)
    assert_clean_error(result, *needles)
