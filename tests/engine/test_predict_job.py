"""`run_prediction` / `predict_images`: batching changes nothing, any scores function plugs in, background
classes win pixels without becoming queries, unreadable images are counted, devices and query lengths
are checked up front."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from openseg_cli.engine.predict import (
    PredictJob,
    PredictRequest,
    check_token_lengths,
    predict_images,
    resolve_device,
    run_prediction,
)
from openseg_cli.errors import InputFileError, UsageError
from openseg_cli.inference.visualize import read_label_png
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint

QUERIES = [["circle"], ["square", "box"], ["grass"]]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("predict") / "model.pt"
    write_tiny_checkpoint(path, tiny_recipe("data.crop_size=64"))
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Five random images of different sizes and aspect ratios (portrait, landscape, tiny, square)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    paths = []
    for i, (h, w) in enumerate([(40, 64), (64, 30), (9, 13), (64, 64), (50, 71)]):
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        paths.append(root / f"img{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def _outputs(folder: Path, stem: str) -> tuple[np.ndarray, dict]:
    return read_label_png(folder / f"{stem}_labels.png"), json.loads((folder / f"{stem}.json").read_text())


def test_batched_prediction_equals_one_image_at_a_time(checkpoint, images, tmp_path) -> None:
    for batch_size in (1, 2, 8):  # 2: a partial last batch; 8: everything in one batch
        req = PredictRequest(checkpoint, images, QUERIES, batch_size=batch_size, unknown_threshold=0.3)
        summary = run_prediction(req, tmp_path / f"b{batch_size}")
        assert len(summary.results) == len(images) and not summary.skipped
    for path in images:
        labels_1, doc_1 = _outputs(tmp_path / "b1", path.stem)
        with Image.open(path) as picture:
            assert labels_1.shape == (picture.height, picture.width)
        for batch_size in (2, 8):
            labels_n, doc_n = _outputs(tmp_path / f"b{batch_size}", path.stem)
            assert np.array_equal(labels_1, labels_n)
            for q1, qn in zip(doc_1["queries"], doc_n["queries"], strict=True):
                assert q1["area_px"] == qn["area_px"]
                assert q1["mean_score"] == pytest.approx(qn["mean_score"], abs=1e-5)
    meta = doc_1["meta"]
    assert meta["device"] == "cpu" and meta["unknown_threshold"] == 0.3 and meta["size"] == 64


def _crafted_scores(pixels: torch.Tensor) -> torch.Tensor:
    """A stand-in segmenter scoring at input resolution (no interpolation blurs the borders): class 2
    (background "sky") wins the top half, class 0 the bottom-left quarter, class 1 the bottom-right."""
    half = pixels.shape[-1] // 2
    scores = torch.full((pixels.shape[0], 3, 2 * half, 2 * half), 0.1)
    scores[:, 2, :half] = 0.8
    scores[:, 0, half:, :half] = 0.8
    scores[:, 1, half:, half:] = 0.8
    return scores


def test_any_scores_function_plugs_in_and_background_pixels_become_unknown(tmp_path) -> None:
    image = tmp_path / "flat.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(image)
    seen = []

    def scores_fn(pixels: torch.Tensor) -> torch.Tensor:
        seen.append((tuple(pixels.shape), pixels.device))
        return _crafted_scores(pixels)

    job = PredictJob(classes=[["road"], ["car"]], size=32, device=torch.device("cpu"), background=[["sky"]])
    summary = predict_images(scores_fn, [image], tmp_path / "out", job)
    assert seen == [((1, 3, 32, 32), torch.device("cpu"))]
    labels, doc = _outputs(tmp_path / "out", "flat")
    assert (labels[:16] == -1).all()  # the sky half: background, written as unknown
    assert (labels[16:, :16] == 0).all() and (labels[16:, 16:] == 1).all()
    assert [q["name"] for q in doc["queries"]] == ["road", "car"]
    assert [q["area_px"] for q in doc["queries"]] == [256, 256]
    assert doc["background"][0]["name"] == "sky" and doc["background"][0]["area_px"] == 512
    assert doc["unknown"]["area_px"] == 512
    assert summary.results[0]["image"] == str(image)


def test_a_scores_function_with_the_wrong_class_count_is_a_clear_bug(tmp_path) -> None:
    image = tmp_path / "flat.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    job = PredictJob(classes=[["road"], ["car"]], size=16, device=torch.device("cpu"))  # 2, not 3
    with pytest.raises(ValueError, match=r"expected \[1, 2, h, w\]"):
        predict_images(_crafted_scores, [image], tmp_path / "out", job)


def test_unreadable_images_are_skipped_and_counted_or_fatal_with_strict(images, tmp_path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(images[0].read_bytes()[:100])
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    ticks = []
    job = PredictJob(classes=[["a"], ["b"]], size=16, device=torch.device("cpu"), background=[["c"]])
    summary = predict_images(_crafted_scores, [broken, images[1], text], tmp_path / "out", job, ticks.append)
    assert [Path(r["image"]).name for r in summary.results] == ["img1.png"]
    assert [Path(path).name for path, _ in summary.skipped] == ["broken.png", "notes.jpg"]
    assert all("unreadable image" in reason for _, reason in summary.skipped)
    assert sum(ticks) == 3  # the progress bar counts skipped images too
    strict = PredictJob(classes=[["a"], ["b"]], size=16, device=torch.device("cpu"), background=[["c"]],
                        strict=True)  # fmt: skip
    with pytest.raises(InputFileError, match="broken.png: unreadable image"):
        predict_images(_crafted_scores, [images[1], broken], tmp_path / "strict", strict)
    with pytest.raises(InputFileError, match="none of the 2 images could be read; first: .*broken.png"):
        predict_images(_crafted_scores, [broken, text], tmp_path / "none", job)


def test_devices_are_checked_before_any_work() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match=r"device 'cuda' is not available \(available here: cpu"):
            resolve_device("cuda")
    with pytest.raises(UsageError, match="'cuda:99' is not available"):
        resolve_device("cuda:99")
    with pytest.raises(UsageError, match="'gpu0' is not a torch device"):
        resolve_device("gpu0")


def test_device_error_from_run_prediction_names_what_is_available(checkpoint, images, tmp_path) -> None:
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    with pytest.raises(UsageError, match="available here: cpu"):
        run_prediction(PredictRequest(checkpoint, images[:1], QUERIES, device="cuda"), tmp_path)
    assert not tmp_path.joinpath("img0.json").exists()


def test_queries_longer_than_the_text_context_are_refused(checkpoint, images, tmp_path) -> None:
    """The tiny tower's context is 16 tokens (14 + start/end); open_clip would cut longer text silently."""
    import open_clip

    tokenizer = open_clip.get_tokenizer("openseg-tiny-rn")
    assert tokenizer.context_length == 16
    check_token_lengths(tokenizer, [["a b c d e f g h i j k l m n"]], None)  # exactly 14 tokens: fine
    with pytest.raises(UsageError, match=r"'a b c d e f g h i j k l m n o' is 15 tokens long, .* at most 14"):
        check_token_lengths(tokenizer, [["cat"], ["a b c d e f g h i j k l m n o"]], None)
    with pytest.raises(UsageError, match="in template 'a photo of a big .*'"):
        check_token_lengths(tokenizer, [["a b c d e f g h"]], ["{}", "a photo of a big {} on the grass."])
    long_query = [["a small red circle right next to a large blue square on the green grass of a park"]]
    with pytest.raises(UsageError, match="tokens long"):
        run_prediction(PredictRequest(checkpoint, images[:1], long_query), tmp_path)


@pytest.mark.gpu
def test_cuda_prediction_matches_cpu(checkpoint, images, tmp_path) -> None:
    """Model, text embeddings and pixels all on the GPU (a mix would raise), same labels as on CPU
    up to float rounding at near-ties."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    run_prediction(PredictRequest(checkpoint, images, QUERIES), tmp_path / "cpu")
    run_prediction(PredictRequest(checkpoint, images, QUERIES, device="cuda", batch_size=3), tmp_path / "gpu")
    for path in images:
        on_cpu, _ = _outputs(tmp_path / "cpu", path.stem)
        on_gpu, doc = _outputs(tmp_path / "gpu", path.stem)
        assert doc["meta"]["device"] == "cuda"
        assert (on_cpu == on_gpu).mean() > 0.98
