"""Sample schema v1: the one place that says what a shard sample contains.

A sample in a shard is a group of tar members sharing one key (no dots, see `make_key`):

- `KEY.image.jpg` or `KEY.image.png`: the original image bytes, never re-encoded;
- `KEY.panoptic.png`: the original COCO panoptic PNG (id = R + 256*G + 256^2*B, 0 = void),
  absent for caption-only data;
- `KEY.meta.json`: `{"schema": 1, "source", "image_id", "file_name", "width", "height",
  "captions": [str], "segments": [{"id", "category_id", "iscrowd", "area", "bbox"}], "pseudo": bool}`
  plus the optional `"words": [[str]]` (one word list per caption) written by pseudo-labelling, and the
  optional `"dataset_id"` (Localized Narratives part, e.g. "mscoco_train2017") of `prepare narratives`.
  Caption-only sources (`prepare narratives`, `prepare folder`) have no `panoptic.png` and
  `segments = []`; their `image_id` may be a string (Open Images, ADE20K, file names).

`category_id` is the dataset's own id (COCO ids have gaps); the contiguous class index lives in the
manifest (`manifest.json["categories"][i]["index"]`). Pseudo-label segments use `category_id = -1`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from openseg_cli.errors import InputFileError

SCHEMA_VERSION = 1

IMAGE_EXTENSIONS = ("jpg", "png")  # the only image members a shard may hold
IMAGE_MEMBERS = tuple(f"image.{ext}" for ext in IMAGE_EXTENSIONS)
PANOPTIC_MEMBER = "panoptic.png"
META_MEMBER = "meta.json"

UNKNOWN_CATEGORY = -1  # pseudo-label segments have no class

_KEY_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_META_REQUIRED = ("source", "image_id", "file_name", "width", "height", "captions")


def make_key(image_id: int | str) -> str:
    """Sample key for an image id: `f"{id:012d}"` for ints (COCO style), a sanitised stem otherwise.

    Keys never contain dots or slashes: webdataset splits member names at the first dot of the base
    name, so `a.b.image.jpg` would become key `a` with member `b.image.jpg`.
    """
    if isinstance(image_id, int) and not isinstance(image_id, bool):
        if image_id < 0:
            raise ValueError(f"negative image id {image_id}")
        return f"{image_id:012d}"
    stem = str(image_id).rsplit("/", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    key = _KEY_BAD_CHARS.sub("_", stem)
    if not key:
        raise ValueError(f"cannot make a sample key from {image_id!r}")
    return key


def check_key(key: str) -> str:
    """Return `key` if it is a valid sample key, else raise ValueError saying why."""
    if not key or _KEY_BAD_CHARS.search(key):
        raise ValueError(f"bad sample key {key!r}: use only letters, digits, '_' and '-' (no dots)")
    return key


def image_member(sample: Mapping[str, Any]) -> str | None:
    """The name of the image member present in a sample (`image.jpg` / `image.png`), or None."""
    for name in IMAGE_MEMBERS:
        if name in sample:
            return name
    return None


def _normalise_segment(seg: Mapping[str, Any], where: str) -> dict[str, Any]:
    try:
        bbox = [int(round(float(v))) for v in seg.get("bbox", [0, 0, 0, 0])]
        out = {
            "id": int(seg["id"]),
            "category_id": int(seg.get("category_id", UNKNOWN_CATEGORY)),
            "iscrowd": int(bool(seg.get("iscrowd", 0))),
            "area": int(seg.get("area", 0)),
            "bbox": bbox,
        }
    except (KeyError, TypeError, ValueError) as exn:
        raise ValueError(f"{where}: bad segment {dict(seg)!r} ({exn!r})") from None
    if out["id"] <= 0 or out["id"] >= 256**3:
        raise ValueError(f"{where}: segment id {out['id']} outside 1..2^24-1")
    if len(bbox) != 4:
        raise ValueError(f"{where}: bbox must have 4 numbers, got {bbox}")
    return out


def normalise_meta(meta: Mapping[str, Any], where: str = "meta.json") -> dict[str, Any]:
    """Validate a meta dict against schema v1 and return a normalised copy.

    Fills defaults (`schema`, `segments=[]`, `pseudo=False`), casts numbers to int, checks that segment
    ids are unique and that `words` (if any) is a list of word lists.
    Raises ValueError (message starts with `where`) for a missing key, a wrong type or a newer schema.
    """
    if not isinstance(meta, Mapping):
        raise ValueError(f"{where}: meta must be a JSON object, got {type(meta).__name__}")
    version = meta.get("schema", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ValueError(f"{where}: schema {version!r}, this openseg reads schema {SCHEMA_VERSION}")
    missing = [k for k in _META_REQUIRED if k not in meta]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    captions = meta["captions"]
    if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        raise ValueError(f"{where}: 'captions' must be a list of strings")
    segments = [_normalise_segment(s, where) for s in meta.get("segments", [])]
    ids = [s["id"] for s in segments]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{where}: duplicate segment ids")
    out = dict(meta)  # keep extra keys (forward compatible within v1)
    out.update(
        schema=SCHEMA_VERSION,
        source=str(meta["source"]),
        file_name=str(meta["file_name"]),
        width=int(meta["width"]),
        height=int(meta["height"]),
        captions=list(captions),
        segments=segments,
        pseudo=bool(meta.get("pseudo", False)),
    )
    if "words" in meta:
        out["words"] = _normalise_words(meta["words"], where)
    return out


def _normalise_words(words: Any, where: str) -> list[list[str]]:
    """Words are one list per caption; a flat list of strings is read as one caption's words."""
    if isinstance(words, list) and all(isinstance(w, str) for w in words):
        return [list(words)] if words else []
    if isinstance(words, list) and all(
        isinstance(ws, list) and all(isinstance(w, str) for w in ws) for ws in words
    ):
        return [list(ws) for ws in words]
    raise ValueError(f"{where}: 'words' must be a list of word lists")


def validate_sample(sample: Mapping[str, Any]) -> dict[str, Any]:
    """Check a sample dict before writing; return it with `meta.json` normalised (still a dict).

    A sample is `{"__key__", "image.jpg"|"image.png": bytes, ["panoptic.png": bytes], "meta.json": dict}`.
    Raises InputFileError naming the key for a bad key, a missing image or a bad meta.
    """
    key = str(sample.get("__key__", ""))
    try:
        check_key(key)
        name = image_member(sample)
        if name is None:
            raise ValueError(f"sample {key}: no image member ({' or '.join(IMAGE_MEMBERS)})")
        meta = normalise_meta(sample.get(META_MEMBER, None), where=f"sample {key}")
    except ValueError as exn:
        raise InputFileError(str(exn)) from None
    out = {"__key__": key, name: bytes(sample[name]), META_MEMBER: meta}
    if sample.get(PANOPTIC_MEMBER) is not None:
        out[PANOPTIC_MEMBER] = bytes(sample[PANOPTIC_MEMBER])
    return out
