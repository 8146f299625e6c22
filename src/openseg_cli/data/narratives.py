"""Localized Narratives (JSONL) joined to image folders → caption-only schema-v1 samples (no masks).

A record (one line): `{"dataset_id", "image_id", "annotator_id", "caption", "timed_caption", "traces",
"voice_recording"}`; the "captions only" downloads drop `timed_caption`/`traces`/`voice_recording`, and
only `dataset_id`, `image_id` and `caption` are read here. `image_id` is a string in every part.

Image file names, per part (read from google/localized-narratives' loader and the HuggingFace `pmd`
loaders, which join LN to the images of each data set):
- COCO (`dataset_id` "mscoco_train2017" / "mscoco_val2017", image_id "137576"): `{id:012d}.jpg`
  in COCO's `train2017/` / `val2017/`;
- Flickr30k (image_id "1000092795"): `{image_id}.jpg` in `flickr30k-images/`;
- ADE20K (image_id "ADE_train_00000001"): `{image_id}.jpg` in `ADEChallengeData2016/images/{training,
  validation}/`; the official loader recognises the part by "ADE" in `dataset_id`;
- Open Images (image_id = 16 hex digits, e.g. "0a0b1c2d3e4f5a6b"): `{image_id}.jpg`.
Each image is looked for in every `--images` folder, in order (`{image_id}.png` is tried too).

Several narratives of one image (several annotators) become that image's captions. They are not
guaranteed to be adjacent in the files, so the join goes through `CaptionJoin` (an on-disk sort-merge):
memory stays flat however many records there are. Counting: records (lines) and images separately,
each with `seen = used + skipped` (see `write_narrative_shards`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from openseg_cli.data.caption_join import (
    CaptionJoin,
    ImageFile,
    SkipTally,
    check_dirs,
    check_files,
    probe_image,
    source_sizes,
    stream_samples,
)
from openseg_cli.data.schema import SCHEMA_VERSION, make_key

EXCLUDED_ADE20K = "ADE20K record excluded (--exclude-ade20k)"


def is_ade20k(dataset_id: str) -> bool:
    """True for LN's ADE20K part (the official loader's test: "ADE" in dataset_id)."""
    return "ADE" in dataset_id or "ade20k" in dataset_id.lower()


def _is_coco(dataset_id: str, image_id: str) -> bool:
    return "coco" in dataset_id.lower() and image_id.isdigit()


def image_file_names(dataset_id: str, image_id: str) -> list[str]:
    """File names to look for, most likely first (see the module docstring for the conventions)."""
    if _is_coco(dataset_id, image_id):
        return [f"{int(image_id):012d}.jpg", f"{image_id}.jpg"]
    return [f"{image_id}.jpg", f"{image_id}.png"]


def parse_record(line: bytes) -> tuple[str, str, str] | str:
    """One JSONL line → `(dataset_id, image_id, caption)`, or the reason it cannot be used."""
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return "invalid JSON line"
    if not isinstance(rec, dict):
        return "invalid JSON line"
    dataset_id, image_id, caption = rec.get("dataset_id"), rec.get("image_id"), rec.get("caption")
    if not isinstance(dataset_id, str) or not dataset_id.strip():
        return "record without dataset_id"
    if not isinstance(image_id, (str, int)) or isinstance(image_id, bool) or not str(image_id).strip():
        return "record without image_id"
    if not isinstance(caption, str):
        return "record without caption"
    caption = " ".join(caption.split())  # spoken transcripts carry stray spaces and newlines
    if not caption:
        return "empty caption"
    return dataset_id.strip(), str(image_id).strip(), caption


class NarrativesReader:
    """Index the JSONL files (one streaming pass), then yield one caption-only sample per image.

    `records` tallies lines (invalid JSON, missing fields, empty caption, ADE20K excluded), `images`
    tallies images (missing image, unreadable image, unsupported image format). `strict=True` turns the
    first of any of these (except the requested ADE20K exclusion) into an InputFileError. Call `close()`
    (or use `write_narrative_shards`) to delete the temporary index.
    """

    def __init__(
        self,
        jsonl_files: Sequence[str | Path],
        image_dirs: Sequence[str | Path],
        *,
        exclude_ade20k: bool = False,
        strict: bool = False,
        source: str = "narratives",
        work_dir: str | Path | None = None,
    ) -> None:
        self.files, self.image_dirs = [Path(p) for p in jsonl_files], [Path(d) for d in image_dirs]
        check_files(self.files, "narratives JSONL")
        check_dirs(self.image_dirs, "image folder")
        self.source, self.exclude_ade20k = source, exclude_ade20k
        self.records, self.images = SkipTally(strict), SkipTally(strict)
        self.records_seen = self.captions_written = 0
        self._join = CaptionJoin(work_dir)
        try:
            for path in self.files:
                self._index(path)
            self._num_images = self._join.count_images()
        except BaseException:
            self.close()
            raise

    def _index(self, path: Path) -> None:
        with open(path, "rb") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue  # blank lines (a trailing newline) are not records
                self.records_seen += 1
                parsed = parse_record(line)
                if isinstance(parsed, str):
                    self.records.skip(parsed, f"{path}:{lineno}")
                    continue
                dataset_id, image_id, caption = parsed
                if self.exclude_ade20k and is_ade20k(dataset_id):
                    self.records.counts[EXCLUDED_ADE20K] = self.records.counts.get(EXCLUDED_ADE20K, 0) + 1
                    continue
                self._join.add(dataset_id, image_id, caption)

    categories: list[dict[str, Any]] = []  # caption-only: no classes

    @property
    def skipped(self) -> dict[str, int]:
        """Images skipped, by reason (live: final once the samples are exhausted)."""
        return self.images.counts

    @property
    def source_files(self) -> dict[str, int]:
        return source_sizes(self.files)

    def __len__(self) -> int:
        """Distinct images named by the usable records (samples written + images skipped)."""
        return self._num_images

    def _find(self, dataset_id: str, image_id: str) -> Path | None:
        for name in image_file_names(dataset_id, image_id):
            for folder in self.image_dirs:
                if (folder / name).is_file():
                    return folder / name
        return None

    def _sample(self, dataset_id: str, image_id: str, captions: list[str]) -> dict[str, Any] | None:
        where = f"{dataset_id}/{image_id}"
        path = self._find(dataset_id, image_id)
        found = probe_image(path) if path is not None else "missing image"
        if not isinstance(found, ImageFile):
            names = image_file_names(dataset_id, image_id)[0]
            return self.images.skip(found, f"{path or names + ' in the --images folders'} ({where})")
        self.captions_written += len(captions)
        meta = {
            "schema": SCHEMA_VERSION,
            "source": self.source,
            "dataset_id": dataset_id,
            "image_id": int(image_id) if _is_coco(dataset_id, image_id) else image_id,
            "file_name": path.name,
            "width": found.width,
            "height": found.height,
            "captions": captions,
            "segments": [],
            "pseudo": False,
        }
        # dots and slashes replaced first: make_key would take `p.1` for a file name and drop `.1`
        key = make_key(re.sub(r"[./]", "_", f"{dataset_id}_{image_id}"))
        return {"__key__": key, f"image.{found.ext}": found.data, "meta.json": meta}

    def iter_samples(self, progress: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
        """Samples sorted by (dataset_id, image_id); `progress(1)` per image, written or skipped."""
        return stream_samples(self._join.groups(), lambda group: self._sample(*group), progress)

    def manifest_extra(self) -> dict[str, Any]:
        return {
            "images_listed": len(self),
            "image_dirs": [str(d) for d in self.image_dirs],
            "exclude_ade20k": self.exclude_ade20k,
            "records": self.records.summary(self.records_seen),
            "captions_written": self.captions_written,
            "skip_examples": self.images.examples,
        }

    def close(self) -> None:
        self._join.close()
