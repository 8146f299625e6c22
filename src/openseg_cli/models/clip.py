"""Loading open_clip models: our tiny config registry, pretrained tags or files, and the tower split.

`pretrained` is one of three things, told apart up front (never by trying and catching):
- None / "" : random init (tests, toy recipes);
- an existing file path: a local `.pt` / `.safetensors` checkpoint;
- an open_clip tag of the model (`open_clip.get_pretrained_cfg`): downloaded (or read from the cache).
Anything else, an unreachable hub, or a failed download raises `PretrainedWeightsError` with one line that
says how to pass a local file. There is no silent fallback to random weights.
"""

from __future__ import annotations

import difflib
import os
import socket
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import open_clip
from torch import nn

from openseg_cli.config.schema import ClipConfig
from openseg_cli.errors import InputFileError, PretrainedWeightsError, RecipeError

_REGISTERED: set[str] = set()
_PROBE_TIMEOUT_S = 3.0


def _packaged_config_dir() -> Path:
    return Path(str(resources.files("openseg_cli") / "assets" / "clip_configs"))


def register_clip_configs(config_file: str | None = None) -> list[str]:
    """Register the packaged tiny configs (`openseg-tiny-rn`, `openseg-tiny-vit`, `openseg-toy-clip`) and
    `config_file`.

    Idempotent: each path is added to open_clip's registry once. The file stem is the model name.
    Returns the sorted model names that openseg ships plus the extra file's stem.
    Raises InputFileError when `config_file` does not exist.
    """
    paths = [_packaged_config_dir()]
    if config_file:
        if not os.path.isfile(config_file):
            raise InputFileError(f"clip.config_file not found: {config_file}")
        paths.append(Path(config_file).resolve())
    for path in paths:
        if str(path) not in _REGISTERED:
            open_clip.add_model_config(path)
            _REGISTERED.add(str(path))
    names = sorted(p.stem for p in _packaged_config_dir().glob("*.json"))
    if config_file:
        names.append(Path(config_file).stem)
    return names


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _cached_hub_file(hub_id: str) -> str | None:
    """The local cache path of an open_clip `hf_hub` entry ("org/repo/file" or "org/repo/"), if cached.

    Looks for the same files as open_clip, safetensors first.
    """
    from huggingface_hub import try_to_load_from_cache
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo_id, filename = os.path.split(hub_id)
    filename = filename or HF_WEIGHTS_NAME
    candidates = [filename]
    if filename == HF_WEIGHTS_NAME:
        candidates.insert(0, HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        candidates.insert(0, filename[:-4] + ".safetensors")
    for name in candidates:
        path = try_to_load_from_cache(repo_id, name)
        if isinstance(path, str):
            return path
    return None


def _reachable(url: str) -> bool:
    """A quick TCP probe, so that a machine without network fails in seconds instead of ~46 s of retries."""
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct probe proves nothing: let the download try
    host = urlparse(url).hostname
    if not host:
        return False
    try:
        with socket.create_connection((host, 443), timeout=_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))


def _how_to_fix(name: str) -> str:
    return f"pass a local file instead (clip.pretrained: /path/to/{name}.safetensors)"


def _resolve_hub_tag(name: str, tag: str, tag_cfg: dict[str, Any]) -> str:
    """Return a local file for a known tag when it is cached; else "" when a download looks possible.

    Raises PretrainedWeightsError when the hub is offline (HF_HUB_OFFLINE=1) or unreachable and the
    file is not already in the cache.
    """
    hub_id = tag_cfg.get("hf_hub", "")
    if hub_id:
        cached = _cached_hub_file(hub_id)
        if cached:
            return cached
    if _hub_offline():
        raise PretrainedWeightsError(
            f"cannot download open_clip weights {name}/{tag}: HF_HUB_OFFLINE is set; {_how_to_fix(name)}"
        )
    from huggingface_hub import constants

    url = constants.ENDPOINT if hub_id else tag_cfg.get("url", "")
    if not _reachable(url):
        raise PretrainedWeightsError(
            f"cannot download open_clip weights {name}/{tag}: {urlparse(url).hostname} is unreachable; "
            f"{_how_to_fix(name)}"
        )
    return ""


def _warn_quick_gelu(name: str, tag: str, tag_cfg: dict[str, Any]) -> None:
    """OpenAI weights were trained with QuickGELU: the plain model name would run them with GELU."""
    model_quick = bool((open_clip.get_model_config(name) or {}).get("quick_gelu", False))
    if bool(tag_cfg.get("quick_gelu", False)) != model_quick:
        hint = f"{name}-quickgelu" if not model_quick else name.removesuffix("-quickgelu")
        warnings.warn(
            f"open_clip weights {name}/{tag} expect quick_gelu={not model_quick}; use clip.name: {hint}",
            UserWarning,
            stacklevel=3,
        )


def check_model_name(name: str, label: str = "clip.name") -> None:
    """RecipeError naming `label` and up to three close matches when `name` is not an open_clip model
    (call `register_clip_configs` first so that openseg's and the user's configs count)."""
    if name.startswith(("hf-hub:", "local-dir:")) or name in open_clip.list_models():
        return
    close = difflib.get_close_matches(name, open_clip.list_models(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see open_clip.list_models()"
    raise RecipeError(f"{label} '{name}' is not an open_clip model{hint}")


def load_clip(cfg: ClipConfig) -> nn.Module:
    """Create the open_clip model `cfg.name` with weights from `cfg.pretrained` (tag, file or None).

    Registers the packaged tiny configs (and `cfg.config_file`) first. Raises RecipeError for an unknown
    model name, PretrainedWeightsError (one line) for an unknown tag, a missing file, an offline hub or a
    failed download. Runs on CPU in float32; the caller moves it.
    """
    register_clip_configs(cfg.config_file)
    check_model_name(cfg.name)
    pretrained = cfg.pretrained or None
    if pretrained and not os.path.isfile(pretrained):
        tag_cfg = open_clip.get_pretrained_cfg(cfg.name, pretrained)
        if not tag_cfg and _looks_like_path(pretrained):
            raise PretrainedWeightsError(
                f"clip.pretrained file not found for {cfg.name}: {pretrained}; {_how_to_fix(cfg.name)}"
            )
        if not tag_cfg:
            tags = open_clip.list_pretrained_tags_by_model(cfg.name)
            known = f"known tags: {', '.join(tags)}" if tags else "it has no known tags"
            raise PretrainedWeightsError(
                f"clip.pretrained '{pretrained}' is neither a file nor a tag of {cfg.name} ({known}); "
                f"{_how_to_fix(cfg.name)}"
            )
        _warn_quick_gelu(cfg.name, pretrained, tag_cfg)
        # A cached hub file is loaded as a plain path: open_clip would otherwise contact the hub again.
        pretrained = _resolve_hub_tag(cfg.name, pretrained, tag_cfg) or pretrained
    try:
        return open_clip.create_model(cfg.name, pretrained=pretrained)
    except Exception as err:  # any failure to read the weights (torch, pickle, safetensors, download)
        if not pretrained:
            raise
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        if os.path.isfile(cfg.pretrained or ""):
            raise PretrainedWeightsError(
                f"cannot load clip.pretrained file {cfg.pretrained} into {cfg.name}: {first}; pass a "
                f"checkpoint of this model (clip.pretrained: /path/to/{cfg.name}.safetensors)"
            ) from err
        raise PretrainedWeightsError(
            f"cannot load open_clip weights {cfg.name}/{cfg.pretrained}: {first}; {_how_to_fix(cfg.name)}"
        ) from err


@dataclass
class ClipTowers:
    """The two towers of one open_clip model, split so that each has exactly one owner.

    `visual` goes to the Backbone; `text` is the same CLIP module with its visual tower removed (so the
    visual weights are not saved twice), used by the TextEncoder with `tokenizer`.
    """

    visual: nn.Module
    text: nn.Module
    tokenizer: Any

    @classmethod
    def from_config(cls, cfg: ClipConfig) -> ClipTowers:
        """Load with `load_clip(cfg)` and split; same failure modes as `load_clip`."""
        model = load_clip(cfg)
        tokenizer = open_clip.get_tokenizer(cfg.name)
        visual = model.visual
        model.visual = None  # nn.Module allows None for a registered child: drops it from state_dict
        return cls(visual=visual, text=model, tokenizer=tokenizer)
