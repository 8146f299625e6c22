"""`export_onnx` (issue #4): the ONNX image tower and the saved text embeddings reproduce PyTorch's outputs
and label maps, on random input and on a real COCO image; bad requests fail before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from openseg_cli.data.decode import decode_image
from openseg_cli.data.transforms import CLIP_MEAN, CLIP_STD, fit_size, normalise, pad_to, resize_image
from openseg_cli.engine.export import ExportRequest, export_onnx, read_manifest
from openseg_cli.errors import CheckpointError, InputFileError, UsageError
from openseg_cli.inference.scoring import class_logits, label_map, pixel_scores, semantic_scores
from openseg_cli.inference.segmenter import segment_scores
from tests.engine.helpers import tiny_recipe, write_tiny_checkpoint

ort = pytest.importorskip("onnxruntime")

SIZE = 64
CLASSES = [["person", "man"], ["dog"], ["grass", "lawn"], ["sky"], ["table"]]
TEMPLATES = ["a photo of a {}.", "a {} in the scene."]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny RN checkpoint exported once: (folder, model, text_encoder, onnxruntime session)."""
    root = tmp_path_factory.mktemp("export")
    _, model, text_encoder = write_tiny_checkpoint(root / "model.pt")
    req = ExportRequest(root / "model.pt", root / "onnx", SIZE, CLASSES, TEMPLATES)
    export_onnx(req)
    session = ort.InferenceSession(str(root / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    return root / "onnx", model, text_encoder, session


def _run(session, images: torch.Tensor) -> dict[str, torch.Tensor]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, map(torch.from_numpy, session.run(None, {"images": images.numpy()})), strict=True))


def _assert_outputs_match(onnx_out, model, images) -> None:
    with torch.no_grad():
        ref = model(images)
    for name in ("mask_logits", "region_embeds", "pixel_embeds", "logit_scale"):
        expected = getattr(ref, name)
        scale = float(expected.abs().max())
        torch.testing.assert_close(onnx_out[name], expected, rtol=0, atol=1e-4 * max(scale, 1.0))


def _real_image(shared_data: Path) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """A COCO val image fit + padded as `predict` does: (pixels [1, 3, S, S], fitted hw, original hw)."""
    path = sorted((shared_data / "coco-val2017-mini" / "val2017").glob("*.jpg"))[0]
    image = decode_image(path.read_bytes(), str(path))
    fitted = fit_size(image.shape[0], image.shape[1], SIZE)
    tensor = resize_image(torch.from_numpy(image).permute(2, 0, 1), fitted)
    return pad_to(normalise(tensor.float()), SIZE, 0.0)[None], fitted, image.shape[:2]


def test_onnx_outputs_match_pytorch_for_any_batch(exported) -> None:
    _, model, _, session = exported
    images = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))  # traced with 2
    out = _run(session, images)
    assert out["mask_logits"].shape == (3, 4, SIZE // 4, SIZE // 4)
    assert out["region_embeds"].shape == (3, 4, 64) and out["pixel_embeds"].shape == (3, 64, 16, 16)
    _assert_outputs_match(out, model, images)


def test_saved_text_embeddings_equal_the_text_tower(exported) -> None:
    folder, _, text_encoder, _ = exported
    saved = np.load(folder / "text_embeddings.npz")
    with torch.no_grad():
        embeds, valid = text_encoder.encode_classes(CLASSES, TEMPLATES)
    assert saved["embeds"].dtype == np.float32 and saved["valid"].dtype == np.bool_
    np.testing.assert_allclose(saved["embeds"], embeds.numpy(), atol=1e-6)
    np.testing.assert_array_equal(saved["valid"], valid.numpy())
    assert saved["valid"].tolist() == [
        [True, True],
        [True, False],
        [True, True],
        [True, False],
        [True, False],
    ]
    assert json.loads((folder / "classes.json").read_text())["classes"] == CLASSES


@pytest.mark.parametrize("mask_source", ["pred", "pixel"])
def test_label_map_from_onnx_equals_pytorch_on_a_real_image(exported, shared_data, mask_source) -> None:
    folder, model, text_encoder, session = exported
    pixels, fitted, original = _real_image(shared_data)
    out = _run(session, pixels)
    _assert_outputs_match(out, model, pixels)
    # ONNX side: only the exported files (no text tower).
    saved = np.load(folder / "text_embeddings.npz")
    embeds, valid = torch.from_numpy(saved["embeds"]), torch.from_numpy(saved["valid"])
    if mask_source == "pred":
        logits = class_logits(out["region_embeds"], embeds, valid, out["logit_scale"])
        onnx_scores = semantic_scores(out["mask_logits"].sigmoid(), logits)
    else:
        onnx_scores = pixel_scores(out["pixel_embeds"], embeds, valid, out["logit_scale"])
    # PyTorch side: the checkpoint's model and text tower, through the predict path.
    with torch.no_grad():
        ref_embeds, ref_valid = text_encoder.encode_classes(CLASSES, TEMPLATES)
        torch_scores = segment_scores(model, pixels, ref_embeds, ref_valid, mask_source)
    geometry = {"out_size": (SIZE, SIZE), "valid_size": fitted, "image_size": original}
    onnx_labels = label_map(onnx_scores, **geometry)
    torch_labels = label_map(torch_scores, **geometry)
    assert onnx_labels.shape == (1, *original)
    agreement = (onnx_labels == torch_labels).float().mean().item()
    assert agreement >= 0.999, agreement
    torch.testing.assert_close(onnx_scores, torch_scores, rtol=0, atol=1e-4 * float(torch_scores.max()))
    if mask_source == "pixel":
        # A constant map would agree trivially. (With random weights the N region embeddings are
        # nearly identical, so `pred` labels one class everywhere: there the scores carry the check.)
        assert len(torch_labels.unique()) >= 3


def test_manifest_describes_the_files(exported) -> None:
    folder = exported[0]
    manifest = read_manifest(folder)
    assert manifest["size"] == SIZE and manifest["opset"] == 17
    assert manifest["inputs"] == [{"name": "images", "shape": ["batch", 3, SIZE, SIZE], "dtype": "float32"}]
    shapes = {o["name"]: o["shape"] for o in manifest["outputs"]}
    assert shapes == {
        "mask_logits": ["batch", 4, 16, 16],
        "region_embeds": ["batch", 4, 64],
        "pixel_embeds": ["batch", 64, 16, 16],
        "logit_scale": [],
    }
    assert manifest["normalisation"]["mean"] == list(CLIP_MEAN)
    assert manifest["normalisation"]["std"] == list(CLIP_STD)
    assert manifest["files"] == ["model.onnx", "text_embeddings.npz", "classes.json"]
    assert max(manifest["verified"]["max_relative_error"].values()) < 1e-4
    assert sorted(p.name for p in folder.iterdir()) == sorted([*manifest["files"], "export.json"])


def test_vit_checkpoint_exports(tmp_path) -> None:
    """ViT towers use nn.MultiheadAttention, whose inference fast path has no ONNX symbolic."""
    recipe = tiny_recipe("model.clip.name=openseg-tiny-vit", "data.crop_size=64")
    _, model, _ = write_tiny_checkpoint(tmp_path / "vit.pt", recipe)
    manifest = export_onnx(ExportRequest(tmp_path / "vit.pt", tmp_path / "onnx", opset=14))
    assert manifest["size"] == 64 and manifest["vocabulary"] is None  # the recipe's crop; no classes
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    images = torch.randn(1, 3, 64, 64)
    _assert_outputs_match(_run(session, images), model, images)


@pytest.mark.parametrize(
    ("overrides", "error", "needle"),
    [
        ({"size": 100}, UsageError, "multiple of 32"),
        ({"opset": 12}, UsageError, "--opset 12"),
        ({"checkpoint": Path("missing.pt")}, InputFileError, "checkpoint not found"),
    ],
)
def test_bad_requests_fail_before_writing(tmp_path, overrides, error, needle) -> None:
    req = ExportRequest(**{"checkpoint": tmp_path / "x.pt", "out_dir": tmp_path / "out", **overrides})
    with pytest.raises(error, match=needle):
        export_onnx(req)
    assert not (tmp_path / "out" / "export.json").exists()


def test_not_a_checkpoint(tmp_path) -> None:
    (tmp_path / "x.pt").write_bytes(b"not torch")
    with pytest.raises(CheckpointError, match="not an openseg checkpoint"):
        export_onnx(ExportRequest(tmp_path / "x.pt", tmp_path / "out"))


def test_existing_export_needs_force_and_failures_leave_no_partial_files(tmp_path, monkeypatch) -> None:
    write_tiny_checkpoint(tmp_path / "model.pt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"old")
    with pytest.raises(UsageError, match="--force"):
        export_onnx(ExportRequest(tmp_path / "model.pt", out, SIZE))
    assert (out / "model.onnx").read_bytes() == b"old"

    def broken_export(*args, **kwargs):
        args[2].write(b"half a model")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", broken_export)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export_onnx(ExportRequest(tmp_path / "model.pt", out, SIZE, force=True))
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]  # no temp file, no manifest
    assert (out / "model.onnx").read_bytes() == b"old"
    monkeypatch.undo()
    export_onnx(ExportRequest(tmp_path / "model.pt", out, SIZE, [["cat"]], force=True))
    assert (out / "model.onnx").stat().st_size > 1000 and (out / "text_embeddings.npz").is_file()
    # Overwriting without a vocabulary drops the earlier one: the folder matches its manifest.
    manifest = export_onnx(ExportRequest(tmp_path / "model.pt", out, SIZE, force=True))
    assert (
        sorted(p.name for p in out.iterdir())
        == ["export.json", "model.onnx"]
        == sorted([*manifest["files"], "export.json"])
    )


def test_a_class_name_longer_than_the_text_context_is_refused(tmp_path) -> None:
    """predict refuses it; export must too, or the saved embedding is of a silently cut name."""
    write_tiny_checkpoint(tmp_path / "model.pt")
    with pytest.raises(UsageError, match="tokens long"):
        export_onnx(ExportRequest(tmp_path / "model.pt", tmp_path / "out", SIZE, [["cat " * 40], ["dog"]]))
    assert not (tmp_path / "out" / "model.onnx").exists()
