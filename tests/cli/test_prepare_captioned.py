"""The real `openseg prepare narratives | folder | coco-json` (and `coco`'s shard-size flags): shards,
sizes.json and manifest on disk, the end-of-run skip summary, and one clean error line with --strict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.helpers import assert_clean_error, assert_ok, run_cli
from tests.data.test_data_narratives import ln_record, write_jpeg, write_jsonl

INPUT, USAGE = 3, 2


@pytest.fixture
def narratives(tmp_path: Path) -> dict:
    coco, ade = tmp_path / "val2017", tmp_path / "ade"
    write_jpeg(coco / "000000137576.jpg", (16, 10))
    write_jpeg(coco / "000000000139.jpg", (8, 8))
    write_jpeg(ade / "ADE_val_00000001.jpg")
    lines = [
        ln_record("mscoco_val2017", "137576", "In this image there are cows standing in a field."),
        ln_record("ADE20k", "ADE_val_00000001", "A bedroom with a bed and a lamp."),
        '{"dataset_id": "mscoco_val2017", "image_id": ',  # line 3: cut short
        ln_record("mscoco_val2017", "139", "A living room with a television and a sofa.", full=False),
        ln_record("mscoco_val2017", "42", "An image nobody downloaded."),
        ln_record("mscoco_val2017", "137576", "Cows are eating grass.", 7),
    ]
    return {"jsonl": write_jsonl(tmp_path / "ln.jsonl", lines), "coco": coco, "ade": ade}


def test_narratives_shards_and_summary(narratives: dict, tmp_path: Path) -> None:
    out = tmp_path / "shards"
    result = run_cli(
        "prepare", "narratives", narratives["jsonl"], "--images", narratives["coco"],
        "--images", narratives["ade"], "--split", "val", "--out", out, "--maxcount", 2, "--maxsize", "1MB",
    )  # fmt: skip
    assert_ok(result)
    text = " ".join(result.stdout.split())
    assert "3 samples in 2 shards" in text
    assert "skipped 1 images × missing image (first: 000000000042.jpg in the --images folders" in text
    assert "records: 5 of 6 used" in text and f"invalid JSON line (first: {narratives['jsonl']}:3)" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["maxsize"] == 1_000_000 and manifest["maxcount"] == 2
    assert json.loads((out / "sizes.json").read_text()) == manifest["shards"] == {
        "narratives-val-000000.tar": 2, "narratives-val-000001.tar": 1,
    }  # fmt: skip
    counts, records = manifest["counts"], manifest["records"]
    assert counts["written"] + counts["skipped_total"] == counts["seen"] == manifest["images_listed"] == 4
    assert records["used"] + sum(records["skipped"].values()) == records["seen"] == 6
    assert "narratives" in manifest["command"] and str(narratives["jsonl"]) in manifest["source_files"]

    excluded = run_cli(
        "prepare", "narratives", narratives["jsonl"], "--images", narratives["coco"],
        "--exclude-ade20k", "--out", tmp_path / "no-ade",
    )  # fmt: skip
    assert_ok(excluded)
    manifest = json.loads((tmp_path / "no-ade" / "manifest.json").read_text())
    assert manifest["counts"]["written"] == 2 and "ADE20K record excluded" in excluded.stdout


def test_narratives_strict_and_bad_flags(narratives: dict, tmp_path: Path) -> None:
    strict = run_cli(
        "prepare", "narratives", narratives["jsonl"], "--images", narratives["coco"], "--strict",
        "--out", tmp_path / "s",
    )  # fmt: skip
    assert_clean_error(strict, f"{narratives['jsonl'].name}:3: invalid JSON line")
    assert strict.returncode == INPUT
    size = run_cli(
        "prepare", "narratives", narratives["jsonl"], "--images", narratives["coco"], "--maxsize", "lots"
    )
    assert_clean_error(size, "--maxsize", "bad size 'lots'")
    assert size.returncode == USAGE
    missing = run_cli("prepare", "narratives", tmp_path / "none.jsonl", "--images", narratives["coco"])
    assert_clean_error(missing, "none.jsonl: narratives JSONL not found")
    assert missing.returncode == INPUT


def test_folder_command(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    write_jpeg(photos / "a.jpg")
    write_jpeg(photos / "b.jpg")
    (tmp_path / "caps.tsv").write_text("a.jpg\tA red photo.\nb.jpg\t\ngone.jpg\tLost.\na.jpg\tStill red.\n")
    result = run_cli(
        "prepare", "folder", photos, "--captions", tmp_path / "caps.tsv", "--out", tmp_path / "s"
    )
    assert_ok(result)
    text = " ".join(result.stdout.split())
    assert "1 samples in 1 shards" in text and "skipped 1 images × missing image" in text
    assert "skipped 1 records × empty caption" in text and "1 images in the folder have no caption" in text
    strict = run_cli("prepare", "folder", photos, "--captions", tmp_path / "caps.tsv", "--strict")
    assert_clean_error(strict, "caps.tsv:2: empty caption")
    assert strict.returncode == INPUT


def test_coco_json_command(shared_data: Path, tmp_path: Path) -> None:
    mini = shared_data / "coco-val2017-mini"
    out = tmp_path / "s"
    result = run_cli(
        "prepare", "coco-json", mini / "annotations" / "instances_val2017_subset.json",
        "--images", mini / "val2017", "--captions", mini / "annotations" / "captions_val2017_subset.json",
        "--split", "val2017", "--out", out, "--maxcount", 5,
    )  # fmt: skip
    assert_ok(result)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["written"] == 16 and len(manifest["shards"]) == 4
    assert manifest["annotations"]["used"] == 94 and manifest["captions"]["used"] == 80
    assert len(manifest["categories"]) == 80 and "annotations: 94 of 94 used" in " ".join(
        result.stdout.split()
    )
    panoptic = shared_data / "coco-panoptic-panopticapi" / "panoptic_examples.json"
    refused = run_cli("prepare", "coco-json", panoptic, "--images", mini / "val2017", "--out", tmp_path / "p")
    assert_clean_error(refused, "a COCO panoptic JSON; use `openseg prepare coco`")
    assert refused.returncode == INPUT


def test_coco_png_mismatch_summary_and_strict(shared_data: Path, tmp_path: Path) -> None:
    """`prepare coco`: an image whose PNG paints an id missing from segments_info is skipped, counted and
    shown; --strict stops on it."""
    src = shared_data / "coco-panoptic-panopticapi"
    pan = json.loads((src / "panoptic_examples.json").read_text())
    pan["annotations"][0]["segments_info"].pop(0)
    (tmp_path / "pan.json").write_text(json.dumps(pan))
    shutil.copy(src / "captions_val2017_subset.json", tmp_path / "caps.json")
    args = [
        "prepare", "coco", src, "--split", "val2017", "--images", src / "input_images",
        "--panoptic-json", tmp_path / "pan.json", "--panoptic-dir", src / "panoptic_examples",
        "--captions", tmp_path / "caps.json", "--maxsize", "512MiB",
    ]  # fmt: skip
    result = run_cli(*args, "--out", tmp_path / "s")
    assert_ok(result)
    printed = " ".join(result.stdout.split())
    assert "skipped 1 images × panoptic png paints ids without segments_info" in printed
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["maxsize"] == 512 * 1024**2 and manifest["counts"]["written"] == 1
    assert manifest["counts"]["skipped"] == {"panoptic png paints ids without segments_info": 1}
    strict = run_cli(*args, "--strict", "--out", tmp_path / "t")
    assert_clean_error(strict, "000000142238.png: ids", "panoptic png paints ids without segments_info")
    assert strict.returncode == INPUT


@pytest.mark.stanza
def test_extract_nouns_reads_caption_only_shards(
    narratives: dict, stanza_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "shards"
    assert_ok(
        run_cli("prepare", "narratives", narratives["jsonl"], "--images", narratives["coco"], "--out", out)
    )
    assert_ok(run_cli("extract-nouns", out, "--offline", "--model-dir", stanza_model_dir))
    words = json.loads(next(out.glob("*.nouns.json")).read_text())["words"]
    assert {"cow", "field"} <= {w for caption in words["mscoco_val2017_137576"] for w in caption}


def test_pseudo_label_reads_caption_only_shards(narratives: dict, tmp_path: Path) -> None:
    """Caption-only narratives shards are valid pseudo-label input: every image comes out, captions kept."""
    from tests.engine.helpers import write_tiny_checkpoint

    out = tmp_path / "shards"
    assert_ok(
        run_cli("prepare", "narratives", narratives["jsonl"], "--images", narratives["coco"], "--out", out)
    )
    write_tiny_checkpoint(tmp_path / "teacher.pt")
    labelled = tmp_path / "pseudo"
    result = run_cli(
        "pseudo-label", out, "--teacher", tmp_path / "teacher.pt", "--out", labelled, "--size", 64
    )
    assert_ok(result)
    manifest = json.loads((labelled / "manifest.json").read_text())
    assert manifest["counts"]["written"] == 2
    from openseg_cli.data.loader import iter_samples

    captions = {s["key"]: s["meta"]["captions"] for s in iter_samples(labelled)}
    assert captions["mscoco_val2017_137576"] == [
        "In this image there are cows standing in a field.", "Cows are eating grass."
    ]  # fmt: skip
