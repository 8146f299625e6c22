"""The nouns sidecar of a shard: `{shard stem}.nouns.json` beside the tar, written by `extract-nouns`.

`{"schema": 1, "filter", "extractor", "words": {sample key: [[words of caption 1], ...]}}`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from openseg_cli.atomic import atomic_write_json
from openseg_cli.data.schema import SCHEMA_VERSION
from openseg_cli.errors import InputFileError


def nouns_sidecar_path(tar_path: str | Path) -> Path:
    """`{shard stem}.nouns.json` beside the tar."""
    tar_path = Path(tar_path)
    return tar_path.with_name(tar_path.name.removesuffix(".tar") + ".nouns.json")


def read_nouns_sidecar(tar_path: str | Path) -> dict[str, Any] | None:
    """The nouns sidecar of a shard (`{"schema", "filter", "extractor", "words": {key: [[str]]}}`).

    None when there is none; InputFileError when it is malformed.
    """
    path = nouns_sidecar_path(tar_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exn:
        raise InputFileError(f"{path}: malformed nouns sidecar ({exn}); rerun extract-nouns") from None
    if not isinstance(data, dict) or not isinstance(data.get("words"), dict):
        raise InputFileError(f"{path}: nouns sidecar without a 'words' object; rerun extract-nouns")
    if data.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise InputFileError(f"{path}: sidecar schema {data.get('schema')!r}, expected {SCHEMA_VERSION}")
    return data


def write_nouns_sidecar(tar_path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write the nouns sidecar of a shard atomically; `data["words"]` maps key → [[words of caption i]]."""
    if not isinstance(data.get("words"), Mapping):
        raise ValueError("nouns sidecar needs a 'words' mapping: key -> list of word lists")
    out = {"schema": SCHEMA_VERSION, **dict(data)}
    path = nouns_sidecar_path(tar_path)
    atomic_write_json(path, out)
    return path
