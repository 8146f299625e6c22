"""Prompt templates that turn a class name into text queries (averaged per name, METHOD.md §2 [ours]).

Built-in sets (shipped in ``openseg_cli/assets/prompt_templates``, origin and licences in its README):
``none`` (just the name, as the official OpenSeg demo), ``clip80`` (CLIP's 80 ImageNet templates),
``vild63`` (ViLD's 63), ``san14`` (SAN's 14 "vild" templates). Anything else is read as a file path.

A template holds exactly one ``{}`` (the name); ``{article}`` ("a"/"an", used by vild63) is the only other
field allowed. Files: one template per line, blank lines and lines starting with ``#`` skipped.
"""

from __future__ import annotations

import os
import string
from importlib import resources
from pathlib import Path

from openseg_cli.errors import InputFileError, UsageError

BUILTIN_TEMPLATES = ("none", "clip80", "vild63", "san14")


def load_templates(name_or_path: str | os.PathLike[str]) -> list[str]:
    """Templates of a built-in set or of a file, validated.

    Raises `InputFileError` for a path that is neither a built-in name nor a readable file, and
    `UsageError` for a template without exactly one ``{}`` (or with another field), or an empty set.
    """
    name = str(name_or_path)
    if name == "none":
        return ["{}"]
    if name in BUILTIN_TEMPLATES:
        content = (
            resources.files("openseg_cli").joinpath(f"assets/prompt_templates/{name}.txt").read_text("utf-8")
        )
        where = f"built-in templates {name!r}"
    else:
        path = Path(name).expanduser()
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputFileError(
                f"templates {name!r} are neither built in ({', '.join(BUILTIN_TEMPLATES)}) "
                f"nor a readable file: {err.__class__.__name__}"
            ) from err
        where = f"template file {path}"
    templates = []
    for number, line in enumerate(content.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            check_template(line, f"{where}, line {number}")
            templates.append(line)
    if not templates:
        raise UsageError(f"{where} holds no template")
    return templates


def check_template(template: str, where: str = "template") -> None:
    """Raise `UsageError` unless `template` has exactly one ``{}`` and no field other than ``{article}``."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as err:  # unbalanced braces
        raise UsageError(f"{where}: bad template {template!r} ({err})") from err
    others = sorted({field for field in fields if field not in ("", "article")})
    if fields.count("") != 1 or others:
        extra = f", unknown field(s) {others}" if others else ""
        raise UsageError(f"{where}: template {template!r} must contain exactly one '{{}}'{extra}")


def fill_template(template: str, name: str) -> str:
    """Put `name` into `template`; ``{article}`` becomes "an" before a vowel, else "a" (ViLD's rule)."""
    article = "an" if name[:1].lower() in ("a", "e", "i", "o", "u") else "a"
    return template.format(name, article=article)
