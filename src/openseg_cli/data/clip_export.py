"""openseg shards → open_clip_train's WebDataset input, for training a CLIP on your own captions.

Output folder: `clip-{index:06d}.tar`, one sample per caption (`--captions each`, as CLIP fine-tuning on
COCO does) or per image (`one`: its first caption): `{key}.jpg|png` = the shard's image bytes unchanged,
`{key}.txt` = the caption (UTF-8). `sizes.json` ({tar name: samples}) lies beside the tars, where
open_clip_train's `get_dataset_size` looks for it, so `--train-num-samples` may be left out.
`clip_data.json` says what was written from what (`read_clip_data`, `train_data_pattern`).

Images without a caption are counted and skipped; corrupt samples too (by reason, as every reader does).
Writing goes through `tar_writer.write_tar_shards`: atomic tars, resumable. A rerun whose input shards and
settings are unchanged returns the recorded export without reading the input again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from openseg_cli.atomic import atomic_write_json, remove_stale_temps
from openseg_cli.data.loader import iter_samples
from openseg_cli.data.shards import (
    DEFAULT_MAXCOUNT,
    DEFAULT_MAXSIZE,
    MANIFEST,
    count_samples,
    list_shards,
    read_sizes,
)
from openseg_cli.data.skips import SkipCounter
from openseg_cli.data.tar_writer import intact_prefix, write_tar_shards
from openseg_cli.errors import InputFileError

CLIP_PREFIX = "clip"
CLIP_DATA = "clip_data.json"
CLIP_DATA_FORMAT = "open_clip_train webdataset (jpg|png + txt)"
CaptionMode = Literal["each", "one"]
CAPTION_MODES: tuple[CaptionMode, ...] = ("each", "one")


@dataclass
class _Tally:
    images: int = 0  # input samples read (corrupt ones are in `skips`, not here)
    without_caption: int = 0
    samples: int = 0
    first_without_caption: list[str] = field(default_factory=list)


def _caption_samples(
    samples: Iterator[dict[str, Any]], captions: CaptionMode, tally: _Tally
) -> Iterator[dict[str, Any]]:
    """`iter_samples` dicts → `{"__key__", "jpg"|"png": image bytes, "txt": caption bytes}`.

    Captions are stripped; empty ones do not count. `each`: keys `{key}_{j:03d}` (j = caption index,
    unique because sample keys hold no dots and j no '_'); `one`: the sample's key.
    """
    for sample in samples:
        tally.images += 1
        texts = [c.strip() for c in sample["meta"]["captions"] if c.strip()]
        if not texts:
            tally.without_caption += 1
            if len(tally.first_without_caption) < 3:
                tally.first_without_caption.append(sample["key"])
            continue
        if captions == "one":
            texts = texts[:1]
        for j, text in enumerate(texts):
            key = sample["key"] if captions == "one" else f"{sample['key']}_{j:03d}"
            tally.samples += 1
            yield {"__key__": key, sample["image_ext"]: sample["image"], "txt": text.encode("utf-8")}


def shard_pattern(num_shards: int) -> str:
    """The brace pattern of the first `num_shards` tar names: `clip-{000000..000003}.tar` (webdataset and
    open_clip_train expand it; one shard is `clip-{000000..000000}.tar`)."""
    return f"{CLIP_PREFIX}-{{{0:06d}..{num_shards - 1:06d}}}.tar"


def train_data_pattern(folder: str | Path, record: dict[str, Any]) -> str:
    """open_clip_train's `--train-data` for an export in `folder` (its `clip_data.json` record)."""
    return str(Path(folder) / record["pattern"])


def read_clip_data(folder: str | Path) -> dict[str, Any] | None:
    """The `clip_data.json` of a folder written by `export_clip_data`, or None when there is none.

    Raises InputFileError when it exists but cannot be read.
    """
    path = Path(folder) / CLIP_DATA
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exn:
        raise InputFileError(f"{path}: unreadable ({exn}); delete the folder and export again") from None
    if not isinstance(record, dict) or record.get("format") != CLIP_DATA_FORMAT:
        raise InputFileError(f"{path}: not written by `openseg export clip-data`")
    return record


def count_input_samples(shards: str | Path) -> int:
    """Samples in the input shards (their sizes.json, else the tar headers): the progress bar's total."""
    return sum(count_samples(url) for url in list_shards(shards))


def _fingerprint(urls: list[str]) -> dict[str, list[int | None]]:
    """{shard path: [samples or None, bytes]}: unchanged input ⇔ unchanged fingerprint (cheap, no read)."""
    counts = read_sizes(urls)
    return {str(Path(u).resolve()): [counts.get(u), os.stat(u).st_size] for u in urls}


def _check_out_dir(out_dir: Path, urls: list[str]) -> None:
    if (out_dir / MANIFEST).is_file():
        raise InputFileError(f"--out {out_dir} holds openseg shards ({MANIFEST}); choose another folder")
    if out_dir.resolve() in {Path(u).resolve().parent for u in urls}:
        raise InputFileError(f"--out {out_dir} is a folder of the input shards; choose another folder")


def _up_to_date(out_dir: Path, params: dict[str, Any], source: dict) -> dict[str, Any] | None:
    record = read_clip_data(out_dir)
    if record is None or record.get("params") != params or record.get("source_shards") != source:
        return None
    tars = [{"name": n, "bytes": b} for n, b in record.get("tar_bytes", {}).items()]
    return record if intact_prefix(out_dir, tars) == tars else None


def export_clip_data(
    shards: str | Path,
    out_dir: str | Path,
    *,
    captions: CaptionMode = "each",
    maxcount: int | None = None,
    maxsize: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Write open_clip_train's WebDataset input from openseg `shards` into `out_dir`; return the record
    also written to `out_dir/clip_data.json`:

    `{"format", "params" {source, captions, maxcount, maxsize}, "source", "source_shards",
    "shards" (= sizes.json), "tar_bytes", "pattern" (the tar names as a brace pattern, relative to
    out_dir), "counts" {images, samples, images_without_caption, skipped {reason: n}},
    "examples_without_caption", "created", "up_to_date"}`.

    `progress(1)` per input image. Raises InputFileError for missing or empty input shards, an `out_dir`
    holding openseg shards or input shards, a folder written from other input or settings (unless
    `overwrite`: its tars are replaced), or input without a single captioned image.
    """
    if captions not in CAPTION_MODES:
        raise InputFileError(f"captions must be one of {', '.join(CAPTION_MODES)}, not {captions!r}")
    urls = list_shards(shards)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, urls)
    params = {
        "source": os.path.abspath(str(shards)),
        "captions": captions,
        "maxcount": maxcount or DEFAULT_MAXCOUNT,
        "maxsize": maxsize or DEFAULT_MAXSIZE,
    }
    source = _fingerprint(urls)
    done = None if overwrite else _up_to_date(out_dir, params, source)
    if done is not None:
        return {**done, "up_to_date": True}
    out_dir.mkdir(parents=True, exist_ok=True)
    skips, tally = SkipCounter("clip-data"), _Tally()

    def images() -> Iterator[dict[str, Any]]:
        for sample in iter_samples(shards, skips=skips):
            yield sample
            if progress is not None:
                progress(1)

    stream = _caption_samples(images(), captions, tally)
    sizes = write_tar_shards(stream, out_dir, CLIP_PREFIX, params, encode=dict, overwrite=overwrite)
    if not tally.samples:
        raise InputFileError(
            f"{shards}: no captioned image to export ({tally.images} read, "
            f"{tally.without_caption} without a caption, {skips.total} unreadable)"
        )
    record = {
        "format": CLIP_DATA_FORMAT,
        "params": params,
        "source": str(shards),
        "source_shards": source,
        "shards": sizes,
        "tar_bytes": {name: (out_dir / name).stat().st_size for name in sizes},
        "pattern": shard_pattern(len(sizes)),
        "counts": {
            "images": tally.images,
            "samples": tally.samples,
            "images_without_caption": tally.without_caption,
            "skipped": skips.summary(),
        },
        "examples_without_caption": tally.first_without_caption,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    remove_stale_temps(out_dir, CLIP_DATA)  # left by a killed run
    atomic_write_json(out_dir / CLIP_DATA, record)
    return {**record, "up_to_date": False}
