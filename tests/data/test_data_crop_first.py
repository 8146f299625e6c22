"""Crop first (train_crop.py, transforms.plan_crop): the same training crops as resizing the whole image.

The reference is the implementation before crop-first, kept here verbatim: build the maps of the whole
image (`decode_sample`), resize image and map to the jittered size, crop, normalise, pad, flip, renumber.
For the same seed the new path must give the same segment map, classes and flip, and the same image.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from openseg_cli.data.decode import CorruptSampleError, UnlistedIdsError, decode_sample
from openseg_cli.data.loader import iter_samples
from openseg_cli.data.toy import encode_panoptic_png
from openseg_cli.data.train_crop import crop_segments, decode_train_inputs
from openseg_cli.data.transforms import (
    crop_image,
    nearest_indices,
    normalise,
    pad_to,
    plan_crop,
    renumber,
    resize_image,
    resize_map,
    train_transform,
)


def old_train_transform(image, segment_map, segment_classes, crop_size, scale_range, hflip, generator):
    """train_transform as it was before crop-first: the reference."""
    h, w = segment_map.shape
    lo, hi = scale_range
    jitter = lo + (hi - lo) * float(torch.rand((), generator=generator))
    scale = crop_size / max(h, w) * jitter
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    img = resize_image(image.permute(2, 0, 1), size)
    seg = resize_map(segment_map, size)
    y0 = int(torch.randint(0, max(size[0] - crop_size, 0) + 1, (), generator=generator))
    x0 = int(torch.randint(0, max(size[1] - crop_size, 0) + 1, (), generator=generator))
    img = img[:, y0 : y0 + crop_size, x0 : x0 + crop_size]
    seg = seg[y0 : y0 + crop_size, x0 : x0 + crop_size]
    img = pad_to(normalise(img.float()), crop_size, 0.0)
    seg = pad_to(seg, crop_size, 0)
    if hflip and float(torch.rand((), generator=generator)) < 0.5:
        img, seg = img.flip(-1), seg.flip(-1)
    seg, classes = renumber(seg, segment_classes)
    return img.contiguous(), seg.contiguous(), classes


def _blocks(h: int, w: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """[h, w] map of n random rectangles painted over each other (ids 1..n), void (0) elsewhere."""
    out = np.zeros((h, w), np.int64)
    for j in range(1, n + 1):
        y, x = rng.integers(0, h), rng.integers(0, w)
        out[y : y + rng.integers(1, h + 1), x : x + rng.integers(1, w + 1)] = j
    return out


def _sample(image: np.ndarray, ids: np.ndarray | None, segments: list[dict]) -> dict:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")  # lossless: the same pixels for both paths
    h, w = image.shape[:2]
    meta = {"source": "t", "image_id": 1, "file_name": "x.png", "width": w, "height": h, "captions": ["a"]}
    meta["segments"] = segments
    sample = {"__key__": "k", "image.png": buf.getvalue(), "meta.json": json.dumps(meta).encode()}
    if ids is not None:
        sample["panoptic.png"] = encode_panoptic_png(ids)
    return sample


def _segments(ids_used: list[int], rng: np.random.Generator) -> list[dict]:
    """Meta segments for the given PNG ids: some crowd, one unknown category, one listed but unpainted."""
    segs = [
        {"id": int(i), "category_id": int(rng.integers(1, 5)), "iscrowd": int(rng.random() < 0.2)}
        for i in ids_used
    ]
    segs.append({"id": 999_999, "category_id": 2, "iscrowd": 0})  # never painted
    if segs:
        segs[0]["category_id"] = 77  # not in class_of: class -1
    for seg in segs:
        seg.update(area=1, bbox=[0, 0, 1, 1])
    rng.shuffle(segs)  # meta order, not id order, numbers the segments
    return segs


CLASS_OF = {1: 0, 2: 1, 3: 2, 4: 3}


def _compare(sample: dict, crop: int, scale_range: tuple[float, float], seed: int) -> bool:
    """Old path and new path on one sample with one seed; asserts equality, returns the flip drawn."""
    d = decode_sample(sample, CLASS_OF)
    ref_gen = torch.Generator().manual_seed(seed)
    ref_img, ref_seg, ref_classes = old_train_transform(
        d.image, d.segment_map, d.segment_classes, crop, scale_range, True, ref_gen
    )
    t = decode_train_inputs(sample)
    plan = plan_crop(*t.image.shape[:2], crop, scale_range, True, torch.Generator().manual_seed(seed))
    seg, classes = crop_segments(t.panoptic, t.meta["segments"], CLASS_OF, plan)
    img = crop_image(t.image, plan)
    assert torch.equal(seg, ref_seg) and torch.equal(classes, ref_classes), (seed, plan)
    assert img.shape == ref_img.shape and torch.equal(img, ref_img), (seed, plan)
    assert seg.dtype == torch.long and img.dtype == torch.float32
    return plan.flip


@pytest.mark.parametrize("crop", [16, 33, 48])
def test_labels_and_image_equal_the_whole_image_path(crop: int) -> None:
    rng = np.random.default_rng(crop)
    flips = set()
    for seed in range(40):
        h, w = int(rng.integers(7, 70)), int(rng.integers(7, 70))  # odd and even, smaller and larger
        ids = _blocks(h, w, int(rng.integers(0, 7)), rng) * 1000 + (_blocks(h, w, 2, rng) > 0)
        ids[ids == 1] = 0  # ids like 1000, 2001: several of them, and void
        used = sorted({int(i) for i in np.unique(ids)} - {0})
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        sample = _sample(image, ids, _segments(used, rng))
        # s < 1 (padding), s > 1 (crops), exactly 1
        for scale_range in [(0.3, 2.5), (1.0, 1.0), (2.0, 3.0)]:
            flips.add(_compare(sample, crop, scale_range, seed))
    assert flips == {True, False}


def test_caption_only_and_all_void_samples() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)
    for seed in range(10):
        _compare(_sample(image, None, []), 16, (0.5, 2.0), seed)  # no panoptic PNG: all void, M = 0
        _compare(_sample(image, np.zeros((21, 30), np.int64), []), 16, (0.5, 2.0), seed)


def test_real_toy_samples_equal_the_whole_image_path(toy_shards) -> None:
    raw = []
    for s in iter_samples(toy_shards["train"]):
        raw.append({"__key__": s["key"], "image.jpg": s["image"], "meta.json": s["meta"]})
        raw[-1]["panoptic.png"] = s["panoptic"]
    assert len(raw) >= 20
    for seed, sample in enumerate(raw):
        _compare(sample, 64, (0.5, 2.0), seed)
        _compare(sample, 40, (0.5, 2.0), seed + 1000)


def test_unlisted_ids_give_the_same_error_on_the_whole_png() -> None:
    image = np.zeros((12, 10, 3), np.uint8)
    ids = np.zeros((12, 10), np.int64)
    ids[:2, :3] = 5  # listed
    ids[10:, 8:] = 7  # not listed, in a corner a crop may never see: still an error (4 pixels)
    segs = [{"id": 5, "category_id": 1, "iscrowd": 0, "area": 1, "bbox": [0, 0, 1, 1]}]
    sample = _sample(image, ids, segs)
    with pytest.raises(UnlistedIdsError) as old:
        decode_sample(sample, CLASS_OF)
    with pytest.raises(UnlistedIdsError) as new:
        decode_train_inputs(sample)
    assert str(new.value) == str(old.value) and "(7; 4 pixels)" in str(new.value)
    many = ids.copy()
    many[5, :] = np.arange(100, 110)  # more colours than listed ids: PIL's colour count gives up
    with pytest.raises(UnlistedIdsError) as old:
        decode_sample(_sample(image, many, segs), CLASS_OF)
    with pytest.raises(UnlistedIdsError) as new:
        decode_train_inputs(_sample(image, many, segs))
    assert str(new.value) == str(old.value) and "(7, 100, 101, 102, 103 ...; 14 pixels)" in str(new.value)


def test_corrupt_samples_fail_as_before() -> None:
    image = np.zeros((6, 8, 3), np.uint8)
    with pytest.raises(CorruptSampleError, match="panoptic map is 9x6"):
        decode_train_inputs(_sample(image, np.zeros((6, 9), np.int64), []))
    bad = _sample(image, np.zeros((6, 8), np.int64), [])
    bad["panoptic.png"] = b"not a png"
    with pytest.raises(CorruptSampleError, match="unreadable panoptic PNG"):
        decode_train_inputs(bad)
    with pytest.raises(CorruptSampleError, match="incomplete sample"):
        decode_train_inputs({"__key__": "k", "meta.json": b"{}"})


def test_nearest_indices_are_what_resize_map_picks() -> None:
    for src, dst in [(10, 25), (25, 10), (7, 7), (640, 1279), (333, 100)]:
        line = torch.arange(src)[None]  # [1, src]: resize_map on a row of its own indices
        picked = resize_map(line, (1, dst))[0]
        assert torch.equal(nearest_indices(src, dst, 0, dst), picked)
        assert torch.equal(nearest_indices(src, dst, 3, 4), picked[3:7])


def test_train_transform_keeps_its_contract_and_draws() -> None:
    """The old-signature `train_transform` (used outside the loader) equals the reference too."""
    rng = np.random.default_rng(5)
    for seed in range(30):
        h, w = int(rng.integers(5, 60)), int(rng.integers(5, 60))
        image = torch.from_numpy(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        seg = torch.from_numpy(_blocks(h, w, 5, rng))
        classes = torch.arange(5) + 10
        new = train_transform(image, seg, classes, 24, (0.4, 2.2), True, torch.Generator().manual_seed(seed))
        ref = old_train_transform(
            image, seg, classes, 24, (0.4, 2.2), True, torch.Generator().manual_seed(seed)
        )
        assert all(torch.equal(a, b) for a, b in zip(new, ref, strict=True)), seed


def test_train_samples_stage_equals_the_old_stage(toy_shards) -> None:
    """The loader's per-sample stage (seeded per rank/worker/epoch) gives what the old stage gave."""
    import webdataset as wds

    from openseg_cli.config.schema import DataConfig
    from openseg_cli.data.decode import class_lookup
    from openseg_cli.data.loader import _TrainSamples
    from openseg_cli.data.shards import list_shards, read_manifest
    from openseg_cli.data.skips import SkipCounter, mix_seed

    cfg = DataConfig(crop_size=40, workers=0, batch_size=4)
    class_of = class_lookup(read_manifest(toy_shards["train"])["categories"])
    raw = list(
        wds.DataPipeline(wds.SimpleShardList(list_shards(toy_shards["train"])), wds.tarfile_to_samples())
    )
    stage = _TrainSamples(cfg, class_of, seed=7, rank=1, skips=SkipCounter("t"), need_words=False)
    got = list(stage(iter(raw)))
    gen = torch.Generator().manual_seed(mix_seed(7, 1, 0, 0, 3))  # seed, rank, worker 0, epoch 0, stream 3
    assert len(got) == len(raw)
    for out, sample in zip(got, raw, strict=True):
        d = decode_sample(sample, class_of)
        img, seg, classes = old_train_transform(
            d.image, d.segment_map, d.segment_classes, 40, tuple(cfg.scale_range), cfg.hflip, gen
        )
        assert out["key"] == d.key and torch.equal(out["segment_map"], seg)
        assert torch.equal(out["segment_classes"], classes) and torch.equal(out["image"], img)
