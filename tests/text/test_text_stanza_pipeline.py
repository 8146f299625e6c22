"""Building stanza pipelines: explicit-files layout, and fast one-line failures without models."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from openseg_cli.errors import StanzaModelsMissing, UsageError
from openseg_cli.text import NounExtractor, build_stanza_pipeline


def _assert_one_line_hint(err: StanzaModelsMissing, folder: Path) -> None:
    message = str(err)
    assert "\n" not in message
    assert str(folder) in message


def test_offline_empty_dir_fails_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(StanzaModelsMissing) as info:
        build_stanza_pipeline(tmp_path, offline=True)
    assert time.perf_counter() - start < 5
    _assert_one_line_hint(info.value, tmp_path)
    assert "stanza.download('en')" in str(info.value) and "--model-dir" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # offline never writes (no resources.json download)


def test_offline_resources_without_english(tmp_path: Path) -> None:
    (tmp_path / "resources.json").write_text("{}", encoding="utf-8")
    with pytest.raises(StanzaModelsMissing) as info:
        build_stanza_pipeline(tmp_path, offline=True)
    _assert_one_line_hint(info.value, tmp_path)


def test_half_explicit_layout(tmp_path: Path) -> None:
    (tmp_path / "en_tokenize.pt").write_bytes(b"")
    with pytest.raises(StanzaModelsMissing, match="en_pos.pt") as info:
        build_stanza_pipeline(tmp_path)
    _assert_one_line_hint(info.value, tmp_path)


def test_failed_download_is_models_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import requests
    import stanza.pipeline.core

    def no_network(*args: object, **kwargs: object) -> None:
        raise requests.ConnectionError("Failed to resolve 'raw.githubusercontent.com'")

    monkeypatch.setattr(stanza.pipeline.core, "download_resources_json", no_network)
    with pytest.raises(StanzaModelsMissing, match="download failed") as info:
        build_stanza_pipeline(tmp_path, offline=False)
    _assert_one_line_hint(info.value, tmp_path)
    assert isinstance(info.value.__cause__, requests.ConnectionError)  # kept for --debug


def test_unknown_filter_fails_before_building(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        NounExtractor.from_options(tmp_path, offline=True, filter="adjectives")


@pytest.mark.stanza
def test_explicit_layout_from_shared_model(stanza_model_dir: Path) -> None:
    extractor = NounExtractor.from_options(stanza_model_dir, offline=True, filter="noun")
    assert set(extractor.pipeline.processors) == {"tokenize", "pos"}
    assert str(stanza_model_dir) in extractor.description
    assert "horse" in extractor.extract(["Two horses in a field."])[0]


@pytest.mark.stanza
def test_explicit_layout_without_stub_resources(stanza_model_dir: Path, tmp_path: Path) -> None:
    for name in ("en_tokenize.pt", "en_pos.pt"):
        (tmp_path / name).symlink_to(stanza_model_dir / name)
    pipeline = build_stanza_pipeline(tmp_path, offline=True)
    assert "pos" in pipeline.processors
