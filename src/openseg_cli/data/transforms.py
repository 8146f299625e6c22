"""Joint image + id-map transforms in torch (train: scale jitter, crop, flip; eval: fit and pad).

Images go in as uint8 [H, W, 3] and come out CLIP-normalised float [3, S, S]. Id maps use nearest
interpolation ("nearest-exact": pixel centres, as PIL does; plain "nearest" shifts by half a pixel).
Padding is bottom/right: image 0 after normalisation (= the CLIP mean colour), segment id 0 (void),
semantic -1 (ignore). After any crop, segments with no pixels left are dropped and renumbered 1..M.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def fit_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) after resizing the long side to `size` with the aspect kept: round(side * size / long)."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def normalise(image: torch.Tensor) -> torch.Tensor:
    """float [3, H, W] in 0..255 → CLIP-normalised float [3, H, W]."""
    mean = torch.tensor(CLIP_MEAN, dtype=image.dtype).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=image.dtype).view(3, 1, 1)
    return (image / 255.0 - mean) / std


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 or float [3, H, W] → the same dtype [3, h, w], bilinear (antialiased when shrinking).

    Give it uint8 where you can: torch's uint8 kernel is ~4x faster than float32 on CPU (0.9 vs 3.4 ms for
    a 640-px image), and rounds to within one grey level of it."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0]


def resize_map(id_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """long [H, W] → long [h, w], nearest (ids < 2^24 are exact in float32)."""
    if tuple(id_map.shape) == tuple(size):
        return id_map
    out = F.interpolate(id_map[None, None].float(), size=size, mode="nearest-exact")
    return out[0, 0].round().long()


def pad_to(t: torch.Tensor, size: int, value: float) -> torch.Tensor:
    """Pad the last two dims bottom/right up to size x size."""
    h, w = t.shape[-2:]
    if h == size and w == size:
        return t
    return F.pad(t, (0, size - w, 0, size - h), value=value)


def renumber(segment_map: torch.Tensor, segment_classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop segments with no pixels and renumber the rest 1..M' in their old order.

    segment_map long [H, W] with ids 0..M, segment_classes long [M] → (long [H, W], long [M']).
    """
    m = segment_classes.numel()
    # bincount, not unique(): unique sorts every pixel of the crop (5 ms of ~25 per 640-px sample)
    present = torch.bincount(segment_map.flatten(), minlength=m + 1) > 0
    present[0] = False
    if bool(present[1:].all()):
        return segment_map, segment_classes
    lut = torch.cumsum(present.long(), 0) * present.long()  # old id → new id, 0 for dropped
    return lut[segment_map], segment_classes[present[1:]]


def train_transform(
    image: torch.Tensor,
    segment_map: torch.Tensor,
    segment_classes: torch.Tensor,
    crop_size: int,
    scale_range: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Scale jitter + random crop + random flip.

    image uint8 [H, W, 3], segment_map long [H, W], segment_classes long [M] →
    (float [3, S, S] CLIP-normalised, long [S, S], long [M']), S = crop_size.
    The scale is `crop_size / max(H, W)` (the image fits the crop) times U(scale_range).
    """
    h, w = segment_map.shape
    lo, hi = scale_range
    jitter = lo + (hi - lo) * float(torch.rand((), generator=generator))
    scale = crop_size / max(h, w) * jitter
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    img = resize_image(image.permute(2, 0, 1), size)  # uint8 until after the crop: less to convert
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


def eval_transform(
    image: torch.Tensor,
    segment_map: torch.Tensor,
    segment_classes: torch.Tensor,
    semantic: torch.Tensor,
    crop_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Resize the long side to crop_size (aspect kept, see `fit_size`) and pad bottom/right.

    Returns (image float [3, S, S], segment_map long [S, S], segment_classes long [M'],
    semantic long [S, S] with -1 on padding).
    """
    size = fit_size(*segment_map.shape, crop_size)
    img = pad_to(normalise(resize_image(image.permute(2, 0, 1), size).float()), crop_size, 0.0)
    seg = pad_to(resize_map(segment_map, size), crop_size, 0)
    sem = pad_to(resize_map(semantic, size), crop_size, -1)
    seg, classes = renumber(seg, segment_classes)
    return img.contiguous(), seg.contiguous(), classes, sem.contiguous()
