"""Drawing primitives of the synthetic aerial scenes: noise, sprites of objects, roofs, trees.

A sprite is a list of coloured polygons in the object's own frame (x along its length, pointing to
its front; y across; centred on 0; pixels), so one transform places, rotates and rasterises it. The
first polygon is the outline: it gives the label box, the shadow and the footprint for overlap tests.
Colours are BGR uint8 tuples (OpenCV's order); palettes are written in RGB for readability.
All randomness comes from the `numpy.random.Generator` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2  # only the synth modules import this module, and they are loaded lazily
import numpy as np

Colour = tuple[int, int, int]
SHIFT = 4  # fixed-point bits for cv2 polygon vertices: 1/16 px precision


def to_cv(points: np.ndarray) -> np.ndarray:
    """Continuous pixel coordinates (pixel x spans [x, x + 1), as in labels) -> OpenCV fixed-point
    vertices (OpenCV puts pixel centres on integers, half a pixel off)."""
    return np.round((points - 0.5) * (1 << SHIFT)).astype(np.int32)


def rgb(r: int, g: int, b: int) -> Colour:
    return (b, g, r)


def _channel(value: float) -> int:
    return int(min(max(value, 0.0), 255.0))


def jitter(rng: np.random.Generator, colour: Colour, amount: float) -> Colour:
    """Colour with each channel moved by up to +-amount (brightness shared, so hue mostly stays)."""
    shift = rng.uniform(-amount, amount) + rng.uniform(-amount / 3, amount / 3, 3)
    b, g, r = (_channel(c + s) for c, s in zip(colour, shift.tolist(), strict=True))
    return (b, g, r)


def scaled(colour: Colour, factor: float) -> Colour:
    b, g, r = (_channel(c * factor) for c in colour)
    return (b, g, r)


def pick(rng: np.random.Generator, palette: list[tuple[Colour, float]]) -> Colour:
    weights = np.array([w for _, w in palette])
    return palette[int(rng.choice(len(palette), p=weights / weights.sum()))][0]


def rect(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def rounded_rect(length: float, width: float, corner: float) -> np.ndarray:
    """Octagon: a length x width rectangle centred on 0 with its corners cut by `corner` px."""
    x, y, c = length / 2, width / 2, corner
    return np.array(
        [[x - c, -y], [x, -y + c], [x, y - c], [x - c, y], [-x + c, y], [-x, y - c], [-x, -y + c], [-x + c, -y]], dtype=np.float64
    )


def ellipse(a: float, b: float, vertices: int = 16) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, vertices, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)


def place(local: np.ndarray, centre: np.ndarray, angle: float) -> np.ndarray:
    """(N, 2) points in the object's frame -> image pixels, rotated by `angle` (radians) about `centre`."""
    c, s = math.cos(angle), math.sin(angle)
    return local @ np.array([[c, s], [-s, c]]) + centre


def fill(img: np.ndarray, polygon: np.ndarray, colour: Colour | int, antialias: bool = True) -> None:
    """Fill a (N, 2) float polygon into a uint8 image (or mask) in place.

    antialias=False paints exactly the pixels whose centres lie inside; True uses cv2.LINE_AA,
    smooth but about 0.7 px too wide on every side (fine for ground marks and shadows, not for
    anything a label must bound: see `rasterise`).
    """
    cv2.fillPoly(img, [to_cv(polygon)], colour, cv2.LINE_AA if antialias else cv2.LINE_8, shift=SHIFT)


def value_noise(
    rng: np.random.Generator, size: int, cells: tuple[int, ...] = (4, 16, 64), weights: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> np.ndarray:
    """(size, size) float32 noise in about [0, 1]: random grids of `cells` upsampled and summed."""
    total = np.zeros((size, size), np.float32)
    for n, w in zip(cells, weights, strict=True):
        grid = rng.random((n + 1, n + 1), dtype=np.float32)
        total += w * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return total


@dataclass(frozen=True)
class Sprite:
    """An object ready to place: coloured polygons in its frame (first = outline) and its height for shadows."""

    parts: list[tuple[np.ndarray, Colour]]
    height: float  # px; how far its shadow reaches, as a multiple of the scene's light vector

    @property
    def outline(self) -> np.ndarray:
        return self.parts[0][0]


_CAR_PAINT = [
    (rgb(232, 232, 230), 0.26),
    (rgb(30, 30, 34), 0.12),
    (rgb(168, 170, 174), 0.18),
    (rgb(100, 104, 110), 0.12),
    (rgb(165, 30, 30), 0.1),
    (rgb(35, 62, 135), 0.1),
    (rgb(40, 85, 55), 0.04),
    (rgb(200, 180, 120), 0.04),
    (rgb(215, 170, 30), 0.04),
]
_CARGO = [
    (rgb(238, 238, 235), 0.4),
    (rgb(190, 192, 190), 0.25),
    (rgb(40, 90, 160), 0.12),
    (rgb(170, 50, 35), 0.12),
    (rgb(60, 120, 70), 0.11),
]
_BUS_PAINT = [
    (rgb(232, 190, 35), 0.3),
    (rgb(236, 236, 232), 0.3),
    (rgb(190, 40, 35), 0.15),
    (rgb(40, 95, 175), 0.15),
    (rgb(50, 140, 80), 0.1),
]
_SHIRTS = [
    (rgb(220, 40, 40), 0.2),
    (rgb(40, 80, 200), 0.2),
    (rgb(240, 220, 60), 0.15),
    (rgb(245, 245, 245), 0.15),
    (rgb(50, 170, 70), 0.1),
    (rgb(240, 130, 30), 0.1),
    (rgb(230, 110, 170), 0.1),
]
_GLASS = rgb(28, 34, 44)


def car(rng: np.random.Generator, k: float) -> Sprite:
    """A car 16-30 px long at k=1 (256 px scenes): body, dark windshield and rear window, roof panel."""
    length = rng.uniform(16, 30) * k
    width = length * rng.uniform(0.42, 0.5)
    paint = jitter(rng, pick(rng, _CAR_PAINT), 12)
    half = width / 2
    return Sprite(
        parts=[
            (rounded_rect(length, width, 0.22 * width), paint),
            (
                np.array(
                    [[0.3 * length, -0.4 * half], [0.3 * length, 0.4 * half], [0.1 * length, 0.78 * half], [0.1 * length, -0.78 * half]]
                ),
                _GLASS,
            ),
            (
                np.array(
                    [
                        [-0.4 * length, -0.7 * half],
                        [-0.28 * length, -0.78 * half],
                        [-0.28 * length, 0.78 * half],
                        [-0.4 * length, 0.7 * half],
                    ]
                ),
                _GLASS,
            ),
            (rect(-0.27 * length, 0.09 * length, -0.72 * half, 0.72 * half), scaled(paint, rng.uniform(0.82, 1.12))),
        ],
        height=1.2 * k,
    )


def truck(rng: np.random.Generator, k: float) -> Sprite:
    """A truck 36-56 px long: a short cab at the front, a gap, a long box in a cargo colour with ribs."""
    length = rng.uniform(36, 56) * k
    width = length * rng.uniform(0.3, 0.36)
    half, cab_back = width / 2, 0.5 * length - rng.uniform(0.18, 0.24) * length
    cab, cargo = jitter(rng, pick(rng, _CAR_PAINT), 12), jitter(rng, pick(rng, _CARGO), 10)
    parts: list[tuple[np.ndarray, Colour]] = [
        (rect(-length / 2, length / 2, -half, half), (40, 40, 40)),
        (rounded_rect(0.5 * length - cab_back, width * 0.96, 0.15 * width) + np.array([(0.5 * length + cab_back) / 2, 0.0]), cab),
        (rect(0.5 * length - 0.1 * length, 0.5 * length - 0.03 * length, -0.8 * half, 0.8 * half), _GLASS),
        (rect(-length / 2, cab_back - 0.03 * length, -half, half), cargo),
    ]
    rib = max(1.0, 0.6 * k)
    for x in np.arange(-length / 2 + 5 * k, cab_back - 0.05 * length, rng.uniform(4, 6) * k):
        parts.append((rect(x, x + rib, -half, half), scaled(cargo, 0.85)))
    return Sprite(parts=parts, height=3.0 * k)


def bus(rng: np.random.Generator, k: float) -> Sprite:
    """A bus 52-72 px long: one colour, dark window bands along both sides, roof units, windshield."""
    length = rng.uniform(52, 72) * k
    width = length * rng.uniform(0.25, 0.29)
    half = width / 2
    paint = jitter(rng, pick(rng, _BUS_PAINT), 10)
    band = 0.2 * half
    parts: list[tuple[np.ndarray, Colour]] = [
        (rounded_rect(length, width, 0.12 * width), paint),
        (rect(-0.45 * length, 0.44 * length, -half, -half + band), _GLASS),
        (rect(-0.45 * length, 0.44 * length, half - band, half), _GLASS),
        (rect(0.44 * length, 0.5 * length - 0.5 * k, -0.7 * half, 0.7 * half), _GLASS),
    ]
    for _ in range(int(rng.integers(1, 3))):
        x = rng.uniform(-0.3, 0.2) * length
        parts.append((rect(x, x + 0.12 * length, -0.45 * half, 0.45 * half), rgb(200, 202, 205)))
    return Sprite(parts=parts, height=3.5 * k)


def person(rng: np.random.Generator, k: float) -> Sprite:
    """A person seen from above, 10-14 px across the shoulders (larger than life, so a 256 px detector
    can learn them; its box stays >= 8 px at any heading): a bright shirt, a dark head, a long shadow."""
    a = rng.uniform(5.2, 7.0) * k
    b = a * rng.uniform(0.5, 0.65)
    hair = jitter(rng, rgb(45, 32, 25), 15)
    return Sprite(
        parts=[(ellipse(a, b), jitter(rng, pick(rng, _SHIRTS), 15)), (ellipse(0.45 * b + 0.5 * k, 0.45 * b + 0.5 * k, 10), hair)],
        height=4.0 * k,
    )


_ROOFS = [
    (rgb(168, 84, 60), 0.25),
    (rgb(84, 84, 90), 0.2),
    (rgb(168, 166, 160), 0.25),
    (rgb(122, 92, 72), 0.15),
    (rgb(205, 198, 186), 0.15),
]


def building(rng: np.random.Generator, length: float, width: float, k: float) -> Sprite:
    """A roof: gabled (two shaded halves and a ridge) or flat (parapet border and rooftop units)."""
    roof = jitter(rng, pick(rng, _ROOFS), 12)
    half_l, half_w = length / 2, width / 2
    parts: list[tuple[np.ndarray, Colour]] = [(rect(-half_l, half_l, -half_w, half_w), roof)]
    if rng.random() < 0.5:
        parts.append((rect(-half_l, half_l, 0, half_w), scaled(roof, rng.uniform(0.7, 0.82))))
        parts.append((rect(-half_l, half_l, -0.6 * k, 0.6 * k), scaled(roof, 1.15)))
    else:
        rim = 2.0 * k
        parts.append((rect(-half_l + rim, half_l - rim, -half_w + rim, half_w - rim), scaled(roof, 0.88)))
        for _ in range(int(rng.integers(0, 4))):
            w, h = rng.uniform(3, 8) * k, rng.uniform(3, 8) * k
            x, y = rng.uniform(-half_l + rim + w, half_l - rim - w), rng.uniform(-half_w + rim + h, half_w - rim - h)
            parts.append((rect(x - w / 2, x + w / 2, y - h / 2, y + h / 2), rgb(205, 206, 210)))
    return Sprite(parts=parts, height=rng.uniform(6, 12) * k)


def tree(rng: np.random.Generator, radius: float) -> Sprite:
    """A canopy of overlapping discs in greens (they may reach past the first disc: occlusion is measured
    on the drawn canopy, not on the outline)."""
    green = jitter(rng, rgb(58, 92, 48), 14)
    parts: list[tuple[np.ndarray, Colour]] = [(ellipse(radius, radius, 20), green)]
    for _ in range(int(rng.integers(3, 7))):
        r = radius * rng.uniform(0.35, 0.65)
        offset = rng.uniform(-0.5, 0.5, 2) * radius
        parts.append((ellipse(r, r, 14) + offset, scaled(green, rng.uniform(0.8, 1.25))))
    return Sprite(parts=parts, height=radius * 0.8)


SUPERSAMPLE = 3  # sprites are drawn at 3x and averaged down: anti-aliasing that keeps their true extent


def rasterise(sprite: Sprite, centre: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Draw one placed sprite in a patch just covering it.

    Returns:
        colour: (h, w, 3) float32, premultiplied by coverage (0 where nothing is drawn).
        coverage: (h, w) float32 in [0, 1], the fraction of each pixel covered.
        x0, y0: the image pixel of the patch's top-left corner (may lie outside the image).
    """
    polygons = [(place(polygon, centre, angle), paint) for polygon, paint in sprite.parts]
    corners = np.concatenate([p for p, _ in polygons])
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 1
    big = ((y1 - y0) * SUPERSAMPLE, (x1 - x0) * SUPERSAMPLE)
    colour, cover = np.zeros((*big, 3), np.uint8), np.zeros(big, np.uint8)
    for polygon, paint in polygons:
        local = (polygon - [x0, y0]) * SUPERSAMPLE
        fill(colour, local, paint, antialias=False)
        fill(cover, local, 255, antialias=False)
    down = (int(x1 - x0), int(y1 - y0))
    colour_down = cv2.resize(colour, down, interpolation=cv2.INTER_AREA).astype(np.float32)  # averages 3 x 3 blocks
    return colour_down, cv2.resize(cover, down, interpolation=cv2.INTER_AREA).astype(np.float32) / 255, int(x0), int(y0)


def composite(image: np.ndarray, sprites: Iterable[tuple[Sprite, np.ndarray, float]]) -> None:
    """Paint (sprite, centre, angle) over `image` ((H, W, 3) float32, in place), in order: later on top."""
    height, width = image.shape[:2]
    for sprite, centre, angle in sprites:
        colour, cover, x0, y0 = rasterise(sprite, centre, angle)
        h, w = cover.shape
        fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
        if fx1 <= fx0 or fy1 <= fy0:
            continue
        patch = (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0))
        target = image[fy0:fy1, fx0:fx1]
        target *= 1 - cover[patch][..., None]
        target += colour[patch]
