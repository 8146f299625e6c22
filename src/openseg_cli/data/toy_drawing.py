"""Drawing primitives of the open-vocabulary toy world: shape silhouettes, textures and a shared palette.

Shapes are boolean masks [H, W] of a silhouette with circumradius ~r, centred and rotated; textures are
float images [H, W, 3] whose *pattern* names the class and whose base colour is drawn from the same
palette as the shapes' colours, so that colour never identifies a class. numpy + PIL only; every random
draw comes from the generator passed in, so output is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

# One palette for shapes and grounds alike (name -> RGB): any class can take any of these colours.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40),
    "orange": (240, 140, 30),
    "yellow": (235, 210, 40),
    "green": (60, 160, 60),
    "blue": (45, 90, 200),
    "purple": (130, 50, 170),
    "pink": (240, 130, 185),
    "brown": (125, 80, 40),
    "white": (235, 235, 235),
    "grey": (130, 130, 130),
    "black": (30, 30, 30),
    "cyan": (50, 200, 210),
}


# How far a ground's pattern moves its colour (levels per unit of pattern): enough to tell the patterns
# apart at a glance, not so much that pattern edges drown the shapes' outlines.
TEXTURE_AMPLITUDE = 18.0


def colour_distance(a: str, b: str) -> float:
    """Euclidean RGB distance between two palette colours."""
    return float(np.linalg.norm(np.subtract(PALETTE[a], PALETTE[b], dtype=np.float64)))


def _regular(cx: float, cy: float, radii: list[float], angle: float) -> list[tuple[float, float]]:
    n = len(radii)
    return [
        (cx + r * np.cos(angle + 2 * np.pi * i / n), cy + r * np.sin(angle + 2 * np.pi * i / n))
        for i, r in enumerate(radii)
    ]


def _rotated(cx: float, cy: float, r: float, angle: float, pts: list[tuple[float, float]]):
    """Unit-radius outline points, scaled by r, rotated by angle and moved to (cx, cy)."""
    c, s = np.cos(angle), np.sin(angle)
    return [(cx + r * (px * c - py * s), cy + r * (px * s + py * c)) for px, py in pts]


def _heart_outline() -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return [(float(a) / 16.5, float(b) / 16.5 + 0.1) for a, b in zip(x, y, strict=True)]


_ARROW = [(-1.0, -0.22), (0.15, -0.22), (0.15, -0.6), (1.0, 0.0), (0.15, 0.6), (0.15, 0.22), (-1.0, 0.22)]
_BOLT = [(-0.25, -1.0), (0.45, -1.0), (0.1, -0.2), (0.55, -0.2), (-0.35, 1.0), (-0.05, 0.1), (-0.5, 0.1)]
_DIAMOND = [(-0.6, 0.0), (0.0, -1.2), (0.6, 0.0), (0.0, 1.2)]  # a tall rhombus, not a tilted square
_PLUS_A, _PLUS_B = 0.32, 1.05
_PLUS = [
    (_PLUS_A, _PLUS_B), (-_PLUS_A, _PLUS_B), (-_PLUS_A, _PLUS_A), (-_PLUS_B, _PLUS_A), (-_PLUS_B, -_PLUS_A),
    (-_PLUS_A, -_PLUS_A), (-_PLUS_A, -_PLUS_B), (_PLUS_A, -_PLUS_B), (_PLUS_A, -_PLUS_A), (_PLUS_B, -_PLUS_A),
    (_PLUS_B, _PLUS_A), (_PLUS_A, _PLUS_A),
]  # fmt: skip


def _draw(kind: str, draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    """Paint the silhouette of `kind` (255 = inside) on an "L" canvas."""
    ring = (cx - r, cy - r, cx + r, cy + r)
    if kind in ("circle", "ring"):
        draw.ellipse(ring, fill=255)
        if kind == "ring":
            q = 0.55 * r
            draw.ellipse((cx - q, cy - q, cx + q, cy + q), fill=0)
    elif kind == "crescent":  # a disc minus a shifted disc
        draw.ellipse(ring, fill=255)
        ox, oy = cx + 0.45 * r * np.cos(angle), cy + 0.45 * r * np.sin(angle)
        q = 0.85 * r
        draw.ellipse((ox - q, oy - q, ox + q, oy + q), fill=0)
    elif kind == "flower":  # five petals around a centre
        for i in range(5):
            a = angle + 2 * np.pi * i / 5
            px, py, q = cx + 0.55 * r * np.cos(a), cy + 0.55 * r * np.sin(a), 0.42 * r
            draw.ellipse((px - q, py - q, px + q, py + q), fill=255)
        q = 0.3 * r
        draw.ellipse((cx - q, cy - q, cx + q, cy + q), fill=255)
    elif kind in _POLYGONS:
        draw.polygon(_POLYGONS[kind](cx, cy, r, angle), fill=255)
    else:
        raise KeyError(f"unknown toy shape {kind!r}")


_POLYGONS: dict[str, Callable[[float, float, float, float], list[tuple[float, float]]]] = {
    # angle 0 is upright: squares sit on a side, triangles and stars point up
    "square": lambda cx, cy, r, a: _regular(cx, cy, [r * 1.1] * 4, a + np.pi / 4),
    "triangle": lambda cx, cy, r, a: _regular(cx, cy, [r * 1.2] * 3, a - np.pi / 2),
    "star": lambda cx, cy, r, a: _regular(cx, cy, [r * 1.2, r * 0.48] * 5, a - np.pi / 2),
    "cross": lambda cx, cy, r, a: _rotated(cx, cy, r, a, _PLUS),
    "heart": lambda cx, cy, r, a: _rotated(cx, cy, r * 1.1, a, _heart_outline()),
    "arrow": lambda cx, cy, r, a: _rotated(cx, cy, r * 1.1, a, _ARROW),
    "bolt": lambda cx, cy, r, a: _rotated(cx, cy, r * 1.1, a, _BOLT),
    "diamond": lambda cx, cy, r, a: _rotated(cx, cy, r, a, _DIAMOND),
}
SHAPES = ("circle", "ring", "crescent", "flower", *_POLYGONS)


def shape_mask(
    kind: str, height: int, width: int, cx: float, cy: float, r: float, angle: float
) -> np.ndarray:
    """Boolean mask [height, width] of shape `kind` (one of SHAPES) centred at (cx, cy), radius ~r, turned
    by `angle` radians from upright. KeyError for an unknown kind.
    """
    canvas = Image.new("L", (width, height), 0)
    _draw(kind, ImageDraw.Draw(canvas), cx, cy, r, angle)
    return np.asarray(canvas) > 127


def _grass(y, x, rng, h, w):  # vertical blades
    return (
        np.sin(x * 1.3 + rng.uniform(0, 6.3)) * 0.5 + rng.normal(0, 0.35, (1, w)) + rng.normal(0, 0.3, (h, w))
    )


def _water(y, x, rng, h, w):  # horizontal waves
    phase = rng.uniform(0, 6.3)
    return np.sin(2 * np.pi * (y / 9.0 + 0.25 * np.sin(x / 11.0 + phase))) * 0.9 + rng.normal(0, 0.1, (h, w))


def _sand(y, x, rng, h, w):  # speckles
    return (rng.random((h, w)) < 0.08) * -1.6 + rng.normal(0, 0.25, (h, w))


def _brick(y, x, rng, h, w):  # courses of bricks with mortar lines
    course = 8
    row = (y + rng.integers(course)) // course
    shift = (row % 2) * 8
    mortar = ((y % course) < 1.5) | (((x + shift) % 16) < 1.5)
    return np.where(mortar, 1.4, -0.3) + rng.normal(0, 0.15, (h, w))


def _wood(y, x, rng, h, w):  # tree rings around a centre near the image
    cy, cx = rng.uniform(-0.5 * h, 1.5 * h), rng.uniform(-0.5 * w, 1.5 * w)  # visibly curved rings
    radius = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)
    return np.sin(radius / rng.uniform(1.6, 2.2)) ** 6 * -1.6 + 0.4 + rng.normal(0, 0.1, (h, w))


def _gravel(y, x, rng, h, w):  # scattered pebbles
    out = np.full((h, w), -0.2)
    for _ in range(max(8, h * w // 60)):
        cy, cx, q = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(1.5, 3.5)
        out[(y - cy) ** 2 + (x - cx) ** 2 < q * q] = rng.uniform(0.4, 1.2)
    return out


TEXTURES: dict[str, Callable] = {
    "grass": _grass,
    "water": _water,
    "sand": _sand,
    "brick": _brick,
    "wood": _wood,
    "gravel": _gravel,
}


def texture(kind: str, colour: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A ground texture float [height, width, 3] of pattern `kind` (TEXTURES) around a PALETTE colour.

    The pattern (zero-mean-ish, unit-ish amplitude) shifts the colour by up to ~±30 levels, towards black
    on light colours and towards white on dark ones, so it stays visible on every colour.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    pattern = TEXTURES[kind](y, x, rng, height, width).astype(np.float32)
    base = np.asarray(PALETTE[colour], np.float32)
    sign = -1.0 if base.mean() > 150 else 1.0
    return base + sign * TEXTURE_AMPLITUDE * pattern[..., None]
