"""Prompt templates: built-in sets shipped in the package, file loading, validation, filling."""

from __future__ import annotations

from pathlib import Path

import pytest

from openseg_cli.errors import InputFileError, UsageError
from openseg_cli.text import BUILTIN_TEMPLATES, fill_template, load_templates


@pytest.mark.parametrize(("name", "count"), [("none", 1), ("clip80", 80), ("vild63", 63), ("san14", 14)])
def test_builtin_sets(name: str, count: int) -> None:
    templates = load_templates(name)
    assert len(templates) == len(set(templates)) == count
    assert all(t.count("{}") == 1 for t in templates)


def test_builtin_known_lines() -> None:
    assert load_templates("none") == ["{}"]
    assert load_templates("clip80")[0] == "a bad photo of a {}."
    assert load_templates("san14")[1] == "This is a photo of a {}"
    assert load_templates("vild63")[0] == "There is {article} {} in the scene."


def test_shared_copies_are_identical(shared_data: Path) -> None:
    folder = shared_data / "prompt-templates"
    for name, source in [
        ("clip80", "clip_imagenet_80"),
        ("vild63", "vild_multiple_63"),
        ("san14", "san_vild_14"),
    ]:
        assert load_templates(name) == load_templates(folder / f"{source}.txt")


def test_fill_template_article() -> None:
    assert fill_template("There is {article} {} in the scene.", "apple") == "There is an apple in the scene."
    assert fill_template("There is {article} {}.", "dog") == "There is a dog."
    assert fill_template("a photo of a {}.", "red car") == "a photo of a red car."


def test_file_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("# mine\na {}.\n\nthe {} here\n", encoding="utf-8")
    assert load_templates(path) == ["a {}.", "the {} here"]


@pytest.mark.parametrize(
    "line", ["no field", "{} and {}", "{0} photo", "{name} photo", "a {} {", "{article} only"]
)
def test_bad_templates(tmp_path: Path, line: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(f"a {{}}.\n{line}\n", encoding="utf-8")
    with pytest.raises(UsageError, match="line 2"):
        load_templates(path)


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="clip80"):  # lists the built-in names
        load_templates(tmp_path / "nope.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(UsageError, match="no template"):
        load_templates(empty)
    assert set(BUILTIN_TEMPLATES) == {"none", "clip80", "vild63", "san14"}
