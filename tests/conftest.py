"""Shared fixtures: real third-party samples from ../shared (skipped cleanly when absent)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_root() -> Path:
    return Path(os.environ.get("OPENSEG_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (real COCO/ADE/UD samples); skips the test when it is not there."""
    root = _shared_root() / "data"
    if not root.is_dir():
        pytest.skip(f"shared samples not found at {root}")
    return root


@pytest.fixture(scope="session")
def stanza_model_dir() -> Path:
    """The small offline stanza English model; skips when absent."""
    root = Path(os.environ.get("OPENSEG_STANZA_DIR", _shared_root() / "models" / "stanza-en-ewt-dev"))
    if not (root / "en_pos.pt").is_file():
        pytest.skip(f"stanza models not found at {root}")
    return root


@pytest.fixture(scope="session")
def chromium() -> Path:
    """A Chromium binary for headless rendering: $OPENSEG_CHROMIUM, else `chromium` or `chromium-browser`
    on PATH (`.ci/run` installs Debian's package); skips the test when there is none."""
    for candidate in (os.environ.get("OPENSEG_CHROMIUM"), "chromium", "chromium-browser"):
        found = shutil.which(candidate) if candidate else None
        if found:
            return Path(found)
    pytest.skip("no chromium binary on PATH (apt-get install chromium) to render the HTML report")


@pytest.fixture(autouse=True)
def single_thread():
    """Tests run tiny models: intra-op threads only slow them, badly on a loaded 2-core machine (a suite
    went from 6 s to 47 s). Restored afterwards; subprocess CLI tests choose their own threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def text_cache_in_tmp(tmp_path_factory, monkeypatch):
    """Keep the on-disk text-embedding cache out of the user's home (subprocess CLI calls inherit it)."""
    monkeypatch.setenv("OPENSEG_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "openseg-cache"))
