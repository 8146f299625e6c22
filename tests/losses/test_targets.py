"""Soft mask targets from segment-id maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from openseg_cli.losses import masks_from_segment_map, masks_from_segment_maps


def test_area_downsampled_one_hot_by_hand():
    segment_map = torch.tensor(
        [
            [1, 1, 2, 2],
            [1, 1, 2, 0],
            [0, 0, 3, 3],
            [4, 0, 3, 3],  # id 4 > M: treated as void
        ]
    )
    masks = masks_from_segment_map(segment_map, 3, (2, 2))
    assert masks.shape == (3, 2, 2)
    assert masks[0].tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert masks[1].tolist() == [[0.0, 0.75], [0.0, 0.0]]
    assert masks[2].tolist() == [[0.0, 0.0], [0.0, 1.0]]


def test_non_integer_factor_matches_area_interpolation():
    torch.manual_seed(0)
    segment_map = torch.randint(0, 5, (30, 50))
    masks = masks_from_segment_map(segment_map, 4, (8, 12))
    onehot = F.one_hot(segment_map, 5)[..., 1:].permute(2, 0, 1).float()[None]
    torch.testing.assert_close(masks, F.interpolate(onehot, size=(8, 12), mode="area")[0])


def test_no_segments_and_batches():
    maps = torch.zeros(2, 8, 8, dtype=torch.long)
    maps[1, :4] = 1
    out = masks_from_segment_maps(maps, [0, 1], (2, 2))
    assert out[0].shape == (0, 2, 2)
    assert out[1].tolist() == [[[1.0, 1.0], [0.0, 0.0]]]
