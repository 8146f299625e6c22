"""Localized Narratives → caption-only shards: the per-part image naming, the caption join, every counted
skip, --strict, and flat memory as the record count grows.

No real LN record exists offline, so the records are hand-written in the real schema (field names and
value shapes as in google/localized-narratives' loader and file-format page: string image ids,
`timed_caption` utterances, `traces` of {x, y, t}, `voice_recording` paths; captions-only records lack
the last three).
"""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import pytest
from PIL import Image

from openseg_cli.data.loader import iter_samples
from openseg_cli.data.narratives import (
    EXCLUDED_ADE20K,
    NarrativesReader,
    image_file_names,
    is_ade20k,
    parse_record,
)
from openseg_cli.data.prepare_io import write_reader_shards
from openseg_cli.errors import InputFileError


def ln_record(dataset_id: str, image_id: str, caption: str, annotator: int = 93, full: bool = True) -> dict:
    """A record in the real LN schema; `full=False` is the 'captions only' download (no traces)."""
    rec = {"dataset_id": dataset_id, "image_id": image_id, "annotator_id": annotator, "caption": caption}
    if full:
        rec["timed_caption"] = [{"utterance": caption[:7], "start_time": 0.0, "end_time": 0.4}]
        rec["traces"] = [[{"x": 0.2086, "y": -0.0533, "t": 0.022}, {"x": 0.5, "y": 0.4, "t": 0.1}]]
        rec["voice_recording"] = f"{dataset_id}/{dataset_id}_{image_id}_{annotator}.ogg"
    return rec


def write_jpeg(
    path: Path, size: tuple[int, int] = (12, 8), colour: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="JPEG")
    return path.read_bytes()


def write_jsonl(path: Path, lines: list[dict | str]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


@pytest.fixture
def ln_set(tmp_path: Path) -> dict:
    """Images of the four LN parts in their own folders, and one JSONL mixing them, with bad lines."""
    coco, flickr = tmp_path / "coco" / "val2017", tmp_path / "flickr30k-images"
    ade, oi = tmp_path / "ADEChallengeData2016" / "images" / "validation", tmp_path / "open_images"
    files = {
        "coco": write_jpeg(coco / "000000137576.jpg", (16, 10)),
        "flickr": write_jpeg(flickr / "1000092795.jpg", (9, 7)),
        "ade": write_jpeg(ade / "ADE_val_00000001.jpg"),
        "oi": write_jpeg(oi / "0a0b1c2d3e4f5a6b.jpg"),
    }
    lines = [
        ln_record("mscoco_val2017", "137576", "In this image there are cows  standing.\n", 93),  # line 1
        ln_record("Flick30k_val", "1000092795", "Two men are in the garden.", 1),  # 2
        '{"dataset_id": "mscoco_val2017", "image_id": "137576", "caption": "cut sho',  # 3: invalid JSON
        ln_record("ADE20k", "ADE_val_00000001", "A bedroom with a bed.", 5),  # 4
        ln_record("open_images_validation", "0a0b1c2d3e4f5a6b", "A red car.", 7, full=False),  # 5
        ln_record("mscoco_val2017", "137576", "   ", 12),  # 6: empty caption
        ln_record("mscoco_val2017", "137576", "Cows eat the grass in a field.", 40),  # 7: 2nd narrative
        ln_record("mscoco_val2017", "999999", "An image that is not on disk.", 3),  # 8: missing image
        "",  # blank line: not a record
        ln_record("Flick30k_val", "1000092795", "A garden with trees.", 2, full=False),  # 10
    ]
    jsonl = write_jsonl(tmp_path / "coco_val_localized_narratives.jsonl", lines)
    return {"jsonl": jsonl, "dirs": [coco, flickr, ade, oi], "bytes": files, "root": tmp_path}


def test_image_names_per_part() -> None:
    assert image_file_names("mscoco_train2017", "137576")[0] == "000000137576.jpg"
    assert image_file_names("Flick30k_train", "1000092795")[0] == "1000092795.jpg"
    assert image_file_names("ADE20k", "ADE_train_00000001")[0] == "ADE_train_00000001.jpg"
    assert image_file_names("open_images_train_v6", "0a0b1c2d3e4f5a6b")[0] == "0a0b1c2d3e4f5a6b.jpg"
    assert is_ade20k("ADE20k") and is_ade20k("ade20k_validation")
    assert not any(is_ade20k(d) for d in ("mscoco_val2017", "Flick30k_val", "open_images_train_v6"))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"dataset_id": "x", "image_id": "1", "caption": "a', "invalid JSON line"),
        (b"[1, 2]", "invalid JSON line"),
        (b'{"image_id": "1", "caption": "a"}', "record without dataset_id"),
        (b'{"dataset_id": "x", "caption": "a"}', "record without image_id"),
        (b'{"dataset_id": "x", "image_id": "1"}', "record without caption"),
        (b'{"dataset_id": "x", "image_id": "1", "caption": " \\n "}', "empty caption"),
        (b'{"dataset_id": "x", "image_id": 7, "caption": " a  b "}', ("x", "7", "a b")),
    ],
)
def test_parse_record(line: bytes, reason) -> None:
    assert parse_record(line) == reason


def test_join_counts_and_round_trip(ln_set: dict, tmp_path: Path) -> None:
    reader = NarrativesReader([ln_set["jsonl"]], ln_set["dirs"])
    out = tmp_path / "shards"
    manifest = write_reader_shards(reader, out, "val")
    got = {s["key"]: s for s in iter_samples(out)}
    assert sorted(got) == [
        "ADE20k_ADE_val_00000001", "Flick30k_val_1000092795", "mscoco_val2017_137576",
        "open_images_validation_0a0b1c2d3e4f5a6b",
    ]  # fmt: skip
    coco = got["mscoco_val2017_137576"]
    assert coco["meta"]["captions"] == [
        "In this image there are cows standing.",
        "Cows eat the grass in a field.",
    ]
    assert coco["meta"]["image_id"] == 137576 and coco["meta"]["file_name"] == "000000137576.jpg"
    assert (coco["meta"]["width"], coco["meta"]["height"]) == (16, 10)
    assert coco["image"] == ln_set["bytes"]["coco"] and coco["panoptic"] is None
    assert coco["meta"]["segments"] == [] and coco["meta"]["dataset_id"] == "mscoco_val2017"
    flickr = got["Flick30k_val_1000092795"]["meta"]
    assert flickr["captions"] == ["Two men are in the garden.", "A garden with trees."]
    assert flickr["image_id"] == "1000092795"
    # records: 9 non-blank lines = 6 used + invalid JSON + empty caption ... and the missing image's record
    records = manifest["records"]
    assert records["seen"] == 9 and records["used"] == 7
    assert records["skipped"] == {"invalid JSON line": 1, "empty caption": 1}
    jsonl = ln_set["jsonl"]
    assert records["examples"] == {"invalid JSON line": [f"{jsonl}:3"], "empty caption": [f"{jsonl}:6"]}
    # images: 5 named = 4 written + 1 missing on disk
    assert manifest["counts"] == {
        "seen": 5,
        "written": 4,
        "skipped": {"missing image": 1},
        "skipped_total": 1,
    }
    assert manifest["images_listed"] == 5 and manifest["captions_written"] == 6
    assert manifest["categories"] == [] and str(jsonl) in manifest["source_files"]
    assert str(jsonl) in manifest["source_mtimes"]
    assert "999999" in manifest["skip_examples"]["missing image"][0]
    assert not [p for p in out.iterdir() if "caption-join" in p.name]  # temporary index removed


def test_exclude_ade20k_is_counted(ln_set: dict, tmp_path: Path) -> None:
    reader = NarrativesReader([ln_set["jsonl"]], ln_set["dirs"], exclude_ade20k=True)
    manifest = write_reader_shards(reader, tmp_path / "s", "train")
    assert manifest["counts"]["written"] == 3 and manifest["exclude_ade20k"] is True
    assert manifest["records"]["skipped"][EXCLUDED_ADE20K] == 1
    assert not any("ADE" in key for key in json.loads((tmp_path / "s" / "sizes.json").read_text()))
    assert all("ADE" not in s["key"] for s in iter_samples(tmp_path / "s"))


def test_several_files_and_deterministic_output(ln_set: dict, tmp_path: Path) -> None:
    """Same records split over two files (narratives of one image in both) → byte-identical shards."""
    lines = ln_set["jsonl"].read_text().splitlines()
    a = write_jsonl(tmp_path / "a.jsonl", lines[5:])
    b = write_jsonl(tmp_path / "b.jsonl", lines[:5])
    one = write_reader_shards(NarrativesReader([ln_set["jsonl"]], ln_set["dirs"]), tmp_path / "one", "x")
    two = write_reader_shards(NarrativesReader([b, a], ln_set["dirs"]), tmp_path / "two", "x")
    assert one["shards"] == two["shards"]
    assert (tmp_path / "one" / "narratives-x-000000.tar").read_bytes() == (
        tmp_path / "two" / "narratives-x-000000.tar"
    ).read_bytes()
    three = write_reader_shards(NarrativesReader([a, b], ln_set["dirs"]), tmp_path / "three", "x")
    caps = {s["key"]: s["meta"]["captions"] for s in iter_samples(tmp_path / "three")}
    assert caps["mscoco_val2017_137576"][0] == "Cows eat the grass in a field."  # file order kept
    assert three["counts"] == one["counts"]


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ("bad_json", ":3: invalid JSON line"),
        ("missing_image", "in the --images folders (mscoco_val2017/999999): missing image"),
    ],
)
def test_strict_turns_skips_into_errors(ln_set: dict, tmp_path: Path, edit: str, needle: str) -> None:
    lines = ln_set["jsonl"].read_text().splitlines()
    if edit == "missing_image":  # drop the earlier bad lines so the image skip is the first problem
        lines = [line for i, line in enumerate(lines, 1) if i not in (3, 6)]
    path = write_jsonl(tmp_path / "strict.jsonl", lines)
    with pytest.raises(InputFileError) as err:
        reader = NarrativesReader([path], ln_set["dirs"], strict=True)
        write_reader_shards(reader, tmp_path / "out", "x")
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert not list((tmp_path / "out").glob("*.tar")) if (tmp_path / "out").exists() else True


def test_missing_inputs_are_one_line_errors(ln_set: dict, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="narratives JSONL not found"):
        NarrativesReader([tmp_path / "nope.jsonl"], ln_set["dirs"])
    with pytest.raises(InputFileError, match="image folder not found"):
        NarrativesReader([ln_set["jsonl"]], [tmp_path / "no-dir"])


def _synthetic(tmp_path: Path, n: int) -> tuple[Path, Path]:
    """`n` caption-only records (2 narratives per image, the second n/2 lines later) over hard-linked
    copies of one tiny JPEG."""
    folder = tmp_path / f"img{n}"
    folder.mkdir()
    first = folder / "src.jpg"
    write_jpeg(first, (8, 8))
    images = n // 2
    for i in range(images):
        os.link(first, folder / f"{i:016x}.jpg")
    path = tmp_path / f"ln{n}.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            image = i % images
            f.write(
                json.dumps(ln_record("open_images_train", f"{image:016x}", f"A caption number {i} " * 4, i))
            )
            f.write("\n")
    return path, folder


def _peak_bytes(tmp_path: Path, n: int) -> int:
    jsonl, folder = _synthetic(tmp_path, n)
    tracemalloc.start()
    try:
        reader = NarrativesReader([jsonl], [folder], work_dir=tmp_path)
        manifest = write_reader_shards(reader, tmp_path / f"out{n}", "train")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert manifest["counts"]["written"] == n // 2 and manifest["records"]["used"] == n
    return peak


def test_peak_memory_flat_in_record_count(tmp_path: Path) -> None:
    """Python heap peak (tracemalloc) for 1k vs 10k records: the join lives on disk, so 10x the records
    must not mean 10x the memory. Measured: 0.38 MB vs 0.39 MB (the bound is the 1000-row insert batch)."""
    small, large = _peak_bytes(tmp_path, 1000), _peak_bytes(tmp_path, 10_000)
    print(f"tracemalloc peak: 1k records {small / 1e6:.2f} MB, 10k records {large / 1e6:.2f} MB")
    assert large < 1.2 * small + 100_000, (small, large)


def test_image_ids_differing_after_a_dot_stay_two_samples(tmp_path: Path) -> None:
    """`p.1` and `p.2` must not both become key `mine_p` (a key looks like a file name to make_key)."""
    folder = tmp_path / "imgs"
    write_jpeg(folder / "p.1.jpg")
    write_jpeg(folder / "p.2.jpg", colour=(10, 200, 10))
    jsonl = write_jsonl(
        tmp_path / "n.jsonl", [ln_record("mine", "p.1", "a cat"), ln_record("mine", "p.2", "a dog")]
    )
    write_reader_shards(NarrativesReader([jsonl], [folder], work_dir=tmp_path), tmp_path / "s", "x")
    got = {s["key"]: s["meta"]["captions"] for s in iter_samples(tmp_path / "s")}
    assert got == {"mine_p_1": ["a cat"], "mine_p_2": ["a dog"]}
