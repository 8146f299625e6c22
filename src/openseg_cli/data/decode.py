"""Decode one shard sample: image bytes → RGB array, panoptic PNG → id map → segment and semantic maps.

The panoptic PNG is decoded here, never by webdataset's generic image handler: that handler returns an
RGB image, and the id (R + 256 G + 256^2 B) would be lost. A PNG that paints ids its meta does not list
(the PNG of another image, a meta that lost segments) would teach those objects as background: such a
sample raises UnlistedIdsError, which the loaders skip and count.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps

from openseg_cli.data.schema import META_MEMBER, PANOPTIC_MEMBER, image_member, normalise_meta
from openseg_cli.errors import InputFileError, UsageError


class CorruptSampleError(InputFileError):
    """One sample cannot be used (unreadable image, bad meta, size mismatch). Loaders count and skip it."""


class UnlistedIdsError(CorruptSampleError):
    """A panoptic PNG paints ids that no segment of the sample's meta lists (a PNG of another image, or a
    meta that lost segments): training on it would teach those objects as background."""


@dataclass
class DecodedSample:
    """A decoded sample. M = number of non-crowd segments with at least one pixel."""

    key: str
    url: str | None
    meta: dict[str, Any]
    image: torch.Tensor  # uint8 [H, W, 3]
    segment_map: torch.Tensor  # long [H, W]: 0 = void/crowd, j = j-th non-crowd segment (1..M)
    segment_classes: torch.Tensor  # long [M]: contiguous class index (-1 = unknown, pseudo-labels)
    semantic: torch.Tensor  # long [H, W]: class index of every labelled pixel incl. crowd, -1 = void


def class_lookup(categories: list[Mapping[str, Any]]) -> dict[int, int]:
    """Manifest categories → {dataset category id: contiguous class index}."""
    return {int(c["id"]): int(c["index"]) for c in categories}


def parse_meta(data: bytes | Mapping[str, Any], where: str) -> dict[str, Any]:
    """`meta.json` bytes (or an already parsed dict) → normalised schema-v1 meta; CorruptSampleError."""
    try:
        meta = json.loads(data) if isinstance(data, (bytes, bytearray, str)) else data
        return normalise_meta(meta, where=where)
    except (ValueError, TypeError) as exn:  # JSONDecodeError is a ValueError
        raise CorruptSampleError(f"{where}: bad meta.json ({exn})") from None


class ImageTooLargeError(CorruptSampleError):
    """An image whose pixel count is over the decompression-bomb limit (`decode_image`'s `max_pixels`)."""


# Pillow's own guard, read once: `decode_image` never disables it, it only sets it to the caller's limit.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
MAX_PIXELS_ENV = "OPENSEG_MAX_PIXELS"
_PIL_LIMIT_LOCK = threading.Lock()
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")
_TURNS = range(2, 9)  # EXIF orientations that exif_transpose turns or flips (1 = as stored)


def decode_image(
    data: bytes, where: str, expect_hw: tuple[int, int] | None = None, max_pixels: int | None = None
) -> np.ndarray:
    """Image bytes → uint8 [H, W, 3] RGB, EXIF orientation applied.

    When `expect_hw` (the panoptic map's size) is given and only the un-rotated image matches it, the
    EXIF rotation is not applied: the annotation was drawn on the stored pixels. Any mode is turned into
    RGB by `to_rgb` (grey, palette, 16-bit grey scaled to 8 bits, CMYK, alpha composited on white).
    Unreadable or truncated bytes, or a size matching neither way → CorruptSampleError. More than
    `max_pixels` pixels (None: `$OPENSEG_MAX_PIXELS`, else Pillow's `Image.MAX_IMAGE_PIXELS`) →
    ImageTooLargeError naming the pixel count and the limit, before any pixel is decoded; a limit that
    is not a positive integer → UsageError.
    """
    limit = pixel_limit(max_pixels)
    try:
        raw = _open_within_limit(data, where, limit)
        raw.load()  # PIL decodes lazily: force it so truncation shows up here
        # exif_transpose copies the image when there is nothing to turn: ask first
        turned = raw.getexif().get(ExifTags.Base.Orientation, 1) in _TURNS
        image = (ImageOps.exif_transpose(raw) or raw) if turned else raw
    except CorruptSampleError:
        raise
    except Exception as exn:  # PIL raises many types (OSError, SyntaxError, ValueError...)
        raise CorruptSampleError(f"{where}: unreadable image ({_one_line(exn)})") from None
    if expect_hw is not None and (image.height, image.width) != expect_hw:
        if (raw.height, raw.width) != expect_hw:
            raise CorruptSampleError(
                f"{where}: image is {raw.width}x{raw.height} "
                f"but its panoptic map is {expect_hw[1]}x{expect_hw[0]}"
            )
        image = raw
    return to_rgb(image)


def to_rgb(image: Image.Image) -> np.ndarray:
    """A decoded PIL image of any common mode → a writable uint8 [H, W, 3] RGB array.

    - 16-bit grey ("I;16*", and "I" as Pillow reads some 16-bit files): v → round(v · 255 / 65535), so
      65535 → 255 (Pillow's own convert would clip every value above 255 to white);
    - alpha ("RGBA", "LA", "PA", palette or grey with a transparent colour): composited on white, the
      page an image viewer shows transparent pixels on (dropping alpha would reveal whatever colour the
      encoder left under fully transparent pixels, often black);
    - "F" (32-bit float): clipped to 0..255; everything else ("L", "P", "1", "CMYK", "YCbCr", "RGB"):
      Pillow's `convert("RGB")` (it undoes Adobe's inverted CMYK in JPEGs).
    """
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        wide = np.asarray(image).astype(np.int64).clip(0, 65535)
        grey = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # integer round-half-up
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        grey = np.rint(np.asarray(image, dtype=np.float64).clip(0, 255)).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.array(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    rgb = image if mode == "RGB" else image.convert("RGB")  # convert would copy an RGB image
    return np.array(rgb, dtype=np.uint8)  # a writable copy for torch.from_numpy


def _open_within_limit(data: bytes, where: str, limit: int) -> Image.Image:
    """`Image.open` (header only) with Pillow's bomb guard set to `limit`, then our own exact check.

    Pillow warns between the limit and twice it and raises above twice it; both become one
    ImageTooLargeError line here. The guard is a Pillow global, so it is set under a lock and restored.
    """
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # checked exactly below
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exn:
            found = _BOMB_PIXELS.search(str(exn))
            raise _too_large(where, int(found.group(1)) if found else None, limit) from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    if image.width * image.height > limit:
        raise _too_large(where, image.width * image.height, limit, f"{image.width}x{image.height}, ")
    return image


def pixel_limit(max_pixels: int | None = None) -> int:
    """The decompression-bomb limit in pixels: `max_pixels`, else `$OPENSEG_MAX_PIXELS`, else Pillow's.

    Raises UsageError for a limit that is not a positive integer (there is no "no limit" value: a
    trusted huge image needs an explicit, large number).
    """
    value: object = max_pixels
    if value is None:
        value = os.environ.get(MAX_PIXELS_ENV) or Image.MAX_IMAGE_PIXELS or DEFAULT_MAX_PIXELS
    try:
        limit = int(str(value).replace("_", ""))
    except ValueError:
        limit = 0
    if limit <= 0:
        raise UsageError(f"the pixel limit must be a positive whole number, not {value!r} ({MAX_PIXELS_ENV})")
    return limit


def _too_large(where: str, pixels: int | None, limit: int, size: str = "") -> ImageTooLargeError:
    count = f"{pixels:,}" if pixels is not None else f"over {2 * limit:,}"
    return ImageTooLargeError(
        f"{where}: image too large ({size}{count} pixels, limit {limit:,}; a decompression-bomb guard: "
        "raise it with --max-pixels or OPENSEG_MAX_PIXELS if the file is trusted)"
    )


def _one_line(exn: Exception) -> str:
    lines = [line.strip() for line in str(exn).splitlines() if line.strip()]
    return lines[0] if lines else type(exn).__name__


def decode_panoptic(data: bytes, where: str) -> np.ndarray:
    """COCO panoptic PNG bytes → int64 id map [H, W], id = R + 256 G + 256^2 B (0 = void)."""
    rgb = np.asarray(open_panoptic(data, where), dtype=np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def open_panoptic(data: bytes, where: str) -> Image.Image:
    """COCO panoptic PNG bytes → the decoded PIL image in mode RGB; CorruptSampleError if unreadable."""
    try:
        png = Image.open(io.BytesIO(data))
        png.load()
        return png if png.mode == "RGB" else png.convert("RGB")
    except Exception as exn:
        raise CorruptSampleError(f"{where}: unreadable panoptic PNG ({exn})") from None


def build_maps(
    ids: np.ndarray, segments: list[Mapping[str, Any]], class_of: Mapping[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw id map [H,W] + meta segments → (segment_map [H,W], segment_classes [M], semantic [H,W]).

    Non-crowd segments are numbered 1..M in `segments` order, skipping those with no pixels (so every id
    1..M is present); crowd pixels get segment 0 but keep their class in `semantic`. Pixels whose id is
    not listed are void (0 / -1). Unknown category ids map to class -1.
    """
    # A lookup over the few listed ids (searchsorted) instead of np.unique over every pixel: the unique
    # sort was the loader's largest cost (7.6 of ~25 ms per 640-px image, benchmarks/loader.py).
    listed = [seg for seg in segments if int(seg["id"]) != 0]
    if not listed:
        return np.zeros(ids.shape, np.int64), np.zeros(0, np.int64), np.full(ids.shape, -1, np.int64)
    listed_ids = np.array([int(seg["id"]) for seg in listed], np.int64)
    sorted_ids = np.sort(listed_ids)
    slot = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)  # [H, W] index into sorted
    painted = sorted_ids[slot] == ids  # pixels whose id is listed
    pixels = np.bincount(slot[painted], minlength=len(sorted_ids))  # per sorted listed id
    segment_lut = np.zeros(len(sorted_ids), np.int64)
    semantic_lut = np.full(len(sorted_ids), -1, np.int64)
    classes: list[int] = []
    for seg, seg_id in zip(listed, listed_ids, strict=True):
        k = int(np.searchsorted(sorted_ids, seg_id))
        if pixels[k] == 0:
            continue  # listed but not painted: nothing to learn from it
        cls = class_of.get(int(seg["category_id"]), -1)
        semantic_lut[k] = cls
        if not seg.get("iscrowd", 0):
            classes.append(cls)
            segment_lut[k] = len(classes)
    segment_map = np.where(painted, segment_lut[slot], 0)
    semantic = np.where(painted, semantic_lut[slot], -1)
    return segment_map, np.asarray(classes, np.int64), semantic


def decode_sample(sample: Mapping[str, Any], class_of: Mapping[int, int]) -> DecodedSample:
    """A raw webdataset sample (member name → bytes, plus `__key__`, `__url__`) → DecodedSample.

    A sample without `panoptic.png` (caption-only data) gets an all-void map and M = 0.
    Missing members, unreadable bytes or a bad meta → CorruptSampleError naming key and shard.
    """
    key, url, where, name, meta = sample_header(sample)
    ids = decode_panoptic(sample[PANOPTIC_MEMBER], where) if PANOPTIC_MEMBER in sample else None
    image = decode_image(sample[name], where, None if ids is None else ids.shape)
    if ids is None:
        ids = np.zeros(image.shape[:2], np.int64)
    segment_map, classes, semantic = build_maps(ids, meta["segments"], class_of)
    check_listed_ids(ids, segment_map, semantic, meta["segments"], where)
    return DecodedSample(
        key=key,
        url=url,
        meta=meta,
        image=torch.from_numpy(np.ascontiguousarray(image)),
        segment_map=torch.from_numpy(segment_map),
        segment_classes=torch.from_numpy(classes),
        semantic=torch.from_numpy(semantic),
    )


def sample_header(sample: Mapping[str, Any]) -> tuple[str, str | None, str, str, dict[str, Any]]:
    """(key, url, where, image member name, normalised meta) of a raw sample; CorruptSampleError when
    the image or the meta is missing or the meta is bad."""
    key, url = str(sample.get("__key__", "?")), sample.get("__url__")
    where = f"sample {key} ({url})" if url else f"sample {key}"
    name = image_member(sample)
    if name is None or META_MEMBER not in sample:
        have = sorted(k for k in sample if not k.startswith("__"))
        raise CorruptSampleError(f"{where}: incomplete sample (members: {', '.join(have) or 'none'})")
    return key, url, where, name, parse_meta(sample[META_MEMBER], where)


def ids_of(rgb: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] panoptic RGB → int32 ids [...], R + 256 G + 256^2 B (ids < 2^24 fit)."""
    ids = rgb[..., 2].astype(np.int32)  # in place from here: no [..., 3] int copy, no temporaries
    ids <<= 8
    ids |= rgb[..., 1]
    ids <<= 8
    ids |= rgb[..., 0]
    return ids


def check_listed_ids(ids: np.ndarray, segment_map: np.ndarray, semantic: np.ndarray, segments, where) -> None:
    """UnlistedIdsError when a non-zero id of the PNG is not a meta segment's id."""
    labelled = np.count_nonzero((segment_map > 0) | (semantic >= 0))
    if np.count_nonzero(ids) <= labelled:
        return  # every painted pixel got a segment or a class: all its ids are listed
    listed = np.array([int(seg["id"]) for seg in segments], np.int64)
    unlisted = np.unique(ids[(ids != 0) & ~np.isin(ids, listed)])
    if unlisted.size:
        raise _unlisted_error(where, [int(i) for i in unlisted], int(np.isin(ids, unlisted).sum()))


def check_painted_colours(png: Image.Image, segments: list[Mapping[str, Any]], where: str) -> None:
    """`check_listed_ids` on the whole RGB panoptic image without building an id map (~0.3 ms for
    640 px): PIL counts its colours, and there can be no more of them than listed ids + void."""
    listed = {int(seg["id"]) for seg in segments}
    colours = png.getcolors(maxcolors=len(listed | {0}))
    if colours is None:  # more colours than listed ids + void: some are unlisted, find which
        ids = ids_of(np.asarray(png)).astype(np.int64)
        check_listed_ids(ids, np.zeros_like(ids), np.full_like(ids, -1), segments, where)
        return
    painted = {r + 256 * g + 65536 * b: n for n, (r, g, b) in colours}
    unlisted = sorted(i for i in painted if i != 0 and i not in listed)
    if unlisted:
        raise _unlisted_error(where, unlisted, sum(painted[i] for i in unlisted))


def _unlisted_error(where: str, unlisted: list[int], pixels: int) -> UnlistedIdsError:
    shown = ", ".join(str(i) for i in unlisted[:5]) + (" ..." if len(unlisted) > 5 else "")
    return UnlistedIdsError(
        f"{where}: panoptic PNG paints ids not listed in meta segments ({shown}; {pixels} pixels)"
    )


def skip_reason(exn: CorruptSampleError) -> str:
    """The counted reason of a sample that cannot be used (see skips.SHARED_REASONS)."""
    if isinstance(exn, UnlistedIdsError):
        return "unlisted panoptic ids"
    return "unreadable image" if "unreadable image" in str(exn) else "corrupt sample"
