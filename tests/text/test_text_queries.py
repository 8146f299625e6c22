"""parse_queries / read_class_file: the class-and-synonym conventions and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openseg_cli.errors import InputFileError, UsageError
from openseg_cli.text import class_display_name, parse_queries, read_class_file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("red circle, blue square", [["red circle"], ["blue square"]]),
        ("wall, walls; sky", [["wall", "walls"], ["sky"]]),
        ("  cat  ", [["cat"]]),
        ("traffic   light ,\tdog", [["traffic light"], ["dog"]]),
        ("sky;", None),  # trailing ';' leaves an empty class: an error, see below
    ],
)
def test_parse_queries(text: str, expected: list[list[str]] | None) -> None:
    if expected is None:
        with pytest.raises(UsageError):
            parse_queries(text)
    else:
        assert parse_queries(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty query list"),
        ("   ", "empty query list"),
        (" , ", "empty class name in class 1"),
        ("a,,b", "empty class name in class 2"),
        ("wall; ,sky", "empty class name in class 2"),
        ("cat, Cat", "duplicate class name 'Cat'"),
        ("wall, walls; Walls", "duplicate class name 'Walls'"),
        ("x" * 201, "over 200 characters"),
    ],
)
def test_parse_queries_errors_are_one_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_queries(text)
    assert "\n" not in str(info.value)


def test_display_name_is_first_synonym() -> None:
    assert class_display_name(["wall", "walls"]) == "wall"
    with pytest.raises(UsageError):
        class_display_name([])


def test_read_text_file_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "classes.txt"
    path.write_text("# my classes\nwall, walls\n\n  sky \n# end\n", encoding="utf-8")
    assert read_class_file(path) == [["wall", "walls"], ["sky"]]


def test_read_json_list_of_lists(tmp_path: Path) -> None:
    path = tmp_path / "classes.json"
    path.write_text(json.dumps([["wall", "walls"], "sky, heaven"]), encoding="utf-8")
    assert read_class_file(path) == [["wall", "walls"], ["sky", "heaven"]]


def test_duplicates_in_files_are_opt_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "dup.txt"
    path.write_text("bag\nbag, handbag\n", encoding="utf-8")
    assert len(read_class_file(path)) == 2
    with pytest.raises(InputFileError, match="duplicate class name 'bag'"):
        read_class_file(path, allow_duplicates=False)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("missing.txt", None),
        ("bad.json", "{not json"),
        ("dict.json", '{"a": 1}'),
        ("num.json", "[1, 2]"),
        ("empty.txt", "# nothing\n\n"),
        ("hole.txt", "wall\n,sky\n"),
    ],
)
def test_read_class_file_errors(tmp_path: Path, name: str, content: str | None) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputFileError, match=name):
        read_class_file(path)


@pytest.mark.parametrize(("stem", "count"), [("ade150", 150), ("pc59", 59), ("ade847", 847), ("pc459", 459)])
def test_benchmark_class_lists(shared_data: Path, stem: str, count: int) -> None:
    folder = shared_data / "class-names"
    from_json = read_class_file(folder / f"{stem}.json")
    from_txt = read_class_file(folder / f"{stem}.txt")
    assert len(from_json) == len(from_txt) == count
    assert from_json == from_txt
    assert all(name == name.strip() and name for synonyms in from_json for name in synonyms)


def test_benchmark_synonyms(shared_data: Path) -> None:
    ade847 = read_class_file(shared_data / "class-names" / "ade847.json")
    assert ade847[11][:2] == ["person", "individual"]
    assert read_class_file(shared_data / "class-names" / "ade150.json")[7] == ["bed"]  # "bed " in the source
