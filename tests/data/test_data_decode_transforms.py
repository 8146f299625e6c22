"""Known-answer tests for panoptic decoding, map building and the joint transforms."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from openseg_cli.data.decode import (
    CorruptSampleError,
    build_maps,
    decode_image,
    decode_panoptic,
    decode_sample,
)
from openseg_cli.data.schema import make_key, normalise_meta
from openseg_cli.data.toy import encode_panoptic_png
from openseg_cli.data.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    eval_transform,
    fit_size,
    renumber,
    train_transform,
)


def _png(ids: np.ndarray) -> bytes:
    return encode_panoptic_png(ids)


def test_panoptic_ids_use_all_three_channels() -> None:
    ids = np.array([[0, 1, 256], [65536, 70000, 16777215]], dtype=np.int64)
    assert np.array_equal(decode_panoptic(_png(ids), "t"), ids)


def test_build_maps_known_answer() -> None:
    # ids: 10 = thing (class 5), 20 = crowd (class 5), 30 = stuff (class 9), 40 = unlisted, 0 = void
    ids = np.array([[10, 10, 20], [30, 40, 0]])
    segments = [
        {"id": 10, "category_id": 1, "iscrowd": 0},
        {"id": 99, "category_id": 1, "iscrowd": 0},  # listed, no pixels: dropped
        {"id": 20, "category_id": 1, "iscrowd": 1},
        {"id": 30, "category_id": 100, "iscrowd": 0},
    ]
    seg, classes, sem = build_maps(ids, segments, {1: 5, 100: 9})
    assert seg.tolist() == [[1, 1, 0], [2, 0, 0]]
    assert classes.tolist() == [5, 9]
    assert sem.tolist() == [[5, 5, 5], [9, -1, -1]]


def _sample(image: np.ndarray, ids: np.ndarray | None, fmt: str = "JPEG") -> dict:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt)
    h, w = image.shape[:2]
    meta = {"source": "t", "image_id": 1, "file_name": "x.jpg", "width": w, "height": h, "captions": ["a"]}
    meta["segments"] = [{"id": 7, "category_id": 3, "iscrowd": 0, "area": 1, "bbox": [0, 0, 1, 1]}]
    sample = {"__key__": "k", "image.jpg": buf.getvalue(), "meta.json": meta}
    if ids is not None:
        sample["panoptic.png"] = _png(ids)
    return sample


def test_decode_sample_and_caption_only() -> None:
    image = np.full((6, 8, 3), 120, np.uint8)
    ids = np.zeros((6, 8), np.int64)
    ids[:3] = 7
    d = decode_sample(_sample(image, ids), {3: 0})
    assert d.image.shape == (6, 8, 3) and d.segment_map.dtype == torch.long
    assert d.segment_map.sum() == 24 and d.segment_classes.tolist() == [0]
    d = decode_sample(_sample(image, None), {3: 0})  # caption-only data: no masks
    assert d.segment_classes.numel() == 0 and (d.semantic == -1).all()


def test_decode_failures_are_corrupt_sample_errors() -> None:
    image = np.zeros((6, 8, 3), np.uint8)
    bad = _sample(image, np.zeros((6, 8), np.int64))
    bad["image.jpg"] = bad["image.jpg"][:40]  # truncated JPEG
    with pytest.raises(CorruptSampleError, match="unreadable image"):
        decode_sample(bad, {})
    with pytest.raises(CorruptSampleError, match="panoptic map is 9x6"):
        decode_sample(_sample(image, np.zeros((6, 9), np.int64)), {})
    with pytest.raises(CorruptSampleError, match="incomplete sample"):
        decode_sample({"__key__": "k", "meta.json": b"{}"}, {})
    with pytest.raises(CorruptSampleError, match="bad meta.json"):
        decode_sample({**_sample(image, None), "meta.json": b"{not json"}, {})


def test_exif_rotation_applied_unless_annotation_is_unrotated() -> None:
    img = Image.fromarray(np.zeros((4, 10, 3), np.uint8))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif)
    assert decode_image(buf.getvalue(), "t").shape == (10, 4, 3)
    assert decode_image(buf.getvalue(), "t", expect_hw=(4, 10)).shape == (4, 10, 3)


def test_keys_and_meta_rules() -> None:
    assert make_key(139) == "000000000139"
    assert make_key("images/foo.bar-1.jpg") == "foo_bar-1"
    with pytest.raises(ValueError, match="missing key"):
        normalise_meta({"source": "x"})
    with pytest.raises(ValueError, match="schema 2"):
        normalise_meta({"schema": 2})


def test_renumber_drops_empty_segments() -> None:
    seg = torch.tensor([[0, 3, 3], [1, 1, 0]])
    new, classes = renumber(seg, torch.tensor([10, 11, 12]))
    assert new.tolist() == [[0, 2, 2], [1, 1, 0]] and classes.tolist() == [10, 12]


def test_train_transform_identity_at_scale_one() -> None:
    image = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8)
    seg = torch.zeros(32, 32, dtype=torch.long)
    seg[4:10, 4:10] = 2
    img, out, classes = train_transform(image, seg, torch.tensor([5, 6]), 32, (1.0, 1.0), hflip=False)
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    expected = (image.permute(2, 0, 1).float() / 255 - mean) / std
    assert torch.allclose(img, expected, atol=1e-5)
    assert classes.tolist() == [6] and out.max() == 1 and int((out == 1).sum()) == 36


def test_train_transform_random_crops_stay_consistent() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.zeros(40, 60, 3, dtype=torch.uint8)
    seg = torch.zeros(40, 60, dtype=torch.long)
    for j in range(1, 7):  # six vertical stripes, image colour = stripe id * 40
        seg[:, (j - 1) * 10 : j * 10] = j
        image[:, (j - 1) * 10 : j * 10] = j * 40
    for _ in range(20):
        img, out, classes = train_transform(image, seg, torch.arange(6) + 100, 48, (0.5, 2.0), True, gen)
        assert img.shape == (3, 48, 48) and out.shape == (48, 48) and img.dtype == torch.float32
        m = classes.numel()
        assert set(out.unique().tolist()) - {0} == set(range(1, m + 1))  # every id 1..M present
        red = img[0] * CLIP_STD[0] + CLIP_MEAN[0]
        inside = out > 0
        # pixel colour identifies the stripe: the map moved with the image (away from stripe edges)
        stripe = (red * 255 / 40).round().long()
        agree = (classes[(out - 1).clamp(min=0)] - 99 == stripe)[inside].float().mean()
        assert agree > 0.9


def test_eval_transform_fits_long_side_and_pads() -> None:
    image = torch.full((50, 100, 3), 200, dtype=torch.uint8)
    seg = torch.ones(50, 100, dtype=torch.long)
    sem = torch.full((50, 100), 4, dtype=torch.long)
    img, out, classes, sem_out = eval_transform(image, seg, torch.tensor([4]), sem, 64)
    assert fit_size(50, 100, 64) == (32, 64)
    assert img.shape == (3, 64, 64) and (sem_out[:32] == 4).all() and (sem_out[32:] == -1).all()
    assert (out[32:] == 0).all() and (img[:, 32:] == 0).all() and classes.tolist() == [4]
