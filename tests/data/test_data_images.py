"""Image files as users have them: every PIL mode becomes the RGB a viewer shows, EXIF orientation is
applied, huge images are refused before decoding, broken files give one line naming the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openseg_cli.data.decode import (
    MAX_PIXELS_ENV,
    CorruptSampleError,
    ImageTooLargeError,
    decode_image,
    pixel_limit,
    to_rgb,
)
from openseg_cli.data.images import list_images, read_image_file
from openseg_cli.errors import InputFileError, UsageError


def _save(picture: Image.Image, path: Path, **kwargs) -> Path:
    picture.save(path, **kwargs)
    return path


def test_grey_and_palette_images_become_rgb(tmp_path: Path) -> None:
    grey = np.array([[0, 77], [200, 255]], np.uint8)
    out = read_image_file(_save(Image.fromarray(grey), tmp_path / "grey.png"))
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    assert np.array_equal(out, np.repeat(grey[..., None], 3, axis=2))

    paletted = Image.fromarray(np.array([[0, 1], [1, 2]], np.uint8), mode="P")
    paletted.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    out = read_image_file(_save(paletted, tmp_path / "palette.png"))
    assert out[0, 0].tolist() == [255, 0, 0] and out[0, 1].tolist() == [0, 255, 0]
    assert out[1, 1].tolist() == [0, 0, 255]


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = [0, 0, 0, 0]  # fully transparent black → white
    rgba[0, 1] = [200, 100, 0, 255]  # opaque → itself
    rgba[0, 2] = [0, 0, 0, 128]  # half-transparent black over white → 255 · 127/255 ≈ 127
    out = read_image_file(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png"))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [200, 100, 0]
    assert np.abs(out[0, 2].astype(int) - 127).max() <= 1

    # A palette PNG with a transparent index (the GIF/PNG-8 way) is composited the same way.
    paletted = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    paletted.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    out = read_image_file(_save(paletted, tmp_path / "p-alpha.png", transparency=0))
    assert out[0, 0].tolist() == [255, 255, 255] and out[0, 1].tolist() == [40, 50, 60]


def test_16_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    wide = np.array([[0, 65535, 32768, 257], [128, 255, 65534, 1000]], np.uint16)
    path = _save(Image.fromarray(wide), tmp_path / "deep.png")
    with Image.open(path) as picture:
        assert picture.mode.startswith("I")  # Pillow really reads it as 16-bit
    out = read_image_file(path)[..., 0]
    # round(v · 255 / 65535): 65535 → 255, 32768 → 128, 257 → 1 (Pillow's own convert would give 255s)
    assert out.tolist() == [[0, 255, 128, 1], [0, 1, 255, 4]]


def test_cmyk_jpeg_becomes_the_right_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # no cyan, full magenta + yellow = red
    path = _save(cmyk, tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as picture:
        assert picture.mode == "CMYK"
    out = read_image_file(path)
    assert np.abs(out.astype(int) - [255, 0, 0]).max() <= 6


def test_exif_orientation_6_turns_the_image_as_a_viewer_does(tmp_path: Path) -> None:
    stored = np.zeros((4, 10, 3), np.uint8)
    stored[:, :5] = 255  # the left half of the stored pixels is white
    picture = Image.fromarray(stored)
    exif = picture.getexif()
    exif[0x0112] = 6  # displayed rotated 90° clockwise
    out = read_image_file(_save(picture, tmp_path / "turned.png", exif=exif))
    assert out.shape == (10, 4, 3)
    # rotated clockwise, the stored left half is at the top
    assert out[:5].min() == 255 and out[5:].max() == 0


def test_too_many_pixels_is_refused_with_the_count_and_the_limit(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (32, 32)), tmp_path / "big.png")
    pillow_limit = Image.MAX_IMAGE_PIXELS
    # Between the limit and twice it Pillow only warns: the exact check names the size.
    with pytest.raises(
        ImageTooLargeError, match=r"big.png: image too large \(32x32, 1,024 pixels, limit 600;"
    ):
        read_image_file(path, max_pixels=600)
    # Over twice the limit Pillow raises itself; the message is the same kind of line.
    with pytest.raises(ImageTooLargeError, match=r"1,024 pixels, limit 100;.*--max-pixels"):
        read_image_file(path, max_pixels=100)
    assert read_image_file(path, max_pixels=1024).shape == (32, 32, 3)  # the limit is inclusive
    assert pillow_limit == Image.MAX_IMAGE_PIXELS  # Pillow's own guard is restored afterwards


def test_a_real_decompression_bomb_is_refused_by_default(tmp_path: Path) -> None:
    """144 M pixels in a ~20 kB PNG: over Pillow's default 89,478,485, refused before decoding."""
    path = _save(Image.new("1", (12_000, 12_000)), tmp_path / "bomb.png")
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ImageTooLargeError, match=r"12000x12000, 144,000,000 pixels, limit 89,478,485"):
        read_image_file(path)


def test_pixel_limit_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (32, 32)), tmp_path / "small.png")
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    assert pixel_limit() == 1000 and pixel_limit(5) == 5  # an explicit limit wins
    with pytest.raises(ImageTooLargeError, match="limit 1,000"):
        read_image_file(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(UsageError, match="positive whole number.*'lots'"):
        read_image_file(path)


def test_truncated_and_non_image_files_are_one_line_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    full = _save(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), tmp_path / "full.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture\n")
    for path in (cut, text):
        with pytest.raises(CorruptSampleError, match=f"{path.name}: unreadable image") as info:
            read_image_file(path)
        assert "\n" not in str(info.value)
    with pytest.raises(InputFileError, match="missing.png: cannot read image"):
        read_image_file(tmp_path / "missing.png")


def test_decode_image_keeps_its_contract_for_the_training_loader() -> None:
    """Bytes + where → RGB; `expect_hw` still keeps the stored orientation for annotated images."""
    picture = Image.fromarray(np.zeros((4, 10), np.uint8), mode="L")
    exif = picture.getexif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue(), "t").shape == (10, 4, 3)
    assert decode_image(buf.getvalue(), "t", expect_hw=(4, 10)).shape == (4, 10, 3)
    with pytest.raises(CorruptSampleError, match="sample k: unreadable image"):
        decode_image(b"\x89PNG broken", "sample k")


def test_to_rgb_float_images_are_clipped() -> None:
    picture = Image.fromarray(np.array([[-5.0, 127.6, 300.0]], np.float32), mode="F")
    assert to_rgb(picture)[0, :, 0].tolist() == [0, 128, 255]


def test_list_images_files_folders_patterns_and_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.JPG", "a.png", "readme.txt"):
        (folder / name).write_bytes(b"x")
    (folder / "sub.png").mkdir()  # a folder with an image suffix is not an image
    assert [p.name for p in list_images([str(folder)])] == ["a.png", "b.JPG"]
    assert [p.name for p in list_images([str(folder / "*.png")])] == ["a.png"]
    assert [p.name for p in list_images([str(folder / "readme.txt")])] == ["readme.txt"]  # named: kept
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputFileError, match="no images found in .*empty"):
        list_images([str(empty)])
    with pytest.raises(InputFileError, match="nope.jpg: no such image"):
        list_images([str(tmp_path / "nope.jpg")])
