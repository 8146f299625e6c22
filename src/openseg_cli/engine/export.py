"""`export_onnx`: an openseg checkpoint's image tower as ONNX, plus a vocabulary's text embeddings.

Files written into the output folder (each atomically; `export.json` last, so its presence means the
export is complete):
- `model.onnx`: images float32 [B, 3, S, S] (CLIP-normalised, fit + pad bottom/right with 0) →
  mask_logits [B, N, S/4, S/4], region_embeds [B, N, D], pixel_embeds [B, D, S/4, S/4] (both
  L2-normalised), logit_scale [] (1/τ). The batch axis is dynamic; S is fixed (the model's position
  encodings and the ViT position-embedding resize are traced at that size).
- `text_embeddings.npz` + `classes.json` when a vocabulary is given: `embeds` float32 [C, S_syn, D]
  (L2-normalised, prompt templates averaged) and `valid` bool [C, S_syn], so ONNX users never need the
  text tower. Scores follow `inference.scoring` (formula in `export.json`).
- `export.json`: checkpoint, size, opset, exporter, input/output names and shapes, normalisation.

Exporter: torch's TorchScript-based `torch.onnx.export(..., dynamo=False)`. The default dynamo exporter
of torch 2.14 needs the extra `onnxscript` package; the TorchScript one exports these models (convs,
attention, bicubic resize) at opset 17 and matches PyTorch to ~1e-6 (checked in the tests).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from openseg_cli.atomic import atomic_write, atomic_write_json
from openseg_cli.data.transforms import CLIP_MEAN, CLIP_STD
from openseg_cli.engine.checkpoint import load_model
from openseg_cli.engine.predict import check_token_lengths
from openseg_cli.engine.text_cache import class_embeddings
from openseg_cli.errors import UsageError

EXPORT_FORMAT = 1
INPUT_NAME = "images"
OUTPUT_NAMES = ("mask_logits", "region_embeds", "pixel_embeds", "logit_scale")
VOCABULARY_FILES = ("text_embeddings.npz", "classes.json")
MIN_OPSET = 14  # scaled_dot_product_attention (decoder, attention pools) exports from opset 14 on
MAX_OPSET = 20
SCORING = (
    "pred: logits[b,n,c] = logit_scale * max over valid s of <region_embeds[b,n], embeds[c,s]>; "
    "scores[b,c] = sum_n sigmoid(mask_logits[b,n]) * softmax_c(logits[b,n])[c]; "
    "pixel: softmax_c(logit_scale * max_s <pixel_embeds[b,:,y,x], embeds[c,s]>); "
    "label = argmax_c after bilinear resize to the padded canvas and a crop of the image part"
)


@dataclass(frozen=True)
class ExportRequest:
    checkpoint: Path
    out_dir: Path
    size: int | None = None  # None: the recipe's crop size
    classes: list[list[str]] | None = None  # each class: its synonyms
    templates: list[str] | None = None
    opset: int = 17
    force: bool = False
    batch: int = 2  # example batch traced (any batch runs afterwards)


class ImageTower(nn.Module):
    """OpenSegModel.forward as a tuple of tensors (ONNX outputs cannot be dataclasses)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        out = self.model(images)
        return out.mask_logits, out.region_embeds, out.pixel_embeds, out.logit_scale


def check_request(req: ExportRequest) -> None:
    """Fail fast, before loading anything: UsageError for a size that is not a positive multiple of 32,
    an opset outside [MIN_OPSET, MAX_OPSET], or an output folder that holds files (without force)."""
    if req.size is not None and (req.size <= 0 or req.size % 32):
        raise UsageError(f"--size {req.size} must be a positive multiple of 32")
    if not MIN_OPSET <= req.opset <= MAX_OPSET:
        raise UsageError(f"--opset {req.opset} is not supported (use {MIN_OPSET}..{MAX_OPSET})")
    out = Path(req.out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not req.force:
        raise UsageError(f"--out {out} is not empty; pass --force to overwrite the export in it")


def export_onnx(req: ExportRequest) -> dict:
    """Write model.onnx (+ text embeddings) and export.json into `req.out_dir`; returns the manifest.

    Raises UsageError (bad size, opset or output folder), InputFileError / CheckpointError (checkpoint).
    """
    check_request(req)
    if importlib.util.find_spec("onnx") is None:
        raise UsageError("ONNX export needs the onnx package: pip install 'openseg-cli[export]'")
    model, text_encoder, recipe = load_model(req.checkpoint, "cpu")
    if req.classes:  # as predict does: the text tower would cut a longer name silently
        check_token_lengths(text_encoder.tokenizer, req.classes, req.templates)
    size = req.size or recipe.data.crop_size
    if size % 32:
        raise UsageError(f"the recipe's crop size {size} is not a multiple of 32; pass --size")
    out = Path(req.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Overwriting (--force): no manifest until the new export is whole, and no stale vocabulary.
    stale = ["export.json"] + ([] if req.classes else list(VOCABULARY_FILES))
    for name in stale:
        (out / name).unlink(missing_ok=True)
    tower = ImageTower(model).eval()
    example = torch.randn(req.batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = [t.numpy() for t in tower(example)]
    _write_onnx(tower, example, out / "model.onnx", req.opset)
    files = ["model.onnx"]
    if req.classes:
        files += _write_vocabulary(out, text_encoder, req.classes, req.templates)
    manifest = _manifest(req, recipe, size, expected, files)
    manifest["verified"] = _verify(out / "model.onnx", example, expected)
    atomic_write_json(out / "export.json", manifest)
    return manifest


def _write_onnx(tower: nn.Module, example: Tensor, path: Path, opset: int) -> None:
    """TorchScript-based export, written atomically (the exporter takes a file object)."""
    axes = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES[:3]}}
    fastpath = torch.backends.mha.get_fastpath_enabled()

    def export(file) -> None:
        torch.onnx.export(
            tower,
            (example,),
            file,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
            do_constant_folding=True,
        )

    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter is deprecated in favour of dynamo (which needs onnxscript) and
            # warns about Python control flow on shapes: sizes are fixed here, so both are expected.
            warnings.simplefilter("ignore")
            # nn.MultiheadAttention's inference fast path (`_native_multi_head_attention`, used by the ViT
            # towers) has no ONNX symbolic: the plain path exports as MatMul/Softmax.
            torch.backends.mha.set_fastpath_enabled(False)
            atomic_write(path, export)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _verify(path: Path, example: Tensor, expected: list[np.ndarray]) -> dict | None:
    """Run the exported file with onnxruntime on the traced batch: the largest |ONNX - PyTorch| per
    output, relative to that output's largest magnitude. None when onnxruntime is not installed."""
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: example.numpy()})
    errors = {
        name: float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-12))
        for name, a, b in zip(OUTPUT_NAMES, got, expected, strict=True)
    }
    return {"runtime": f"onnxruntime {onnxruntime.__version__}", "max_relative_error": errors}


def _write_vocabulary(out: Path, text_encoder, classes, templates) -> list[str]:
    """text_embeddings.npz (embeds float32 [C, S, D], valid bool [C, S]) and classes.json."""
    embeds, valid = class_embeddings(text_encoder, classes, templates)
    buffer = io.BytesIO()
    np.savez(buffer, embeds=embeds.float().numpy(), valid=valid.numpy())
    atomic_write(out / "text_embeddings.npz", lambda file: file.write(buffer.getvalue()))
    atomic_write_json(out / "classes.json", {"classes": classes, "templates": templates})
    return list(VOCABULARY_FILES)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(req: ExportRequest, recipe, size: int, expected: list, files: list[str]) -> dict:
    shapes = [["batch", *a.shape[1:]] if a.ndim else [] for a in expected]
    return {
        "format": EXPORT_FORMAT,
        "checkpoint": str(req.checkpoint),
        "checkpoint_sha256": _sha256(Path(req.checkpoint)),
        "clip": recipe.model.clip.name,
        "size": size,
        "opset": req.opset,
        "exporter": f"torch.onnx.export(dynamo=False), torch {torch.__version__}",
        "inputs": [{"name": INPUT_NAME, "shape": ["batch", 3, size, size], "dtype": "float32"}],
        "outputs": [
            {"name": name, "shape": shape, "dtype": "float32"}
            for name, shape in zip(OUTPUT_NAMES, shapes, strict=True)
        ],
        "normalisation": {
            "mean": list(CLIP_MEAN),
            "std": list(CLIP_STD),
            "input": "RGB / 255, (x - mean) / std; long side resized to size, padded bottom/right with 0",
        },
        "scoring": SCORING,
        "vocabulary": {"classes": len(req.classes), "templates": req.templates} if req.classes else None,
        "files": files,
    }


def read_manifest(out_dir: str | Path) -> dict:
    """export.json of an export folder (for users and tests)."""
    return json.loads((Path(out_dir) / "export.json").read_text(encoding="utf-8"))
