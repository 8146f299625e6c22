"""Prepared semantic benchmarks on disk: layouts, pairing, skips, label decoding and validation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from tests.engine.benchmark_helpers import write_ade150_sample, write_label, write_synthetic_benchmark

from openseg_cli.data.semantic import LAYOUTS, SemanticDataset, find_pairs, read_label, resolve_layout
from openseg_cli.data.skips import SkipCounter
from openseg_cli.errors import InputFileError, UsageError


def test_real_ade150_sample_reads_at_original_size_with_label_minus_one(shared_data, tmp_path) -> None:
    root = write_ade150_sample(shared_data, tmp_path)
    layout = resolve_layout("ade150", root)
    pairs = find_pairs(layout, root)
    assert [key for key, _, _ in pairs] == ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]
    dataset = SemanticDataset(pairs, layout)
    sizes = [tuple(dataset[i].image.shape) for i in range(3)]
    assert sizes == [(512, 683, 3), (364, 500, 3), (300, 400, 3)]  # SOURCE.md: 683x512, 500x364, 400x300
    raw = np.array(
        Image.open(
            shared_data
            / "ade20k-150-sceneparsing/ADEChallengeData2016/annotations/validation/ADE_val_00000001.png"
        )
    )
    target = dataset[0].target.numpy()
    assert np.array_equal(target == -1, raw == 0)  # "other" is ignored
    assert np.array_equal(target[raw > 0], raw[raw > 0].astype(np.int64) - 1)
    # SOURCE.md: image 1 holds wall, building, sky, tree, road, grass, plant = objectInfo 1,2,3,5,7,10,18
    assert sorted(set(np.unique(target)) - {-1}) == [0, 1, 2, 4, 6, 9, 17]


@pytest.mark.parametrize(
    ("benchmark", "convention"),
    [
        ("ade847", "detectron2"),
        ("pc459", "catseg"),
        ("pc459", "san"),
        ("pc59", "catseg"),
        ("pc59", "san"),
        ("voc20", "detectron2"),
    ],
)
def test_every_layout_round_trips_labels_and_the_ignore_value(tmp_path, benchmark, convention) -> None:
    labels = write_synthetic_benchmark(tmp_path, benchmark, [(20, 30), (17, 11)], convention=convention)
    layout = resolve_layout(benchmark, tmp_path)  # convention detected from the folders present
    assert layout.convention == convention
    dataset = SemanticDataset(find_pairs(layout, tmp_path), layout)
    for index, expected in enumerate(labels):
        sample = dataset[index]
        assert sample.image.dtype.is_floating_point is False and sample.image.shape[:2] == expected.shape
        assert np.array_equal(sample.target.numpy(), expected)
        assert (expected == -1).any() and expected.max() < layout.num_classes


def test_ade847_labels_above_255_survive_as_uint16(tmp_path) -> None:
    layout = LAYOUTS[("ade847", "detectron2")]
    path = tmp_path / "x.tif"
    write_label(path, np.array([[846, 300], [65535, 0]]))
    assert read_label(path, layout).tolist() == [[846, 300], [-1, 0]]


def test_pc459_ignore_value_depends_on_the_convention(tmp_path) -> None:
    path = tmp_path / "x.tif"
    write_label(path, np.array([[459, 458]]))
    assert read_label(path, LAYOUTS[("pc459", "catseg")]).tolist() == [[-1, 458]]
    with pytest.raises(InputFileError, match="value 459"):
        read_label(path, LAYOUTS[("pc459", "san")])


def test_out_of_range_label_names_file_and_value(tmp_path) -> None:
    path = tmp_path / "bad.png"
    write_label(path, np.array([[3, 150]]))
    with pytest.raises(InputFileError, match=r"bad\.png holds value 150"):
        read_label(path, LAYOUTS[("ade150", "detectron2")])


def test_missing_folder_names_the_expected_path(tmp_path) -> None:
    with pytest.raises(InputFileError, match="ADEChallengeData2016/annotations_detectron2/validation"):
        resolve_layout("ade150", tmp_path)
    with pytest.raises(InputFileError, match="pc459_val or .*pcontext_full/val/label"):
        resolve_layout("pc459", tmp_path)
    with pytest.raises(UsageError, match="catseg"):
        resolve_layout("pc459", tmp_path, convention="mmseg")
    with pytest.raises(UsageError, match="ade150"):
        resolve_layout("cityscapes", tmp_path)


def test_unmatched_files_are_counted_or_refused_with_strict(tmp_path) -> None:
    write_synthetic_benchmark(tmp_path, "ade150", [(8, 8), (8, 8), (8, 8)])
    layout = LAYOUTS[("ade150", "detectron2")]
    (tmp_path / layout.label_dir / "img_001.png").unlink()  # an image without label
    write_label(tmp_path / layout.label_dir / "orphan.png", np.zeros((8, 8)))  # a label without image
    skips = SkipCounter("test")
    pairs = find_pairs(layout, tmp_path, skips)
    assert [key for key, _, _ in pairs] == ["img_000", "img_002"]
    assert dict(skips.reasons) == {"label without image": 1, "image without label": 1}
    with pytest.raises(InputFileError, match="orphan.png"):
        find_pairs(layout, tmp_path, strict=True)


def test_voc_folders_hold_other_splits_so_extra_images_are_not_skips(tmp_path) -> None:
    write_synthetic_benchmark(tmp_path, "voc20", [(8, 8)])
    layout = LAYOUTS[("voc20", "detectron2")]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / layout.image_dir / "train_only.jpg")
    skips = SkipCounter("test")
    assert len(find_pairs(layout, tmp_path, skips, strict=True)) == 1 and skips.total == 0


def test_a_bad_sample_is_returned_as_an_error_not_raised(tmp_path) -> None:
    write_synthetic_benchmark(tmp_path, "ade150", [(8, 8)])
    layout = LAYOUTS[("ade150", "detectron2")]
    (tmp_path / layout.image_dir / "img_000.jpg").write_bytes(b"not a jpeg")
    error = SemanticDataset(find_pairs(layout, tmp_path), layout)[0]
    assert isinstance(error, InputFileError) and "img_000.jpg" in str(error)
