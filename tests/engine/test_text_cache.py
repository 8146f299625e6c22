"""Class embeddings are encoded once and read back from disk, keyed by weights, classes and templates."""

from __future__ import annotations

import pytest
import torch

from openseg_cli.engine.text_cache import class_embeddings
from openseg_cli.models import build_model
from openseg_cli.text.templates import load_templates
from tests.engine.helpers import tiny_recipe

CLASSES = [["wall", "walls"], ["sky"], ["person", "people"]]


@pytest.fixture()
def text_encoder():
    torch.manual_seed(0)
    return build_model(tiny_recipe().model)[1].eval()


def test_second_call_reads_the_disk_and_matches(text_encoder, tmp_path, monkeypatch) -> None:
    first = class_embeddings(text_encoder, CLASSES, None, tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the text tower ran although the vocabulary is cached")

    monkeypatch.setattr(text_encoder, "encode_classes", refuse)
    second = class_embeddings(text_encoder, CLASSES, None, tmp_path)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_templates_classes_and_weights_change_the_key(text_encoder, tmp_path) -> None:
    class_embeddings(text_encoder, CLASSES, None, tmp_path)
    templates = load_templates("vild63")  # uses {article}: "an apple", "a wall"
    with_templates = class_embeddings(text_encoder, CLASSES, templates, tmp_path)
    class_embeddings(text_encoder, CLASSES[:2], None, tmp_path)
    torch.manual_seed(1)
    other = build_model(tiny_recipe().model)[1].eval()
    class_embeddings(other, CLASSES, None, tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 4
    assert with_templates[0].shape == (3, 2, text_encoder.embed_dim)
    assert with_templates[1].tolist() == [[True, True], [True, False], [True, True]]


def test_a_damaged_entry_is_recomputed(text_encoder, tmp_path) -> None:
    good = class_embeddings(text_encoder, CLASSES, None, tmp_path)
    entry = next(tmp_path.glob("*.pt"))
    entry.write_bytes(b"not a tensor file")
    again = class_embeddings(text_encoder, CLASSES, None, tmp_path)
    assert torch.equal(good[0], again[0])
