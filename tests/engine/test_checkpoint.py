"""Checkpoints: a slim `model.pt` round-trips to a model with identical outputs; anything that is not an
openseg checkpoint (or does not fit its recipe) is a one-line CheckpointError; files are read with
`weights_only=True`, so a checkpoint cannot run code."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from openseg_cli.config import recipe_to_dict
from openseg_cli.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    load_model,
    read_checkpoint,
    write_slim_checkpoint,
)
from openseg_cli.errors import CheckpointError, InputFileError
from tests.engine.helpers import combined_state_dict, tiny_recipe, write_tiny_checkpoint


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path, recipe, model, text_encoder) of one tiny random model written as `model.pt`."""
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    recipe, model, text_encoder = write_tiny_checkpoint(path, seed=1)
    return path, recipe, model, text_encoder


def _one_line_checkpoint_error(path: Path, load=read_checkpoint) -> str:
    with pytest.raises(CheckpointError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- round trip -------------------------------------------------------------------------------------


def test_round_trip_gives_identical_outputs(saved) -> None:
    path, recipe, model, text_encoder = saved
    loaded, loaded_text, loaded_recipe = load_model(path)
    assert loaded_recipe == recipe
    assert not loaded.training and not loaded_text.training  # ready for inference

    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = model(images), loaded(images)
    for name in ("mask_logits", "region_embeds", "pixel_embeds", "logit_scale"):
        assert torch.equal(getattr(want, name), getattr(got, name)), name
    words = ["circle", "a red square", "sky"]
    assert torch.equal(text_encoder.encode(words), loaded_text.encode(words))


def test_round_trip_keeps_every_weight(saved) -> None:
    path, _recipe, model, text_encoder = saved
    _, state = read_checkpoint(path)
    want = combined_state_dict(model, text_encoder)
    assert state.keys() == want.keys()
    assert all(torch.equal(state[k], want[k]) for k in want)


def test_slim_checkpoint_drops_foreign_keys_and_leaves_no_temp_file(tmp_path: Path, saved) -> None:
    _path, recipe, model, text_encoder = saved
    state = combined_state_dict(model, text_encoder)
    state["criterion.some_buffer"] = torch.zeros(1)  # not part of the model: not exported
    path = tmp_path / "model.pt"
    write_slim_checkpoint(path, recipe, state, extra={"global_step": 7})
    raw = torch.load(path, weights_only=True)
    assert "criterion.some_buffer" not in raw["state_dict"]
    assert raw["openseg"] == {"global_step": 7}
    assert raw["hyper_parameters"]["openseg_format"] == CHECKPOINT_FORMAT
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_load_model_never_fetches_pretrained_weights(tmp_path: Path, saved, monkeypatch) -> None:
    """The checkpoint holds every weight: a recipe trained from `openai` weights loads offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _path, _recipe, model, text_encoder = saved
    recipe = tiny_recipe("data.crop_size=32", "model.clip.pretrained=openai")
    path = tmp_path / "model.pt"
    write_slim_checkpoint(path, recipe, combined_state_dict(model, text_encoder))
    _model, _text, loaded_recipe = load_model(path)
    assert loaded_recipe.model.clip.pretrained == "openai"  # the recipe is reported as trained


# --- not openseg checkpoints ------------------------------------------------------------------------


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(InputFileError):
        read_checkpoint(tmp_path)  # a folder is not a checkpoint file either


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"plain text notes\n",
        random.Random(0).randbytes(4096),
        pytest.param(b"hello", id="text-keyerror"),
        pytest.param(b"this is not a JPEG, just text\n", id="text-indexerror"),
        pytest.param(b"j*\xaf", id="bytes-struct-error"),
    ],
)
def test_bytes_torch_cannot_read(tmp_path: Path, content: bytes) -> None:
    """Any file torch cannot read is a CheckpointError, whatever torch's unpickler raises inside."""
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    assert "is not an openseg checkpoint" in _one_line_checkpoint_error(path)


@pytest.mark.parametrize(
    "payload",
    [
        {"weights": torch.zeros(3)},
        [torch.zeros(3)],
        {"state_dict": {}, "hyper_parameters": {"lr": 0.1}},  # a Lightning checkpoint of another project
        {"hyper_parameters": {"openseg_format": 1}},  # no weights
    ],
    ids=["plain-dict", "list", "foreign-lightning", "no-state-dict"],
)
def test_torch_files_that_are_not_openseg(tmp_path: Path, payload) -> None:
    path = tmp_path / "model.pt"
    torch.save(payload, path)
    assert "no openseg recipe inside" in _one_line_checkpoint_error(path)


def test_wrong_format_version(tmp_path: Path, saved) -> None:
    _path, recipe, _model, _text = saved
    path = tmp_path / "model.pt"
    torch.save(
        {"hyper_parameters": {"recipe": recipe_to_dict(recipe), "openseg_format": 2}, "state_dict": {}}, path
    )
    message = _one_line_checkpoint_error(path)
    assert "format 2 is not supported" in message and f"format {CHECKPOINT_FORMAT}" in message


def test_saved_recipe_the_code_no_longer_understands(tmp_path: Path, saved) -> None:
    _path, recipe, _model, _text = saved
    data = recipe_to_dict(recipe)
    data["model"]["old_option"] = 1
    path = tmp_path / "model.pt"
    torch.save(
        {"hyper_parameters": {"recipe": data, "openseg_format": CHECKPOINT_FORMAT}, "state_dict": {}}, path
    )
    assert "'model.old_option'" in _one_line_checkpoint_error(path)  # a CheckpointError, not a RecipeError


def test_weights_that_do_not_fit_the_recipe(tmp_path: Path, saved) -> None:
    """Weights of a 4-query model under a recipe saying 5 queries: one line, not a torch size dump."""
    _path, _recipe, model, text_encoder = saved
    path = tmp_path / "model.pt"
    other = tiny_recipe("data.crop_size=32", "model.num_queries=5")
    write_slim_checkpoint(path, other, combined_state_dict(model, text_encoder))
    message = _one_line_checkpoint_error(path, load=load_model)
    assert "weights do not fit" in message


def test_missing_weights_do_not_load_silently(tmp_path: Path, saved) -> None:
    _path, recipe, model, text_encoder = saved
    state = combined_state_dict(model, text_encoder)
    dropped = next(k for k in state if k.startswith("model."))
    del state[dropped]
    path = tmp_path / "model.pt"
    write_slim_checkpoint(path, recipe, state)
    assert "weights do not fit" in _one_line_checkpoint_error(path, load=load_model)


# --- weights_only -----------------------------------------------------------------------------------


def _touch(path: str) -> dict:
    """What the malicious pickle below runs when it is unpickled without weights_only."""
    Path(path).write_text("executed")
    return {}


class _RunsCodeWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_touch, (self.marker,))


def test_a_pickle_that_runs_code_is_refused_and_not_run(tmp_path: Path, saved) -> None:
    _path, recipe, _model, _text = saved
    marker = tmp_path / "executed.txt"
    path = tmp_path / "model.pt"
    payload = {
        "hyper_parameters": {"recipe": recipe_to_dict(recipe), "openseg_format": CHECKPOINT_FORMAT},
        "state_dict": {},
        "extra": _RunsCodeWhenUnpickled(marker),
    }
    torch.save(payload, path)
    # Positive control: the payload really runs code under a plain unpickler.
    torch.load(path, weights_only=False)
    assert marker.read_text() == "executed"
    marker.unlink()

    assert "is not an openseg checkpoint" in _one_line_checkpoint_error(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_model(path)
    assert not marker.exists()


def test_torch_load_is_called_with_weights_only(saved, monkeypatch) -> None:
    path = saved[0]
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    read_checkpoint(path)
    assert calls and all(c.get("weights_only") is True for c in calls)
