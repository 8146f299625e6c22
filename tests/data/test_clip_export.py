"""`export_clip_data`: openseg shards → open_clip_train's WebDataset input (jpg|png + txt, sizes.json)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import braceexpand
import pytest
from PIL import Image

from openseg_cli.data.clip_export import CLIP_DATA, export_clip_data, read_clip_data, train_data_pattern
from openseg_cli.data.shards import write_shards
from openseg_cli.errors import InputFileError

# key → (image format, captions): b and c have no usable caption; e has an empty one between two
CAPTIONS = {
    "a": ("jpg", ["a red ring", "a ring on grass"]),
    "b": ("jpg", ["   "]),
    "c": ("png", []),
    "d": ("png", ["  a blue cross  "]),
    "e": ("jpg", ["a star", "", "a white star on water"]),
}
EACH = {  # the export's samples, known by hand: (key, member, caption)
    ("a_000", "jpg", "a red ring"),
    ("a_001", "jpg", "a ring on grass"),
    ("d_000", "png", "a blue cross"),
    ("e_000", "jpg", "a star"),
    ("e_001", "jpg", "a white star on water"),
}
ONE = {("a", "jpg", "a red ring"), ("d", "png", "a blue cross"), ("e", "jpg", "a star")}


def _image(ext: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (seed * 40, 100, 200)).save(buffer, "JPEG" if ext == "jpg" else "PNG")
    return buffer.getvalue()


IMAGES = {key: _image(ext, i) for i, (key, (ext, _)) in enumerate(CAPTIONS.items())}


def _samples():
    for key, (ext, captions) in CAPTIONS.items():
        meta = {"source": "t", "image_id": key, "file_name": f"{key}.{ext}", "width": 16, "height": 12}
        yield {"__key__": key, f"image.{ext}": IMAGES[key], "meta.json": {**meta, "captions": captions}}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Five images in three openseg shards (2 + 2 + 1)."""
    out = tmp_path_factory.mktemp("openseg-shards")
    write_shards(_samples(), out, "t", "train", categories=[], maxcount=2)
    return out


def _read_export(folder: Path) -> tuple[set[tuple[str, str, str]], dict[str, int], dict[str, bytes]]:
    """(samples as (key, image member, caption), samples per tar, image bytes per key), from the tars."""
    samples, per_tar, images = set(), {}, {}
    for path in sorted(folder.glob("clip-*.tar")):
        with tarfile.open(path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar}
        keys = {name.split(".", 1)[0] for name in members}
        per_tar[path.name] = len(keys)
        for key in keys:
            ext = "jpg" if f"{key}.jpg" in members else "png"
            samples.add((key, ext, members[f"{key}.txt"].decode("utf-8")))
            images[key] = members[f"{key}.{ext}"]
            assert set(members) >= {f"{key}.{ext}", f"{key}.txt"}
        assert len(members) == 2 * len(keys)  # exactly an image and a caption per sample
    return samples, per_tar, images


def test_each_caption_is_a_sample_with_the_image_bytes_unchanged(shards: Path, tmp_path: Path) -> None:
    record = export_clip_data(shards, tmp_path, captions="each")
    samples, per_tar, images = _read_export(tmp_path)
    assert samples == EACH
    assert all(images[key] == IMAGES[key.split("_")[0]] for key, _, _ in EACH)
    sizes = json.loads((tmp_path / "sizes.json").read_text())
    assert sizes == per_tar and sum(sizes.values()) == 5  # open_clip_train's --train-num-samples
    assert record["counts"] == {
        "images": 5, "samples": 5, "images_without_caption": 2, "skipped": {}
    }  # fmt: skip
    assert record["examples_without_caption"] == ["b", "c"]
    assert read_clip_data(tmp_path)["shards"] == sizes


def test_one_takes_the_first_caption_under_the_image_key(shards: Path, tmp_path: Path) -> None:
    record = export_clip_data(shards, tmp_path, captions="one")
    assert _read_export(tmp_path)[0] == ONE
    assert record["counts"]["samples"] == 3 and record["counts"]["images_without_caption"] == 2


def test_sizes_and_pattern_are_what_open_clip_train_reads(shards: Path, tmp_path: Path) -> None:
    """open_clip_train's own `get_dataset_size` on the brace pattern gives the sample and shard counts."""
    from open_clip_train.data import get_dataset_size

    record = export_clip_data(shards, tmp_path, captions="each", maxcount=2)
    pattern = train_data_pattern(tmp_path, record)
    assert pattern == str(tmp_path / "clip-{000000..000002}.tar")
    assert list(braceexpand.braceexpand(pattern)) == [str(p) for p in sorted(tmp_path.glob("clip-*.tar"))]
    assert record["shards"] == {"clip-000000.tar": 2, "clip-000001.tar": 2, "clip-000002.tar": 1}
    assert get_dataset_size(pattern) == (5, 3)


def test_rerun_is_a_no_op_and_other_settings_are_refused(shards: Path, tmp_path: Path) -> None:
    export_clip_data(shards, tmp_path, maxcount=2)
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again = export_clip_data(shards, tmp_path, maxcount=2, progress=lambda n: pytest.fail("input read"))
    assert again["up_to_date"] and {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamps
    with pytest.raises(InputFileError, match="other settings"):
        export_clip_data(shards, tmp_path, captions="one", maxcount=2)
    record = export_clip_data(shards, tmp_path, captions="one", maxcount=2, overwrite=True)
    assert _read_export(tmp_path)[0] == ONE and len(record["shards"]) == 2


def test_an_interrupted_export_resumes_to_the_same_bytes(shards: Path, tmp_path: Path) -> None:
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    export_clip_data(shards, clean, maxcount=1)

    def stop_at_fourth(_n: int, seen=[]) -> None:  # noqa: B006 - a counter local to this test
        seen.append(1)
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_clip_data(shards, killed, maxcount=1, progress=stop_at_fourth)
    assert not (killed / CLIP_DATA).exists() and list(killed.glob("clip-*.tar"))
    export_clip_data(shards, killed, maxcount=1)
    names = sorted(p.name for p in clean.glob("clip-*.tar"))
    assert names == sorted(p.name for p in killed.glob("clip-*.tar"))
    assert all((clean / n).read_bytes() == (killed / n).read_bytes() for n in names)


def test_bad_inputs_are_one_clear_error(shards: Path, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such shard"):
        export_clip_data(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="no shard files"):
        export_clip_data(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(InputFileError, match="openseg shards"):
        export_clip_data(shards, shards)
    uncaptioned = tmp_path / "uncaptioned"
    write_shards(
        (s for s in _samples() if s["__key__"] in "bc"), uncaptioned, "t", "train", categories=[]
    )  # fmt: skip
    with pytest.raises(InputFileError, match="no captioned image.*2 without a caption"):
        export_clip_data(uncaptioned, tmp_path / "out")
