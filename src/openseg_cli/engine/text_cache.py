"""Class-name embeddings cached on disk, keyed by the text tower's weights, the classes and the templates.

Encoding 847 classes × 80 prompt templates takes minutes with a large text tower; `evaluate` and
`predict` encode a vocabulary once and read it back afterwards. The key hashes the text tower's weights
(so two checkpoints never share an entry by accident), the class lists (order and synonyms) and the
templates. Entries are written atomically and read with `weights_only=True`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from openseg_cli.atomic import atomic_write

CACHE_ENV = "OPENSEG_CACHE_DIR"


def default_cache_dir() -> Path:
    """`$OPENSEG_CACHE_DIR/text`, else `~/.cache/openseg/text`."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "openseg"
    return Path(root) / "text"


def weights_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over the module's state dict (names, shapes, dtypes and bytes), computed once per module."""
    cached = getattr(module, "_openseg_fingerprint", None)
    if cached:
        return cached
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    module._openseg_fingerprint = digest.hexdigest()
    return module._openseg_fingerprint


def cache_key(text_encoder: torch.nn.Module, classes: list[list[str]], templates: list[str] | None) -> str:
    payload = json.dumps({"classes": classes, "templates": templates or ["{}"]}, ensure_ascii=False)
    return hashlib.sha256((weights_fingerprint(text_encoder) + payload).encode()).hexdigest()[:32]


def class_embeddings(
    text_encoder, classes: list[list[str]], templates: list[str] | None = None, cache_dir: Path | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeds [C, S, D], valid [C, S]) as `TextEncoder.encode_classes`, from the disk cache when there.

    `cache_dir=None` uses `default_cache_dir()`. An unreadable entry is recomputed and rewritten.
    """
    directory = cache_dir or default_cache_dir()
    path = directory / f"{cache_key(text_encoder, classes, templates)}.pt"
    if path.is_file():
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            return entry["embeds"], entry["valid"]
        except Exception:  # noqa: BLE001 - a damaged entry is only a cache miss
            pass
    with torch.inference_mode():
        embeds, valid = text_encoder.encode_classes(classes, templates)
    embeds, valid = embeds.detach().cpu().clone(), valid.detach().cpu().clone()
    entry = {"embeds": embeds, "valid": valid, "classes": classes, "templates": templates}
    atomic_write(path, lambda file: torch.save(entry, file))
    return embeds, valid
