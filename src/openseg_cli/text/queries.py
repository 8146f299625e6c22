"""Class queries: each class is a list of synonyms, scored as the max over its synonyms (METHOD.md §2).

Text convention (`parse_queries`), as in OpenSeg's demo and ODISE:
- if the text contains ``;``, then ``;`` separates classes and ``,`` separates synonyms within a class:
  ``"wall, walls; sky"`` -> ``[["wall", "walls"], ["sky"]]``;
- otherwise ``,`` separates classes, each with one name: ``"red circle, blue square"`` ->
  ``[["red circle"], ["blue square"]]``.
Names are stripped and inner whitespace collapsed; case is kept (the text encoder sees it).

Class files (`read_class_file`): one class per line, synonyms comma-separated, blank lines and lines
starting with ``#`` skipped; or a JSON list of such strings (or of lists of synonyms), the format of
``../shared/data/class-names/*.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from openseg_cli.errors import InputFileError, OpenSegError, UsageError

# CLIP's context is 77 BPE tokens; 200 characters is a generous, tokenizer-free upper bound for a name.
MAX_NAME_CHARS = 200


def parse_queries(text: str) -> list[list[str]]:
    """Classes with synonyms from a query string (convention in the module docstring).

    Raises `UsageError` (one line) for an empty list, an empty name ("a,,b", trailing separators),
    a duplicate name, case-insensitive, anywhere in the list ("cat, Cat"), or a name over
    `MAX_NAME_CHARS` characters.
    """
    if not text.strip():
        raise UsageError("empty query list: give class names separated by ',' (synonyms: 'a, b; c')")
    if ";" in text:
        classes = [part.split(",") for part in text.split(";")]
    else:
        classes = [[part] for part in text.split(",")]
    return _validated(classes, "query", UsageError, allow_duplicates=False)


def read_class_file(path: str | os.PathLike[str], *, allow_duplicates: bool = True) -> list[list[str]]:
    """Classes with synonyms from a text or JSON class file, in file order (= label order).

    Duplicates are allowed by default because benchmark lists have them: ADE20K-847 names distinct
    classes "bag", "pot", "screen"... identically (different WordNet senses), and label order matters.
    Raises `InputFileError` for a missing/unreadable/malformed file, an empty list or empty name.
    """
    file = Path(path)
    try:
        content = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"cannot read class file {file}: {err.__class__.__name__}: {err}") from err
    if file.suffix.lower() == ".json":
        classes = _classes_from_json(content, file)
    else:
        lines = (line.strip() for line in content.splitlines())
        classes = [line.split(",") for line in lines if line and not line.startswith("#")]
    return _validated(classes, str(file), InputFileError, allow_duplicates=allow_duplicates)


def class_display_name(synonyms: str | Sequence[str]) -> str:
    """The name shown for a class (legends, reports): the name itself, or its first synonym."""
    if isinstance(synonyms, str):
        return synonyms
    if not synonyms:
        raise UsageError("a class needs at least one name")
    return str(synonyms[0])


def _classes_from_json(content: str, file: Path) -> list[list[str]]:
    """JSON list of "a, b" strings or of ["a", "b"] lists -> raw synonym lists."""
    try:
        data = json.loads(content)
    except json.JSONDecodeError as err:
        raise InputFileError(f"class file {file} is not valid JSON: {err}") from err
    if not isinstance(data, list):
        raise InputFileError(f"class file {file} must hold a JSON list, found {type(data).__name__}")
    classes = []
    for index, item in enumerate(data):
        if isinstance(item, str):
            classes.append(item.split(","))
        elif isinstance(item, list) and all(isinstance(name, str) for name in item):
            classes.append(item)
        else:
            raise InputFileError(
                f"class file {file}: entry {index} is neither a string nor a list of strings"
            )
    return classes


def _validated(
    classes: list[list[str]], where: str, error: type[OpenSegError], *, allow_duplicates: bool
) -> list[list[str]]:
    """Normalise names and check them; `error` is the exception class to raise (one-line message)."""
    if not classes:
        raise error(f"{where}: no class names")
    seen: dict[str, int] = {}
    result = []
    for number, synonyms in enumerate(classes, start=1):
        names = [" ".join(name.split()) for name in synonyms]
        for name in names:
            if not name:
                raise error(
                    f"{where}: empty class name in class {number} (check for doubled or trailing separators)"
                )
            if len(name) > MAX_NAME_CHARS:
                raise error(
                    f"{where}: class {number} has a name over {MAX_NAME_CHARS} characters: {name[:40]!r}..."
                )
            if not allow_duplicates and name.lower() in seen:
                first = seen[name.lower()]
                raise error(
                    f"{where}: duplicate class name {name!r} (class {number}, first in class {first})"
                )
            seen.setdefault(name.lower(), number)
        result.append(names)
    return result
