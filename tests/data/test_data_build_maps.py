"""`build_maps` (the loader's id-map → segment/semantic maps step) against a slow per-segment reference."""

from __future__ import annotations

import numpy as np
import pytest

from openseg_cli.data.decode import build_maps


def reference_maps(ids, segments, class_of):
    """Straight from the documented rules, one boolean mask per listed segment."""
    segment_map = np.zeros(ids.shape, np.int64)
    semantic = np.full(ids.shape, -1, np.int64)
    classes = []
    for seg in segments:
        mask = ids == seg["id"]
        if seg["id"] == 0 or not mask.any():
            continue
        cls = class_of.get(seg["category_id"], -1)
        semantic[mask] = cls
        if not seg.get("iscrowd", 0):
            classes.append(cls)
            segment_map[mask] = len(classes)
    return segment_map, np.asarray(classes, np.int64), semantic


@pytest.mark.parametrize("seed", range(20))
def test_build_maps_matches_the_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    palette = rng.choice(256**3 - 1, size=8, replace=False) + 1  # painted ids (some unlisted below)
    ids = palette[rng.integers(0, 8, size=(17, 23))]
    ids[rng.random(ids.shape) < 0.1] = 0  # void pixels
    listed = list(rng.permutation(palette)[:6]) + [int(rng.integers(1, 256**3))]  # + one never painted
    segments = [
        {"id": int(i), "category_id": int(rng.choice([1, 2, 3, 99])), "iscrowd": int(rng.random() < 0.25)}
        for i in listed
    ]
    class_of = {1: 0, 2: 1, 3: 2}  # category 99 is unknown → class -1
    got = build_maps(ids, segments, class_of)
    want = reference_maps(ids, segments, class_of)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)


def test_no_listed_segment_gives_all_void() -> None:
    seg_map, classes, semantic = build_maps(np.full((3, 4), 7), [], {})
    assert not seg_map.any() and classes.size == 0 and (semantic == -1).all()
