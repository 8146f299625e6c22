"""Pictures of a prediction: a colour palette, an overlay with a legend, and a lossless label PNG.

Label PNG encoding (what `label_png` writes and `read_label_png` reads back):
- `uint8-palette`: fewer than 255 classes → 8-bit "P" (palette) PNG, pixel value = class index 0..C-1,
  255 = unknown; the palette holds `palette(C)` so the file also looks right in an image viewer.
- `uint16`: 255 ≤ C < 65535 (ADE20K-847, Pascal Context-459) → 16-bit grey PNG (Pillow mode "I;16"),
  pixel value = class index, 65535 = unknown.
Both are lossless; any reader (PIL, OpenCV with IMREAD_UNCHANGED) gets the indices back.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from openseg_cli.text.queries import class_display_name

UNKNOWN_COLOR = (0, 0, 0)  # blended at `alpha`, unknown regions show as a darkened image
UINT8_UNKNOWN = 255
UINT16_UNKNOWN = 65535

_GOLDEN = 0.618033988749895
_SWATCH = 14  # legend geometry in pixels
_PAD = 6
_MAX_NAME = 32  # characters shown per legend row; longer names are cut with "…"


def palette(n: int) -> np.ndarray:
    """n deterministic, well-separated RGB colours as uint8 [n, 3].

    Hues step by the golden ratio (neighbouring indices far apart on the colour wheel); saturation and
    value cycle through a few levels so that hues that come close again for large n (847 classes) still
    differ. Value stays ≥ 0.6 so no class colour is confused with the black `UNKNOWN_COLOR`.
    """
    if n < 0:
        raise ValueError(f"palette size must be ≥ 0, got {n}")
    colours = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        hue = (i * _GOLDEN) % 1.0
        saturation = (0.85, 0.55, 1.0)[i % 3]
        value = (0.95, 0.75, 0.6)[(i // 3) % 3]
        colours[i] = [round(255 * c) for c in colorsys.hsv_to_rgb(hue, saturation, value)]
    return colours


def _as_numpy(array) -> np.ndarray:
    return array.detach().cpu().numpy() if hasattr(array, "detach") else np.asarray(array)


def _legend_rows(
    labels: np.ndarray, class_names: Sequence, unknown_name: str = "unknown"
) -> list[tuple[tuple[int, int, int], str]]:
    """(colour, text) for each present class by decreasing area, then `unknown_name` when any pixel is -1."""
    total = labels.size
    counts = np.bincount(labels[labels >= 0].ravel(), minlength=len(class_names))
    colours = palette(len(class_names))
    rows = []
    for index in np.argsort(-counts, kind="stable"):
        if counts[index] == 0:
            break
        name = class_display_name(class_names[index])
        if len(name) > _MAX_NAME:
            name = name[: _MAX_NAME - 1] + "…"
        rows.append((tuple(int(v) for v in colours[index]), f"{name}  {100 * counts[index] / total:.1f}%"))
    unknown = int((labels < 0).sum())
    if unknown:
        rows.append((UNKNOWN_COLOR, f"{unknown_name}  {100 * unknown / total:.1f}%"))
    return rows


def _check_labels(labels: np.ndarray, num_classes: int) -> None:
    if labels.ndim != 2:
        raise ValueError(f"labels must be [H, W], got shape {labels.shape}")
    if labels.size and (labels.min() < -1 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [-1, {num_classes - 1}], got [{labels.min()}, {labels.max()}]")


def overlay_png(
    image, labels, class_names: Sequence, alpha: float = 0.5, unknown_name: str = "unknown"
) -> Image.Image:
    """The image with class colours blended in and a legend panel on its right.

    image uint8 [H, W, 3]; labels [H, W] ints in [-1, C) (-1 = unknown, numpy or torch); class_names C
    names or synonym lists. Pixel colour = (1 - alpha)·image + alpha·palette[label]. The legend (colour
    swatch, name, area % of the image) lists only classes present, largest first, plus `unknown_name`
    when any pixel is unknown (predict passes "background / unknown" when background classes were
    given); the canvas grows taller when the legend needs it. Text uses Pillow's built-in font (no font
    file needed). Raises ValueError for mismatched shapes, dtype or label range.
    """
    image = _as_numpy(image)
    labels = _as_numpy(labels).astype(np.int64)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
    if labels.shape != image.shape[:2]:
        raise ValueError(f"labels {labels.shape} and image {image.shape[:2]} differ in size")
    _check_labels(labels, len(class_names))
    colours = np.concatenate([palette(len(class_names)), np.array([UNKNOWN_COLOR], np.uint8)])
    colour_map = colours[np.where(labels < 0, len(class_names), labels)]  # -1 → the unknown row
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colour_map.astype(np.float32)
    picture = Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    return _add_legend(picture, _legend_rows(labels, class_names, unknown_name))


def _add_legend(picture: Image.Image, rows: list[tuple[tuple[int, int, int], str]]) -> Image.Image:
    """A white panel right of `picture` with one swatch + text row each; taller than it when needed."""
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(picture)
    boxes = [measure.textbbox((0, 0), text, font=font) for _, text in rows]
    text_w = max((box[2] for box in boxes), default=0)
    row_h = max([_SWATCH, *(box[3] for box in boxes)]) + 4
    width, height = picture.size
    panel_w = 3 * _PAD + _SWATCH + int(text_w)
    canvas = Image.new("RGB", (width + panel_w, max(height, 2 * _PAD + row_h * len(rows))), "white")
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, (colour, text) in enumerate(rows):
        x, y = width + _PAD, _PAD + i * row_h
        draw.rectangle([x, y, x + _SWATCH - 1, y + _SWATCH - 1], fill=colour, outline=(60, 60, 60))
        draw.text((x + _SWATCH + _PAD, y), text, fill=(0, 0, 0), font=font)
    return canvas


def label_png(labels, num_classes: int | None = None) -> Image.Image:
    """labels [H, W] in [-1, C) (-1 = unknown) → a lossless label image (encoding in the module doc).

    num_classes C picks the encoding and should be the vocabulary size, so that every image of one query
    list gets the same encoding; None infers C = max label + 1 (then the encoding may vary per image).
    Raises ValueError for labels outside [-1, C) or C ≥ 65535.
    """
    labels = _as_numpy(labels).astype(np.int64)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    _check_labels(labels, num_classes)
    if num_classes < UINT8_UNKNOWN:
        picture = Image.fromarray(np.where(labels < 0, UINT8_UNKNOWN, labels).astype(np.uint8))
        colours = np.zeros((256, 3), dtype=np.uint8)
        colours[:num_classes] = palette(num_classes)
        picture.putpalette(colours.ravel().tolist())  # turns the "L" image into "P" (indices unchanged)
        return picture
    if num_classes >= UINT16_UNKNOWN:
        raise ValueError(f"{num_classes} classes do not fit a 16-bit label PNG (max {UINT16_UNKNOWN - 1})")
    return Image.fromarray(np.where(labels < 0, UINT16_UNKNOWN, labels).astype(np.uint16))  # mode "I;16"


def label_png_encoding(num_classes: int) -> dict:
    """What `label_png` writes for C classes: {"encoding", "dtype", "unknown_value"} (for JSON sidecars)."""
    if num_classes < UINT8_UNKNOWN:
        return {"encoding": "uint8-palette", "dtype": "uint8", "unknown_value": UINT8_UNKNOWN}
    return {"encoding": "uint16", "dtype": "uint16", "unknown_value": UINT16_UNKNOWN}


def read_label_png(path: str | Path) -> np.ndarray:
    """Read a label PNG written by `label_png` → int64 [H, W] with -1 = unknown.

    The encoding is read from the file's mode ("P"/"L" → 8-bit, 255 unknown; "I;16"/"I" → 16-bit,
    65535 unknown). Raises ValueError for any other mode (e.g. an RGB image).
    """
    with Image.open(path) as picture:
        mode = picture.mode
        values = np.array(picture).astype(np.int64)
    if mode in ("P", "L"):
        unknown = UINT8_UNKNOWN
    elif mode in ("I;16", "I;16B", "I"):
        unknown = UINT16_UNKNOWN
    else:
        raise ValueError(f"{path}: mode {mode!r} is not a label PNG (expected P, L or I;16)")
    return np.where(values == unknown, -1, values)
