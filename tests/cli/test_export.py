"""`openseg export onnx` as a user runs it: a runnable model.onnx with a vocabulary, and one clean error
line (no traceback) for each bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli.helpers import assert_clean_error, assert_ok, run_cli
from tests.engine.helpers import write_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    write_tiny_checkpoint(path)
    return path


def test_export_onnx_writes_a_runnable_model_and_the_vocabulary(checkpoint, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "onnx"
    result = run_cli("export", "onnx", checkpoint, "--out", out, "--size", "64", "-q", "cat, kitten; dog")
    assert_ok(result)
    assert "model.onnx (size 64, opset 17) + text embeddings of 2 classes" in " ".join(result.stdout.split())
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["files"] == ["model.onnx", "text_embeddings.npz", "classes.json"]
    assert json.loads((out / "classes.json").read_text())["classes"] == [["cat", "kitten"], ["dog"]]
    assert np.load(out / "text_embeddings.npz")["embeds"].shape == (2, 2, 64)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"images": np.zeros((2, 3, 64, 64), np.float32)})
    assert [o.shape for o in outputs] == [(2, 4, 16, 16), (2, 4, 64), (2, 64, 16, 16), ()]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["missing.pt", "--out", "{out}"], ["checkpoint not found", "missing.pt"]),
        (["{ckpt}", "--out", "{out}", "--size", "100"], ["--size 100", "multiple of 32"]),
        (["{ckpt}", "--out", "{full}"], ["is not empty", "--force"]),
        (["{ckpt}", "--out", "{out}", "-q", "cat", "--classes", "c.txt"], ["not both"]),
    ],
    ids=["missing-checkpoint", "bad-size", "out-not-empty", "two-vocabularies"],
)
def test_bad_input_gives_one_clean_error(checkpoint, tmp_path, args, needles) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "model.onnx").write_bytes(b"earlier export")
    paths = {"ckpt": str(checkpoint), "out": str(tmp_path / "out"), "full": str(full)}
    result = run_cli("export", "onnx", *(a.format(**paths) for a in args), cwd=tmp_path)
    assert_clean_error(result, *needles)
    assert not (tmp_path / "out").exists()
    assert (full / "model.onnx").read_bytes() == b"earlier export"
