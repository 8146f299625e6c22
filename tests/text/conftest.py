"""Fixtures for text tests: one stanza pipeline per session (building it takes ~1 s)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(request: pytest.FixtureRequest):
    """stanza tests tag with 1 torch thread: on a busy 2-core machine the default threads stalled the
    suite from 5 s to 100-250 s (OpenMP contention). Restored after each test: other packages unaffected."""
    if request.node.get_closest_marker("stanza") is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def stanza_pipeline(stanza_model_dir: Path):
    from openseg_cli.text.stanza_pipeline import build_stanza_pipeline

    return build_stanza_pipeline(stanza_model_dir, offline=True)


@pytest.fixture(scope="session")
def stanza_extractor(stanza_pipeline):
    from openseg_cli.text import NounExtractor

    return NounExtractor(stanza_pipeline, "noun")


@pytest.fixture(scope="session")
def coco_captions(shared_data: Path) -> list[str]:
    """All 25,014 real COCO val2017 captions, in file order."""
    path = shared_data / "coco-captions-val2017" / "captions_val2017.json"
    return [
        annotation["caption"] for annotation in json.loads(path.read_text(encoding="utf-8"))["annotations"]
    ]
