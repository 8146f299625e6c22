"""Shard writing: round trip, sizes.json, manifest, atomic writes, resume, nouns sidecars."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import openseg_cli.data.tar_writer as tar_writer_module
from openseg_cli.data.coco import CocoPanopticReader, coco_paths, write_coco_shards
from openseg_cli.data.loader import iter_samples
from openseg_cli.data.schema import normalise_meta
from openseg_cli.data.shards import (
    count_samples,
    list_shards,
    read_manifest,
    write_shards,
)
from openseg_cli.data.sidecars import nouns_sidecar_path, read_nouns_sidecar, write_nouns_sidecar
from openseg_cli.errors import InputFileError


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != "manifest.json"}


def test_round_trip_bytes_and_metas(toy_root: Path, toy_shards: dict[str, Path]) -> None:
    shards = list_shards(toy_shards["train"])
    assert [Path(s).name for s in shards] == [f"toy-train2017-{i:06d}.tar" for i in range(6)]
    original = {s["__key__"]: s for s in CocoPanopticReader(coco_paths(toy_root, "train2017"), source="toy")}
    seen = []
    for s in iter_samples(toy_shards["train"]):
        ref = original[s["key"]]
        assert s["image"] == ref["image.jpg"] and s["image_ext"] == "jpg"
        assert s["panoptic"] == ref["panoptic.png"]
        assert s["meta"] == normalise_meta(ref["meta.json"])
        seen.append(s["key"])
    assert seen == sorted(original)  # every sample once, in image-id order


def test_sizes_and_manifest(toy_shards: dict[str, Path]) -> None:
    folder = toy_shards["val"]
    sizes = json.loads((folder / "sizes.json").read_text())
    assert sizes == {"toy-val2017-000000.tar": 3, "toy-val2017-000001.tar": 3, "toy-val2017-000002.tar": 3,
                     "toy-val2017-000003.tar": 1}  # fmt: skip
    for name, n in sizes.items():
        with tarfile.open(folder / name) as tar:
            assert sum(m.name.endswith(".meta.json") for m in tar) == n
        assert count_samples(folder / name) == n
    manifest = read_manifest(folder)
    assert manifest["schema"] == 1 and (manifest["source"], manifest["split"]) == ("toy", "val2017")
    assert manifest["counts"] == {"seen": 10, "written": 10, "skipped": {}, "skipped_total": 0}
    assert manifest["images_listed"] == 10
    assert [c["name"] for c in manifest["categories"]][:2] == ["circle", "square"]
    assert any(k.endswith("panoptic_val2017.json") and v > 0 for k, v in manifest["source_files"].items())
    assert not [p for p in folder.iterdir() if "tmp" in p.name]


def test_list_shards_forms(toy_shards: dict[str, Path], tmp_path: Path) -> None:
    folder = toy_shards["val"]
    assert len(list_shards(f"{folder}/toy-val2017-{{000000..000002}}.tar")) == 3
    assert len(list_shards(f"{folder}/*.tar")) == 4
    assert len(list_shards(folder / "toy-val2017-000001.tar")) == 1
    with pytest.raises(InputFileError, match="no such shard"):
        list_shards(folder / "nope")
    with pytest.raises(InputFileError, match="no manifest.json"):
        read_manifest(tmp_path)
    with pytest.raises(InputFileError, match="no shard files"):
        list_shards(tmp_path)


class _Interrupted(Exception):
    pass


def _stop_after(samples: Iterator[dict], n: int) -> Iterator[dict]:
    for i, s in enumerate(samples):
        if i == n:
            raise _Interrupted
        yield s


def test_resume_after_interruption_gives_identical_shards(toy_root: Path, tmp_path: Path) -> None:
    paths = coco_paths(toy_root, "train2017")
    clean = tmp_path / "clean"
    write_coco_shards(paths, clean, "train2017", source="toy", maxcount=5)
    resumed = tmp_path / "resumed"
    reader = CocoPanopticReader(paths, source="toy")
    with pytest.raises(_Interrupted):
        write_shards(_stop_after(iter(reader), 12), resumed, "toy", "train2017",
                     categories=reader.categories, maxcount=5)  # fmt: skip
    assert sorted(p.name for p in resumed.glob("*.tar")) == [
        "toy-train2017-000000.tar",
        "toy-train2017-000001.tar",
    ]
    assert not list(resumed.glob("*.tmp")) and not (resumed / "manifest.json").exists()
    first = (resumed / "toy-train2017-000000.tar").stat().st_mtime_ns
    consumed: list[int] = []
    write_coco_shards(paths, resumed, "train2017", source="toy", maxcount=5, progress=consumed.append)
    assert (resumed / "toy-train2017-000000.tar").stat().st_mtime_ns == first  # not rewritten
    assert sum(consumed) == 24
    assert _files(resumed) == _files(clean)  # tars byte-identical, sizes.json and progress file equal


def test_kill_between_first_shard_landing_and_its_record_resumes(
    toy_root: Path, tmp_path: Path, monkeypatch
) -> None:
    """The first tar is in place but the run died before recording it: the rerun rewrites it."""
    paths = coco_paths(toy_root, "train2017")
    clean = tmp_path / "clean"
    write_coco_shards(paths, clean, "train2017", source="toy", maxcount=5)
    killed = tmp_path / "killed"
    reader = CocoPanopticReader(paths, source="toy")
    real_write_json = tar_writer_module.atomic_write_json

    def die_on_first_record(path, obj):
        if str(path).endswith(".progress.json") and obj["shards"]:
            raise _Interrupted  # the tar was os.replace'd, its record never written
        real_write_json(path, obj)

    monkeypatch.setattr(tar_writer_module, "atomic_write_json", die_on_first_record)
    with pytest.raises(_Interrupted):
        write_shards(iter(reader), killed, "toy", "train2017", categories=reader.categories, maxcount=5)
    monkeypatch.undo()
    assert [p.name for p in killed.glob("*.tar")] == ["toy-train2017-000000.tar"]  # unrecorded
    # a SIGKILL inside atomic_write also leaves its temp file (its cleanup never ran)
    (killed / ".toy-train2017.progress.json.k1ll3d.tmp").write_text("{half")
    write_coco_shards(paths, killed, "train2017", source="toy", maxcount=5)
    assert _files(killed) == _files(clean)
    assert not list(killed.glob(".*.tmp"))


def test_refuses_foreign_shards_and_changed_input(toy_root: Path, tmp_path: Path) -> None:
    paths = coco_paths(toy_root, "val2017")
    write_coco_shards(paths, tmp_path, "val2017", source="toy", maxcount=4)
    with pytest.raises(InputFileError, match="other settings"):
        write_coco_shards(paths, tmp_path, "val2017", source="toy", maxcount=3)
    with pytest.raises(InputFileError, match="one folder per source and split"):
        write_coco_shards(coco_paths(toy_root, "train2017"), tmp_path, "train2017", source="toy")
    manifest = write_coco_shards(paths, tmp_path, "val2017", source="toy", maxcount=3, overwrite=True)
    assert len(manifest["shards"]) == 4 and len(list(tmp_path.glob("*.tar"))) == 4
    reader = CocoPanopticReader(paths, source="toy")
    shifted = list(reader)[1:]
    with pytest.raises(InputFileError, match="input changed"):
        write_shards(shifted, tmp_path, "toy", "val2017", categories=reader.categories, maxcount=3)


def test_bad_sample_rejected_and_no_partial_tar(tmp_path: Path) -> None:
    meta = {"source": "x", "image_id": 1, "file_name": "a.jpg", "width": 1, "height": 1, "captions": []}
    good = {"__key__": "a", "image.jpg": b"x", "meta.json": meta}
    with pytest.raises(InputFileError, match="bad sample key"):
        write_shards([good, {**good, "__key__": "b.c"}], tmp_path, "x", "train", categories=[])
    with pytest.raises(InputFileError, match="no image member"):
        write_shards([{"__key__": "d", "meta.json": meta}], tmp_path / "2", "x", "train", categories=[])
    assert not list(tmp_path.rglob("*.tar*"))


def test_nouns_sidecar_round_trip(tmp_path: Path) -> None:
    tar = tmp_path / "toy-train-000003.tar"
    assert read_nouns_sidecar(tar) is None
    path = write_nouns_sidecar(tar, {"filter": "noun", "extractor": "t", "words": {"k": [["cat"], []]}})
    assert path == tmp_path / "toy-train-000003.nouns.json" == nouns_sidecar_path(tar)
    assert read_nouns_sidecar(tar) == {
        "schema": 1,
        "filter": "noun",
        "extractor": "t",
        "words": {"k": [["cat"], []]},
    }
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left
    path.write_text("{")
    with pytest.raises(InputFileError, match="malformed nouns sidecar"):
        read_nouns_sidecar(tar)


@pytest.mark.parametrize(
    ("text", "size"),
    [("300000000", 300_000_000), ("500MB", 500_000_000), ("512MiB", 512 * 2**20), ("1.5G", 1_500_000_000),
     ("2 GiB", 2 * 2**30), ("10k", 10_000), ("64", 64)],
)  # fmt: skip
def test_parse_size(text: str, size: int) -> None:
    from openseg_cli.data.prepare_io import parse_size

    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "5ib", "-3MB", "1.2.3G", ""])
def test_parse_size_refuses(text: str) -> None:
    from openseg_cli.data.prepare_io import parse_size

    with pytest.raises(ValueError, match="bad size"):
        parse_size(text)


def test_default_shard_bounds() -> None:
    """Shards are bounded by bytes (several hundred MB); the count bound only guards tiny samples."""
    from openseg_cli.data.shards import DEFAULT_MAXCOUNT, DEFAULT_MAXSIZE

    assert DEFAULT_MAXSIZE == 512 * 2**20
    assert DEFAULT_MAXSIZE / DEFAULT_MAXCOUNT < 10_000  # any sample over 10 kB: the byte bound binds


def test_big_shard_writer_keeps_no_member_list(tmp_path: Path) -> None:
    """10k tiny samples in one shard: all written and readable, and the tar writer holds no TarInfo list."""
    from openseg_cli.data.tar_writer import TarShardWriter

    records: list[dict] = []
    writer = TarShardWriter(tmp_path, "x-train", 0, 100_000, 2**30, records.append)
    meta = b'{"source": "x", "image_id": 1, "file_name": "a.jpg", "width": 1, "height": 1, "captions": []}'
    for i in range(10_000):
        writer.write({"__key__": f"k{i:05d}", "image.jpg": b"x", "meta.json": meta})
        assert writer.tar is not None and not writer.tar.members
    writer.finish()
    assert records[0]["count"] == 10_000 and count_samples(tmp_path / "x-train-000000.tar") == 10_000


def test_two_samples_with_one_key_in_a_row_are_refused(tmp_path: Path) -> None:
    """webdataset groups tar members by key: `a.image.jpg a.meta.json a.image.png a.meta.json` would read
    back as one corrupt sample, so the writer refuses the second `a` instead of writing it."""
    meta = {"source": "x", "image_id": "a", "file_name": "a.jpg", "width": 1, "height": 1, "captions": []}
    sample = {"__key__": "a", "image.jpg": b"x", "meta.json": meta}
    with pytest.raises(InputFileError, match="'a' twice in a row"):
        write_shards([sample, {**sample, "image.png": b"y"}], tmp_path, "x", "train", categories=[])
    assert not list(tmp_path.glob("*.tar"))
