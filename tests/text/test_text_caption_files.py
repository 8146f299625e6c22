"""Reading captions from text and JSONL files: good lines kept in order, bad lines counted by line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openseg_cli.errors import InputFileError, UsageError
from openseg_cli.text.caption_files import LineSkips, detect_format, read_caption_file


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_text_lines_keep_their_numbers_and_bad_lines_are_counted(tmp_path: Path) -> None:
    data = (
        "\ufeffA dog.\r\n\n   \nUne pomme rouge.\n".encode() + b"caf\xe9 latte\n" + b"last line, no newline"
    )
    skips = LineSkips()
    records = read_caption_file(_write(tmp_path, "c.txt", data), "text", skips=skips)
    assert [(r.line, r.caption, r.id) for r in records] == [
        (1, "A dog.", None),  # BOM and CRLF stripped
        (4, "Une pomme rouge.", None),
        (6, "last line, no newline", None),
    ]
    assert dict(skips.counts) == {"empty caption": 2, "non-UTF-8 line": 1}
    assert skips.lines == {"empty caption": [2, 3], "non-UTF-8 line": [5]}
    assert skips.describe() == ["2 × empty caption (lines 2, 3)", "1 × non-UTF-8 line (line 5)"]


def test_jsonl_coco_and_localized_narratives_records(tmp_path: Path) -> None:
    narrative = {
        "dataset_id": "mscoco_val2017", "image_id": "137576", "annotator_id": 93,
        "caption": "In this image I can see a person holding a racket.",
        "timed_caption": [{"utterance": "In this", "start_time": 0.0, "end_time": 0.4}],
        "traces": [[{"x": 0.1, "y": 0.2, "t": 0.0}]], "voice_recording": "coco_val/x.ogg",
    }  # fmt: skip
    lines = [
        json.dumps({"image_id": 139, "caption": "A woman stands in the kitchen."}),
        json.dumps({"caption": "No id here."}),
        json.dumps({"id": 7, "caption": "An id field."}),
        json.dumps(narrative),
    ]
    records = read_caption_file(_write(tmp_path, "c.jsonl", "\n".join(lines).encode()), "jsonl")
    assert [(r.line, r.id) for r in records] == [(1, 139), (2, None), (3, 7), (4, "137576")]
    assert records[3].caption == narrative["caption"]
    assert records[0].output(["woman", "kitchen"]) == {
        "id": 139, "line": 1, "caption": "A woman stands in the kitchen.", "words": ["woman", "kitchen"]
    }  # fmt: skip
    assert "id" not in records[1].output([])


BAD_JSONL = [
    b'{"caption": "fine"}',
    b"{not json",
    b"[1, 2]",
    b'{"image_id": 3}',
    b'{"caption": 42}',
    b'{"caption": "   "}',
    b"",
    b'{"caption": "caf\xe9"}',
    b'{"caption": "also fine"}',
]


def test_jsonl_bad_lines_are_counted_with_line_numbers(tmp_path: Path) -> None:
    skips = LineSkips()
    records = read_caption_file(_write(tmp_path, "c.jsonl", b"\n".join(BAD_JSONL)), "jsonl", skips=skips)
    assert [(r.line, r.caption) for r in records] == [(1, "fine"), (9, "also fine")]
    assert skips.lines == {
        "invalid JSON": [2],
        "not a JSON object": [3],
        "missing caption field": [4, 5],
        "empty caption": [6, 7],
        "non-UTF-8 line": [8],
    }


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([b'{"caption": "ok"}', b"{oops"], "c.jsonl:2: invalid JSON"),
        ([b'{"caption": "ok"}', b'{"id": 1}'], "c.jsonl:2: missing caption field"),
        ([b'{"caption": ""}'], "c.jsonl:1: empty caption"),
        ([b'{"caption": "ok"}', b'"x\xff"'], "c.jsonl:2: non-UTF-8 line"),
    ],
)
def test_strict_stops_at_the_first_bad_line(tmp_path: Path, lines: list[bytes], message: str) -> None:
    path = _write(tmp_path, "c.jsonl", b"\n".join(lines))
    with pytest.raises(InputFileError, match=message):
        read_caption_file(path, "jsonl", strict=True)


def test_missing_file_unknown_format_and_detection(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="cannot read caption file"):
        read_caption_file(tmp_path / "absent.txt", "text")
    with pytest.raises(UsageError, match="text, jsonl"):
        read_caption_file(tmp_path / "absent.txt", "csv")
    assert [detect_format(n) for n in ("a.txt", "a.JSONL", "a.ndjson", "shards", "a.json")] == [
        "text", "jsonl", "jsonl", None, None,
    ]  # fmt: skip
