"""Image files on disk: finding them (files, folders, glob patterns) and reading them as RGB arrays.

`list_images` is pure python (the CLI calls it before torch is imported, so a typo fails instantly);
`read_image_file` decodes with `decode.decode_image` (any mode → RGB, EXIF orientation applied, the
decompression-bomb limit enforced) and is imported lazily for the same reason.
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from openseg_cli.errors import InputFileError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


def list_images(specs: list[str]) -> list[Path]:
    """Files, folders (their image files by suffix, sorted, not recursive) and glob patterns → paths.

    A file named explicitly is kept whatever its suffix (it is checked when read). Raises
    InputFileError for a spec that is neither a file, a folder nor a pattern, and when nothing is found
    (an empty folder, a folder of non-images, a pattern that matches nothing).
    """
    paths: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            paths.append(path)
        elif any(c in spec for c in "*?["):
            paths += [Path(p) for p in sorted(glob.glob(spec)) if Path(p).is_file()]
        else:
            raise InputFileError(f"{spec}: no such image, folder or pattern")
    if not paths:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise InputFileError(f"no images found in {', '.join(specs)} (image suffixes: {suffixes})")
    return paths


def read_image_file(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """uint8 [H, W, 3] RGB as displayed (EXIF orientation applied; modes as `decode.to_rgb`).

    Raises InputFileError for a missing or unreadable file, CorruptSampleError (an InputFileError) for
    bytes that are not a readable image, and ImageTooLargeError for more than `max_pixels` pixels
    (None: `$OPENSEG_MAX_PIXELS`, else Pillow's limit). Every message is one line naming the file.
    """
    from openseg_cli.data.decode import decode_image  # torch comes with it: keep list_images light

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputFileError(f"{path}: cannot read image ({err.strerror or err})") from None
    return decode_image(data, str(path), max_pixels=max_pixels)
