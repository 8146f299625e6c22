"""Palette, overlay legend and label PNG round trips."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from openseg_cli.inference.visualize import (
    UNKNOWN_COLOR,
    label_png,
    label_png_encoding,
    overlay_png,
    palette,
    read_label_png,
)


def test_palette_is_deterministic_distinct_and_not_black():
    colours = palette(847)
    assert colours.shape == (847, 3) and colours.dtype == np.uint8
    assert np.array_equal(colours, palette(847))
    assert np.array_equal(colours[:20], palette(20))  # a class keeps its colour when the list grows
    assert len(np.unique(colours, axis=0)) == 847
    assert int(colours.max(axis=1).min()) > 100  # never mistaken for the black "unknown"


@pytest.mark.parametrize(
    ("num_classes", "mode", "unknown"),
    [(5, "P", 255), (254, "P", 255), (255, "I;16", 65535), (847, "I;16", 65535)],
)
def test_label_png_round_trip(tmp_path, num_classes, mode, unknown):
    rng = np.random.default_rng(num_classes)
    labels = rng.integers(-1, num_classes, size=(7, 9))
    labels[0, 0], labels[0, 1] = -1, num_classes - 1
    path = tmp_path / "labels.png"
    label_png(labels, num_classes).save(path)
    with Image.open(path) as picture:
        assert picture.mode == mode
        raw = np.array(picture)
    assert raw[0, 0] == unknown and raw[0, 1] == num_classes - 1
    assert label_png_encoding(num_classes)["unknown_value"] == unknown
    assert np.array_equal(read_label_png(path), labels)


def test_label_png_refuses_out_of_range_labels():
    with pytest.raises(ValueError, match="labels must be in"):
        label_png(np.array([[0, 5]]), num_classes=5)


def _colours_in(picture: Image.Image) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in c) for c in np.array(picture).reshape(-1, 3)}


def test_overlay_blends_and_lists_only_present_classes():
    image = np.full((30, 40, 3), 200, dtype=np.uint8)
    labels = np.zeros((30, 40), dtype=np.int64)
    labels[:, 20:] = 2
    labels[:5, :5] = -1
    names = ["sky", ["tree", "trees"], "road"]
    canvas = overlay_png(image, labels, names, alpha=0.5)
    assert canvas.size[0] > 40 and canvas.size[1] >= 30
    pixels = np.array(canvas)
    colours = palette(3)
    assert pixels[10, 10].tolist() == np.rint(0.5 * 200 + 0.5 * colours[0]).astype(int).tolist()
    assert pixels[0, 0].tolist() == [100, 100, 100]  # unknown: blended with black
    legend = canvas.crop((40, 0, canvas.size[0], canvas.size[1]))
    present = _colours_in(legend)
    assert tuple(colours[0]) in present and tuple(colours[2]) in present and UNKNOWN_COLOR in present
    assert tuple(colours[1]) not in present  # "tree" has no pixel: no legend row


def test_overlay_grows_taller_for_a_long_legend():
    labels = np.arange(64).reshape(8, 8) % 40
    canvas = overlay_png(np.zeros((8, 8, 3), np.uint8), labels, [f"class {i}" for i in range(40)])
    assert canvas.size[1] > 8 and canvas.size[0] > 8


def test_overlay_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in size"):
        overlay_png(np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4), np.int64), ["a"])


def test_legend_rows_name_the_unknown_pixels_as_asked():
    from openseg_cli.inference.visualize import _legend_rows

    labels = np.array([[0, 0, -1, -1], [0, 1, -1, -1]])
    rows = _legend_rows(labels, ["cat", "dog"], unknown_name="background / unknown")
    assert [text for _, text in rows] == ["cat  37.5%", "dog  12.5%", "background / unknown  50.0%"]
    assert rows[-1][0] == UNKNOWN_COLOR
    assert [text for _, text in _legend_rows(labels, ["cat", "dog"])][-1] == "unknown  50.0%"
