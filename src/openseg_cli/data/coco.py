"""Read a COCO panoptic dataset (+ COCO captions) and yield schema-v1 samples, one image at a time.

Standard download layout (`coco_paths(root, split)`):
`ROOT/{split}/*.jpg`, `ROOT/annotations/panoptic_{split}.json`, `ROOT/annotations/panoptic_{split}/*.png`,
`ROOT/annotations/captions_{split}.json`. Any other layout: build `CocoPanopticPaths` by hand.
Only the JSON files are loaded whole; image and PNG bytes are read per sample and copied unchanged.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openseg_cli.data.schema import SCHEMA_VERSION, make_key
from openseg_cli.errors import InputFileError

_NAME_SUFFIXES = re.compile(r"(-merged|-other|-stuff)+$")


@dataclass(frozen=True)
class CocoPanopticPaths:
    """Where the parts of one COCO panoptic split live. `captions_json=None`: no captions (eval data)."""

    images_dir: Path
    panoptic_json: Path
    panoptic_dir: Path
    captions_json: Path | None = None

    def check(self) -> None:
        """Raise InputFileError naming the first missing part."""
        parts = [("image folder", self.images_dir, True), ("panoptic JSON", self.panoptic_json, False)]
        parts += [("panoptic PNG folder", self.panoptic_dir, True)]
        if self.captions_json is not None:
            parts.append(("captions JSON", self.captions_json, False))
        for what, path, is_dir in parts:
            ok = Path(path).is_dir() if is_dir else Path(path).is_file()
            if not ok:
                raise InputFileError(f"{path}: {what} not found")


def coco_paths(root: str | Path, split: str, captions: bool = True) -> CocoPanopticPaths:
    """Paths of `split` (e.g. `train2017`) in the standard COCO download layout under `root`."""
    root = Path(root)
    ann = root / "annotations"
    cap = ann / f"captions_{split}.json" if captions else None
    return CocoPanopticPaths(root / split, ann / f"panoptic_{split}.json", ann / f"panoptic_{split}", cap)


def clean_class_name(name: str) -> str:
    """COCO panoptic class name → prompt text: 'sky-other-merged' → 'sky', 'wall-brick' → 'wall brick'."""
    name = _NAME_SUFFIXES.sub("", name.strip())
    return re.sub(r"\s+", " ", name.replace("-", " ").replace("_", " ")).strip()


def load_json(path: str | Path, what: str) -> Any:
    """Load a JSON file; missing or malformed → InputFileError with one line (file + what is wrong)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputFileError(f"{path}: {what} not found") from None
    except json.JSONDecodeError as exn:
        raise InputFileError(
            f"{path}: malformed {what} ({exn.msg} at line {exn.lineno} column {exn.colno})"
        ) from None
    except (OSError, UnicodeDecodeError) as exn:
        raise InputFileError(f"{path}: cannot read {what} ({exn})") from None


def _require(obj: Any, key: str, kind: type, path: Path, where: str) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get(key), kind):
        raise InputFileError(f"{path}: {where} has no {kind.__name__} '{key}'")
    return obj[key]


def build_categories(raw: list[dict[str, Any]], path: Path) -> list[dict[str, Any]]:
    """COCO categories → manifest entries sorted by id with a contiguous `index` and a cleaned `name`.

    Entry: `{"index", "id", "name" (cleaned), "coco_name" (original), "isthing"}`.
    """
    try:
        cats = sorted(raw, key=lambda c: int(c["id"]))
        out = [
            {
                "index": i,
                "id": int(c["id"]),
                "name": clean_class_name(str(c["name"])),
                "coco_name": str(c["name"]),
                "isthing": int(c.get("isthing", 1)),
            }
            for i, c in enumerate(cats)
        ]
    except (KeyError, TypeError, ValueError) as exn:
        raise InputFileError(f"{path}: bad 'categories' entry ({exn!r})") from None
    if len({c["id"] for c in out}) != len(out):
        raise InputFileError(f"{path}: duplicate category ids")
    return out


def _captions_by_image(path: Path) -> dict[int, list[str]]:
    data = load_json(path, "captions JSON")
    out: dict[int, list[str]] = {}
    for ann in _require(data, "annotations", list, path, "captions JSON"):
        try:
            out.setdefault(int(ann["image_id"]), []).append(str(ann["caption"]).strip())
        except (KeyError, TypeError, ValueError):
            raise InputFileError(f"{path}: caption entry without image_id/caption: {ann!r:.80}") from None
    return out


class CocoPanopticReader:
    """Iterate one COCO panoptic split as schema-v1 sample dicts (see `data/schema.py`).

    Samples come in image-id order (deterministic, which makes shard writing resumable). Skipped images
    are counted in `skipped` (reason → count): missing image, missing panoptic PNG, no panoptic
    annotation, no captions (only when a captions file is given), unsupported image format.
    With `strict=True` each of these raises InputFileError instead. A malformed JSON always raises.
    """

    def __init__(self, paths: CocoPanopticPaths, source: str = "coco", strict: bool = False) -> None:
        paths.check()
        self.paths, self.source, self.strict = paths, source, strict
        pan_path = Path(paths.panoptic_json)
        data = load_json(pan_path, "panoptic JSON")
        images = _require(data, "images", list, pan_path, "panoptic JSON")
        annotations = _require(data, "annotations", list, pan_path, "panoptic JSON")
        self.categories = build_categories(
            _require(data, "categories", list, pan_path, "panoptic JSON"), pan_path
        )
        self._category_ids = {c["id"] for c in self.categories}
        try:
            self._images = sorted(images, key=lambda im: int(im["id"]))
            self._annotations = {int(a["image_id"]): a for a in annotations}
        except (KeyError, TypeError, ValueError) as exn:
            raise InputFileError(f"{pan_path}: image or annotation entry without an id ({exn!r})") from None
        cap_path = paths.captions_json
        self._captions = _captions_by_image(Path(cap_path)) if cap_path is not None else None
        self.skipped: Counter[str] = Counter()
        self.source_files = {str(p): Path(p).stat().st_size for p in (pan_path, cap_path) if p is not None}

    def __len__(self) -> int:
        """Number of images listed in the panoptic JSON (samples + skips)."""
        return len(self._images)

    def _skip(self, reason: str, detail: str) -> None:
        if self.strict:
            raise InputFileError(f"{detail}: {reason}")
        self.skipped[reason] += 1

    def _segments(self, ann: dict[str, Any], image_id: int) -> list[dict[str, Any]]:
        where = f"{self.paths.panoptic_json}: image {image_id}"
        try:
            segs = [
                {
                    "id": int(s["id"]),
                    "category_id": int(s["category_id"]),
                    "iscrowd": int(s.get("iscrowd", 0)),
                    "area": int(s.get("area", 0)),
                    "bbox": [int(round(float(v))) for v in s.get("bbox", [0, 0, 0, 0])],
                }
                for s in ann["segments_info"]
            ]
        except (KeyError, TypeError, ValueError) as exn:
            raise InputFileError(f"{where}: bad segments_info ({exn!r})") from None
        unknown = {s["category_id"] for s in segs} - self._category_ids
        if unknown:
            raise InputFileError(f"{where}: category id(s) {sorted(unknown)} not in 'categories'")
        return segs

    def _sample(self, image: dict[str, Any]) -> dict[str, Any] | None:
        image_id, file_name = int(image["id"]), str(image.get("file_name", ""))
        ext = file_name.rsplit(".", 1)[-1].lower().replace("jpeg", "jpg")
        image_path = Path(self.paths.images_dir) / file_name
        ann = self._annotations.get(image_id)
        captions = self._captions.get(image_id, []) if self._captions is not None else []
        if ext not in ("jpg", "png"):
            return self._skip("unsupported image format", str(image_path))
        if ann is None:
            return self._skip("no panoptic annotation", f"{self.paths.panoptic_json}: image {image_id}")
        png_path = Path(self.paths.panoptic_dir) / str(ann.get("file_name", ""))
        if not image_path.is_file():
            return self._skip("missing image", str(image_path))
        if not png_path.is_file():
            return self._skip("missing panoptic png", str(png_path))
        if self._captions is not None and not captions:
            return self._skip("no captions", f"{self.paths.captions_json}: image {image_id}")
        meta = {
            "schema": SCHEMA_VERSION,
            "source": self.source,
            "image_id": image_id,
            "file_name": file_name,
            "width": int(image.get("width", 0)),
            "height": int(image.get("height", 0)),
            "captions": captions,
            "segments": self._segments(ann, image_id),
            "pseudo": False,
        }
        return {
            "__key__": make_key(image_id),
            f"image.{ext}": image_path.read_bytes(),
            "panoptic.png": png_path.read_bytes(),
            "meta.json": meta,
        }

    def iter_samples(self, progress: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
        """Yield samples; `progress(1)` is called per listed image, written or skipped."""
        for image in self._images:
            sample = self._sample(image)
            if progress is not None:
                progress(1)
            if sample is not None:
                yield sample

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.iter_samples()


def write_coco_shards(
    paths: CocoPanopticPaths | CocoPanopticReader,
    out_dir: str | Path,
    split: str,
    *,
    source: str = "coco",
    strict: bool = False,
    maxcount: int | None = None,
    maxsize: int | None = None,
    command: str | list[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Read one COCO panoptic split and write it as shards in `out_dir`; return the manifest.

    `paths` may be a ready `CocoPanopticReader` (its own `source`/`strict` win): build one to get
    `len(reader)` for a progress bar without loading the JSON files twice. `progress(1)` is called once
    per image listed in the panoptic JSON.
    """
    from openseg_cli.data.shards import DEFAULT_MAXCOUNT, DEFAULT_MAXSIZE, write_shards

    if isinstance(paths, CocoPanopticReader):
        reader, source = paths, paths.source
    else:
        reader = CocoPanopticReader(paths, source=source, strict=strict)
    return write_shards(
        reader.iter_samples(progress=progress),
        out_dir,
        source,
        split,
        categories=reader.categories,
        source_files=reader.source_files,
        skipped=reader.skipped,
        command=command,
        maxcount=maxcount or DEFAULT_MAXCOUNT,
        maxsize=maxsize or DEFAULT_MAXSIZE,
        manifest_extra={"images_listed": len(reader)},
        overwrite=overwrite,
    )
