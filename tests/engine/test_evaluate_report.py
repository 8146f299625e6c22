"""`run_evaluation` (the `evaluate --shards` path) writes report.html beside metrics.json: the real val
images (padding cropped), their semantic ground truth, the prediction that was scored (the grounding one
under grounding), and the metrics of metrics.json. Known answers come from the toy dataset's own JPEGs
and COCO panoptic annotations, decoded here with PIL and numpy."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from openseg_cli.data.loader import build_eval_loader
from openseg_cli.data.schema import make_key
from openseg_cli.data.transforms import normalise
from openseg_cli.engine.checkpoint import load_model
from openseg_cli.engine.evaluate import EvalRequest, _batch_labels, dataset_classes, run_evaluation
from openseg_cli.engine.evaluate_examples import displayable_image, example_indices
from openseg_cli.engine.text_cache import class_embeddings
from openseg_cli.inference.scorers import OpenSegScorer
from openseg_cli.inference.visualize import overlay_png
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint, write_toy_shards

IMAGES = 5
_IMG = re.compile(
    r'<img src="([^"]+)" width="(\d+)" height="(\d+)" alt="(image|ground truth|prediction) ([^"]*)">'
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    shards = write_toy_shards(root, "val2017", count=IMAGES, maxcount=2, seed=3)  # 3 shards: 2 + 2 + 1
    ckpt = root / "model.pt"
    write_tiny_checkpoint(ckpt, tiny_recipe("data.crop_size=64"))
    return shards, ckpt, _toy_sources(root / "toy")


def _toy_sources(toy) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{sample key: (image uint8 [H, W, 3], semantic int64 [H, W], -1 = void)} from the toy COCO files."""
    panoptic = json.loads((toy / "annotations" / "panoptic_val2017.json").read_text())
    index_of = {c["id"]: i for i, c in enumerate(sorted(panoptic["categories"], key=lambda c: c["id"]))}
    sources = {}
    for entry in panoptic["annotations"]:
        rgb = np.asarray(Image.open(toy / "annotations" / "panoptic_val2017" / entry["file_name"]), np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        semantic = np.full(ids.shape, -1, np.int64)
        for segment in entry["segments_info"]:
            semantic[ids == segment["id"]] = index_of[segment["category_id"]]
        image = np.asarray(Image.open(toy / "val2017" / entry["file_name"].replace(".png", ".jpg")))
        sources[make_key(entry["image_id"])] = (image, semantic)
    return sources


def _examples(html: str) -> dict[str, dict[str, np.ndarray]]:
    """{key: {"image" | "ground truth" | "prediction": RGB uint8}} decoded from the report's data URIs."""
    rows: dict[str, dict[str, np.ndarray]] = {}
    for src, width, height, caption, key in _IMG.findall(html):
        assert src.startswith("data:image/png;base64,")
        picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
        assert picture.shape[:2] == (int(height), int(width))
        rows.setdefault(key, {})[caption] = picture
    return rows


def _overlay(image: np.ndarray, labels: np.ndarray, names) -> np.ndarray:
    """The report's overlay of `labels` on `image`, legend panel cut off."""
    height, width = labels.shape
    return np.asarray(overlay_png(image, labels, names).crop((0, 0, width, height)))


def _scored_labels(shards, ckpt, req: EvalRequest) -> dict[str, np.ndarray]:
    """{key: labels [S, S]} as `run_evaluation` scores them, from an independent pass over the loader."""
    model, text_encoder, _ = load_model(ckpt)
    scorer = OpenSegScorer(model, text_encoder, req.mask_source or "pred")
    labels = {}
    with torch.inference_mode():
        embeds, valid = class_embeddings(text_encoder, dataset_classes(str(shards)), None)
        for batch in build_eval_loader(shards, batch_size=2, crop_size=64, workers=0):
            predicted = _batch_labels(scorer, batch, embeds, valid, req.grounding, "cpu")
            labels.update(zip(batch["keys"], predicted.numpy(), strict=True))
    return labels


def _loader_keys(shards) -> list[str]:
    return [
        k for batch in build_eval_loader(shards, batch_size=2, crop_size=64, workers=0) for k in batch["keys"]
    ]


@pytest.mark.parametrize("grounding", [False, True])
def test_report_shows_real_images_ground_truth_and_the_scored_prediction(setup, tmp_path, grounding) -> None:
    shards, ckpt, sources = setup
    req = EvalRequest(ckpt, str(shards), batch_size=2, workers=0, grounding=grounding, examples=3)
    result = run_evaluation(req, tmp_path)
    assert result["report"] == tmp_path / "report.html"
    rows = _examples((tmp_path / "report.html").read_text())
    keys = _loader_keys(shards)
    assert set(rows) == {keys[i] for i in (0, 2, 4)}  # first, middle and last of the set
    names = dataset_classes(str(shards))
    scored = _scored_labels(shards, ckpt, req)
    other = _scored_labels(shards, ckpt, EvalRequest(ckpt, str(shards), grounding=not grounding))
    differs = False
    for key, row in rows.items():
        image, semantic = sources[key]
        height, width = semantic.shape  # the long side is 64 = --size: fitted at scale 1, padding cut off
        assert max(height, width) == 64
        np.testing.assert_array_equal(row["image"], image)  # the real val image, pixel for pixel
        np.testing.assert_array_equal(row["ground truth"], _overlay(image, semantic, names))
        prediction = scored[key][:height, :width]
        np.testing.assert_array_equal(row["prediction"], _overlay(image, prediction, names))
        if grounding:  # the grounding prediction: only this image's own ground-truth classes
            assert set(np.unique(prediction)) <= set(np.unique(semantic)) | {-1}
        differs |= not np.array_equal(row["prediction"], _overlay(image, other[key][:height, :width], names))
    assert any(min(s.shape) < 64 for s in (sources[k][1] for k in rows))  # a padded image was cropped
    assert differs  # the two vocabularies predict differently: the check above can tell them apart


def test_report_metrics_equal_metrics_json(setup, tmp_path) -> None:
    shards, ckpt, _ = setup
    run_evaluation(EvalRequest(ckpt, str(shards), batch_size=4, workers=0, examples=2), tmp_path)
    doc = json.loads((tmp_path / "metrics.json").read_text())
    html = (tmp_path / "report.html").read_text()
    assert f"<b>{100 * doc['miou']:.2f}%</b><span>mIoU</span>" in html
    assert f"<b>{100 * doc['pixel_accuracy']:.2f}%</b><span>pixel accuracy</span>" in html
    table = dict(re.findall(r'<td title="[^"]*">([^<]*)</td><td class="num">([^<]*)</td>', html))
    expected = {c["name"]: "—" if c["iou"] is None else f"{100 * c['iou']:.2f}" for c in doc["per_class"]}
    assert table == expected and len(table) == 9
    assert len(_examples(html)) == 2


def test_a_downscaled_canvas_shows_the_fitted_image_and_nearest_ground_truth(setup, tmp_path) -> None:
    """--size 32: the report shows the image as scored (long side 32), the ground truth sampled at the
    fitted pixels' centres (nearest), no padding."""
    shards, ckpt, sources = setup
    run_evaluation(EvalRequest(ckpt, str(shards), size=32, workers=0, examples=IMAGES), tmp_path)
    rows = _examples((tmp_path / "report.html").read_text())
    assert len(rows) == IMAGES
    names = dataset_classes(str(shards))
    for key, row in rows.items():
        image, semantic = sources[key]
        height, width = semantic.shape
        small_h, small_w = round(height * 32 / 64), round(width * 32 / 64)
        assert row["image"].shape == (small_h, small_w, 3)
        resized = np.asarray(Image.fromarray(image).resize((small_w, small_h), Image.Resampling.BILINEAR))
        assert np.abs(row["image"].astype(int) - resized.astype(int)).mean() < 2.0  # antialiased bilinear
        rows_at = ((np.arange(small_h) + 0.5) * height / small_h).astype(int)
        cols_at = ((np.arange(small_w) + 0.5) * width / small_w).astype(int)
        target = semantic[np.ix_(rows_at, cols_at)]
        np.testing.assert_array_equal(row["ground truth"], _overlay(row["image"], target, names))


def test_no_report_and_no_examples(setup, tmp_path) -> None:
    shards, ckpt, _ = setup
    result = run_evaluation(EvalRequest(ckpt, str(shards), workers=0, report=False), tmp_path / "off")
    assert result["report"] is None and (tmp_path / "off" / "metrics.json").is_file()
    assert not (tmp_path / "off" / "report.html").exists()
    result = run_evaluation(EvalRequest(ckpt, str(shards), workers=0, examples=0), tmp_path / "none")
    html = result["report"].read_text()
    assert "mIoU" in html and _examples(html) == {} and "<h2>Examples</h2>" not in html


def test_displayable_image_inverts_clip_normalisation_exactly() -> None:
    pixels = torch.randint(0, 256, (3, 7, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    shown = displayable_image(normalise(pixels.float()))
    assert shown.dtype == torch.uint8 and shown.shape == (7, 5, 3)
    assert torch.equal(shown, pixels.permute(1, 2, 0))


def test_example_positions_are_spread_over_the_listed_samples() -> None:
    assert example_indices(IMAGES, 3) == {0, 2, 4}
