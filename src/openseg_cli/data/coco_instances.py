"""A user's COCO *instance* JSON (polygons / RLE) → panoptic schema-v1 samples, via pycocotools.

Custom data sets are usually annotated as COCO instances (`images`, `annotations[{id, image_id,
category_id, segmentation, iscrowd, area, bbox}]`, `categories`). A panoptic PNG needs one id per pixel,
but instance masks may overlap, so each image's masks are painted into one id map:
crowd regions first, then the other instances from the largest to the smallest, so a small object lying
on a large one stays visible (the overlap goes to the smaller, usually the occluder). Segment ids are
1..N in that painting order. A segment's `area` and `bbox` are those of its *visible* pixels, which is
what the PNG holds (equal to pycocotools' mask area when nothing overlaps it). A COCO panoptic JSON is
refused with a pointer to `openseg prepare coco`, which reads those as they are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from openseg_cli.data.caption_join import (
    ImageFile,
    SkipTally,
    check_dirs,
    probe_image,
    source_sizes,
    stream_samples,
)
from openseg_cli.data.coco import _require, build_categories, load_json, read_coco_captions
from openseg_cli.data.schema import SCHEMA_VERSION, make_key
from openseg_cli.data.toy import encode_panoptic_png
from openseg_cli.errors import InputFileError


def instance_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO `segmentation` (polygon list, uncompressed or compressed RLE) → bool mask [H, W].

    Raises ValueError for anything else (or an RLE of another size).
    """
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):  # polygons: [[x1, y1, x2, y2, ...], ...]
        polys = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        if not polys:
            raise ValueError("no polygon with 3 points or more")
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        if [int(v) for v in segmentation.get("size", [])] != [height, width]:
            raise ValueError(f"RLE size {segmentation.get('size')} is not the image's [{height}, {width}]")
        counts = segmentation["counts"]
        rle = (
            mask_utils.frPyObjects(segmentation, height, width) if isinstance(counts, list) else segmentation
        )
    else:
        raise ValueError("segmentation is neither polygons nor RLE")
    return mask_utils.decode(rle).astype(bool)


def paint_instances(
    anns: list[dict[str, Any]], height: int, width: int, tally: SkipTally, where: str
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Paint instance masks into one id map [H, W] (int64, 0 = void); return it and the segments.

    Annotations with a bad segmentation, an empty mask, or no visible pixel left after painting are
    counted in `tally` (raised when strict) and get no segment.
    """
    masks = []
    for ann in anns:
        try:
            mask = instance_mask(ann.get("segmentation"), height, width)
        except (ValueError, TypeError, KeyError) as exn:
            tally.skip(f"bad segmentation ({str(exn).split(':')[0]})", f"{where}: annotation {ann.get('id')}")
            continue
        if not mask.any():
            tally.skip("empty instance mask", f"{where}: annotation {ann.get('id')}")
            continue
        masks.append((ann, mask))
    # crowd first (lowest), then large → small: later paints win, so small instances stay visible
    masks.sort(key=lambda am: (not am[0].get("iscrowd", 0), -int(am[1].sum())))
    id_map = np.zeros((height, width), dtype=np.int64)
    for seg_id, (_, mask) in enumerate(masks, 1):
        id_map[mask] = seg_id
    areas = np.bincount(id_map.ravel(), minlength=len(masks) + 1)
    segments = []
    for seg_id, (ann, _) in enumerate(masks, 1):
        if areas[seg_id] == 0:
            tally.skip("instance hidden by overlapping instances", f"{where}: annotation {ann.get('id')}")
            continue
        ys, xs = np.nonzero(id_map == seg_id)
        x0, y0 = int(xs.min()), int(ys.min())
        segments.append({
            "id": seg_id,
            "category_id": int(ann["category_id"]),
            "iscrowd": int(bool(ann.get("iscrowd", 0))),
            "area": int(areas[seg_id]),
            "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1],
        })  # fmt: skip
    return id_map, segments


class CocoInstancesReader:
    """Iterate a COCO instance data set as panoptic schema-v1 samples (image-id order).

    Tallies: `images` (missing / unreadable image, no annotations, image size differs from the JSON),
    `annotations` (bad segmentation, empty mask, hidden), `captions` (empty, for an unlisted image).
    `strict=True` raises InputFileError at the first of any. A malformed JSON or an unknown category id
    always raises.
    """

    def __init__(
        self,
        ann_json: str | Path,
        images_dir: str | Path,
        captions_json: str | Path | None = None,
        *,
        source: str = "custom",
        strict: bool = False,
    ) -> None:
        self.ann_json, self.images_dir = Path(ann_json), Path(images_dir)
        check_dirs([self.images_dir], "image folder")
        self.source = source
        self.images, self.annotations, self.captions = SkipTally(strict), SkipTally(strict), SkipTally(strict)
        data = load_json(self.ann_json, "instances JSON")
        images = _require(data, "images", list, self.ann_json, "instances JSON")
        anns = _require(data, "annotations", list, self.ann_json, "instances JSON")
        if any(isinstance(a, dict) and "segments_info" in a for a in anns[:1]):
            raise InputFileError(
                f"{self.ann_json}: a COCO panoptic JSON; use `openseg prepare coco` with --panoptic-json"
            )
        cats = _require(data, "categories", list, self.ann_json, "instances JSON")
        self.categories = build_categories(cats, self.ann_json)
        self._by_image = self._group(images, anns, {c["id"] for c in self.categories})
        self._images = sorted(images, key=lambda im: int(im["id"]))
        self.captions_seen = 0
        self._captions = None
        files = [self.ann_json]
        if captions_json is not None:
            listed = {int(im["id"]) for im in images}  # checked by _group: unique, non-negative
            self._captions, self.captions_seen = read_coco_captions(
                Path(captions_json), listed, self.captions
            )
            files.append(Path(captions_json))
        self.source_files = source_sizes(files)

    def _group(self, images: list, anns: list, category_ids: set[int]) -> dict[int, list[dict]]:
        try:
            ids = [int(im["id"]) for im in images]
            listed = set(ids)
            if len(listed) != len(ids) or min(ids, default=0) < 0:
                bad = min(ids) if min(ids) < 0 else Counter(ids).most_common(1)[0][0]
                raise InputFileError(
                    f"{self.ann_json}: image id {bad} is negative or listed twice in 'images' (each image "
                    "needs its own non-negative id)"
                )
            by_image: dict[int, list[dict]] = {}
            for ann in anns:
                by_image.setdefault(int(ann["image_id"]), []).append(ann)
                if int(ann["category_id"]) not in category_ids:
                    raise InputFileError(
                        f"{self.ann_json}: annotation {ann.get('id')}: category id {ann['category_id']} "
                        "not in 'categories'"
                    )
        except (KeyError, TypeError, ValueError) as exn:
            raise InputFileError(
                f"{self.ann_json}: image or annotation entry without an id ({exn!r})"
            ) from None
        # annotations are "seen" when their image is read (or here, when no image will ever read them);
        # those of a skipped image are accounted for by that image's skip
        self.annotations_seen = 0
        for image_id in sorted(set(by_image) - listed):
            for ann in by_image.pop(image_id):
                self.annotations_seen += 1
                self.annotations.skip(
                    "annotation for an image not in the JSON", f"{self.ann_json}: {ann.get('id')}"
                )
        return by_image

    def __len__(self) -> int:
        return len(self._images)

    @property
    def skipped(self) -> dict[str, int]:
        """Images skipped, by reason (live: final once the samples are exhausted)."""
        return self.images.counts

    def _sample(self, image: dict[str, Any]) -> dict[str, Any] | None:
        image_id, file_name = int(image["id"]), str(image.get("file_name", ""))
        path = self.images_dir / file_name
        found = probe_image(path)
        if not isinstance(found, ImageFile):
            return self.images.skip(found, str(path))
        listed = (_int_or_none(image.get("width")), _int_or_none(image.get("height")))
        if (found.width, found.height) != listed:
            size = f"{found.width}x{found.height}, JSON says {image.get('width')}x{image.get('height')}"
            return self.images.skip("image size differs from the JSON", f"{path} ({size})")
        anns = self._by_image.get(image_id, [])
        if not anns:
            return self.images.skip("no annotations", f"{self.ann_json}: image {image_id}")
        captions = self._captions.get(image_id, []) if self._captions is not None else []
        self.annotations_seen += len(anns)
        id_map, segments = paint_instances(anns, found.height, found.width, self.annotations, str(path))
        meta = {
            "schema": SCHEMA_VERSION, "source": self.source, "image_id": image_id, "file_name": file_name,
            "width": found.width, "height": found.height, "captions": captions, "segments": segments,
            "pseudo": False,
        }  # fmt: skip
        return {
            "__key__": make_key(image_id),
            f"image.{found.ext}": found.data,
            "panoptic.png": encode_panoptic_png(id_map),
            "meta.json": meta,
        }

    def iter_samples(self, progress: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
        """Yield samples; `progress(1)` per listed image, written or skipped."""
        return stream_samples(self._images, self._sample, progress)

    def manifest_extra(self) -> dict[str, Any]:
        extra = {
            "images_listed": len(self),
            "skip_examples": self.images.examples,
            "annotations": self.annotations.summary(self.annotations_seen),
        }
        if self._captions is not None:
            extra["captions"] = self.captions.summary(self.captions_seen)
        return extra


def _int_or_none(value: Any) -> int | None:
    """A JSON width/height as an int; None for a missing or malformed one (then it cannot match)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
