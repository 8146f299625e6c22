"""Read recipes: YAML → frozen dataclasses, strict keys, one-level `base:`, `--set a.b=c` overrides.

Failure modes (all `RecipeError`, one line): missing/unreadable file, malformed YAML, an unknown key (the
message names the full dotted key and its close matches), a value of the wrong type, a malformed override.
Override values are parsed with `yaml.safe_load` (never `eval`).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from openseg_cli.config.schema import Recipe
from openseg_cli.errors import RecipeError

# YAML 1.1 (PyYAML) reads `1e-3` and `1.0e5` as strings (it wants a dot and a signed exponent): for a
# float field, such a plain scientific-notation string is taken as the number it spells.
_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load `path` (with its optional `base:` recipe), apply `a.b=c` overrides, validate, freeze."""
    raw = _read_yaml_with_base(Path(path))
    for item in overrides:
        _apply_override(raw, item)
    return recipe_from_dict(raw, source=str(path))


# Fields that take one of a few names: checked when the recipe is read, not deep inside a run.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("loss", "segmentation"): ("max_dice", "hungarian"),
    ("loss", "grounding_negatives"): ("device", "all_gather"),
    ("loss", "segmentation_reduction"): ("batch", "image"),
    ("model", "mask_pooling"): ("soft", "detached", "binary"),
    ("inference", "rule"): ("sum", "max"),
    ("data", "caption_sampling"): ("one", "all"),
    ("optim", "optimizer"): ("sgd", "adamw"),
    ("optim", "schedule"): ("cosine", "constant"),
}


def recipe_from_dict(raw: dict[str, Any], source: str = "recipe") -> Recipe:
    """Build a `Recipe` from plain data (a YAML mapping or a checkpoint's saved recipe)."""
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: a recipe must be a mapping of sections, got {type(raw).__name__}")
    recipe = _build(Recipe, raw, prefix="", source=source)
    for (section, key), allowed in CHOICES.items():
        value = getattr(getattr(recipe, section), key)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise RecipeError(
                f"{source}: '{section}.{key}' must be one of {', '.join(allowed)}, got {value!r}{hint}"
            )
    return recipe


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """Plain, YAML/JSON-safe data (tuples become lists); `recipe_from_dict` inverts it."""
    return _plain(dataclasses.asdict(recipe))


def dump_recipe(recipe: Recipe, path: str | Path) -> None:
    """Write the resolved recipe as YAML (atomically), as saved in every run folder."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(recipe_to_dict(recipe), sort_keys=False))
    tmp.replace(path)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RecipeError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise RecipeError(f"{path}: malformed YAML{where}: {getattr(err, 'problem', err)}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecipeError(f"{path}: cannot read recipe: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data


def _read_yaml_with_base(path: Path) -> dict[str, Any]:
    """One level of `base: other.yaml` (relative to the recipe's folder); the child's keys win."""
    data = _read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    base_data = _read_yaml(path.parent / str(base))
    if "base" in base_data:
        raise RecipeError(f"{path}: base recipe {base} has a base of its own; only one level is allowed")
    return _deep_merge(base_data, data)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """`a.b=c`: value parsed as YAML (`1e-3` → float, `null` → None, `[1,2]` → list)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"override {item!r} is not of the form section.key=value")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text  # an unparsable scalar is taken as a string, e.g. a path with a colon
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise RecipeError(f"override {item!r}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def _build(cls: type, raw: dict[str, Any], prefix: str, source: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise RecipeError(_unknown_key_message(source, dotted, str(key), list(fields), prefix))
        kwargs[key] = _convert(hints[key], value, dotted, source)
    return cls(**kwargs)


def _unknown_key_message(source: str, dotted: str, key: str, known: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(prefix + c for c in close)}?" if close else ""
    return f"{source}: unknown key '{dotted}'{hint} (known: {', '.join(known)})"


def _convert(hint: Any, value: Any, dotted: str, source: str) -> Any:
    """Check `value` against the annotation; nested dataclasses are built recursively."""
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise RecipeError(f"{source}: '{dotted}' must be a section (mapping), got {value!r}")
        return _build(hint, value, prefix=f"{dotted}.", source=source)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arm in args:
            try:
                return _convert(arm, value, dotted, source)
            except RecipeError:
                continue
        raise _type_error(source, dotted, hint, value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise _type_error(source, dotted, hint, value)
        return tuple(_convert(a, v, dotted, source) for a, v in zip(args, value, strict=True))
    if hint is type(None):
        if value is None:
            return None
        raise _type_error(source, dotted, hint, value)
    return _convert_scalar(hint, value, dotted, source)


def _convert_scalar(hint: Any, value: Any, dotted: str, source: str) -> Any:
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    raise _type_error(source, dotted, hint, value)


def _type_error(source: str, dotted: str, hint: Any, value: Any) -> RecipeError:
    name = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    return RecipeError(f"{source}: '{dotted}' must be {name}, got {value!r}")
