"""Compose one synthetic top-down scene: ground, roads, parking lots, roofs, objects, trees, light.

Labels are exact by construction: every object's box is the axis-aligned box of its outline (clipped
to the frame), and the outline bounds everything drawn for it (sprites are rasterised by supersampling,
which keeps their true extent; see `synth_draw.rasterise`); objects never overlap each other or roofs;
trees are the only occluders, and an object less than `MIN_VISIBLE` visible (under canopy or outside
the frame) is drawn but not labelled. Sizes are in pixels of a 256 px scene times `k = size / 256`: a scene covers
the same ground at any size.

With an explicit `scale` (`k` given, e.g. 0.5 for a 1536 px scene of 8-15 px cars: a high-resolution frame
of a wide area, where objects are small), the scene covers `r = size / (256 k)` times the side of the
default ground; roofs, trees and objects are `round(r)` times as many (the side, not the area: at r = 12 the
area would mean ~1500 objects a frame, far past what a detector keeps per image). Roads keep their count
(each crosses the whole frame); there is at most one parking lot. Without `scale` every count and every
random draw is what it always was (`r = 1`), so the default images are byte-identical.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2  # loaded lazily by skyops.data.synth
import numpy as np

from skyops.data.synth_draw import (
    SHIFT,
    Sprite,
    building,
    bus,
    car,
    composite,
    fill,
    jitter,
    person,
    place,
    rect,
    rgb,
    to_cv,
    tree,
    truck,
    value_noise,
)

SPRITES: dict[str, Callable[[np.random.Generator, float], Sprite]] = {"car": car, "truck": truck, "bus": bus, "person": person}
VEHICLES = frozenset({"car", "truck", "bus"})
MIN_VISIBLE = 0.4  # fraction of an object's outline that must be visible for it to be labelled
_TRIES = 25  # placement attempts per object before giving up on it


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # (size, size, 3) uint8 BGR
    boxes: np.ndarray  # (N, 5) float64: class id, x0, y0, x1, y1 in px
    hidden: int  # objects drawn but not labelled (occluded or outside the frame)


@dataclass(frozen=True)
class _Road:
    points: np.ndarray  # (M, 2) px, ~4 px apart
    tangents: np.ndarray  # (M, 2) unit vectors
    width: float  # px


@dataclass(frozen=True)
class _Placed:
    sprite: Sprite
    centre: np.ndarray  # (2,) px
    angle: float  # radians

    @property
    def outline(self) -> np.ndarray:
        return place(self.sprite.outline, self.centre, self.angle)


def _raster(polygon: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The polygon's coverage (uint8, 0-255, anti-aliased) in its own bounding patch, and the patch's origin."""
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 2
    patch = np.zeros((y1 - y0, x1 - x0), np.uint8)
    fill(patch, polygon - [x0, y0], 255, antialias=False)
    return patch, int(x0), int(y0)


def _overlap(shape: tuple[int, ...], patch: np.ndarray, x0: int, y0: int) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """Slices of `patch` (its corner at x0, y0) and of a frame of `shape` where the two overlap, or None."""
    h, w = patch.shape
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + w, shape[1]), min(y0 + h, shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    return (slice(fy0 - y0, fy1 - y0), slice(fx0 - x0, fx1 - x0)), (slice(fy0, fy1), slice(fx0, fx1))


def _free(mask: np.ndarray, polygon: np.ndarray) -> bool:
    """True if the polygon touches no set pixel of `mask` and some of it lies in the frame."""
    patch, x0, y0 = _raster(polygon)
    overlap = _overlap(mask.shape, patch, x0, y0)
    return overlap is not None and not np.any(patch[overlap[0]] & mask[overlap[1]])


def _grown(outline: np.ndarray, margin: float) -> np.ndarray:
    reach = float(np.abs(outline).max())
    return outline * (1 + margin / reach)


def _road(rng: np.random.Generator, size: int, k: float) -> _Road:
    """A straight or gently curved band through a point of the central region, ending off-frame."""
    through = rng.uniform(0.2, 0.8, 2) * size
    heading = rng.uniform(0, math.pi)
    direction = np.array([math.cos(heading), math.sin(heading)])
    normal = np.array([-direction[1], direction[0]])
    start, end = through - 1.5 * size * direction, through + 1.5 * size * direction
    bend = through + normal * (rng.uniform(-0.5, 0.5) * size if rng.random() < 0.5 else 0.0)
    t = np.linspace(0, 1, int(0.75 * size))[:, None]  # ~4 px apart: smooth enough, and thick AA polylines cost per vertex
    points = (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t**2 * end  # quadratic Bezier
    tangents = np.gradient(points, axis=0)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    return _Road(points, tangents, rng.uniform(36, 48) * k)


def _polyline(img: np.ndarray, points: np.ndarray, colour: tuple[int, int, int] | int, thickness: float) -> None:
    cv2.polylines(img, [to_cv(points)], False, colour, max(1, round(thickness)), cv2.LINE_AA, shift=SHIFT)


def _paint_surface(img: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
    """img (float32, H x W x 3) <- colour where mask (uint8 coverage) is set, blended at AA edges."""
    alpha = (mask.astype(np.float32) / 255)[..., None]
    img *= 1 - alpha
    img += alpha * np.asarray(colour, np.float32)


def _ground(rng: np.random.Generator, size: int, urban: bool) -> np.ndarray:
    """(size, size, 3) float32: a base material with patches of a second one (grass, dirt, pavement)."""
    if urban:
        base, patch = jitter(rng, rgb(150, 148, 140), 15), jitter(rng, rgb(95, 125, 65), 12)
    else:
        base, patch = jitter(rng, rgb(92, 122, 62) if rng.random() < 0.7 else rgb(150, 145, 95), 12), jitter(rng, rgb(140, 115, 85), 12)
    mix = np.clip((value_noise(rng, size, (3, 7), (0.6, 0.4)) - rng.uniform(0.45, 0.7)) * 6, 0, 1)[..., None]
    return np.asarray(base, np.float32) * (1 - mix) + np.asarray(patch, np.float32) * mix


def _weather(rng: np.random.Generator, img: np.ndarray) -> None:
    """Wear and grain on every surface at once: low-frequency blotches (+-18%) and pixel noise, in place."""
    size = img.shape[0]
    img *= (1 + 0.36 * (value_noise(rng, size) - 0.5))[..., None]
    img += rng.uniform(3, 5) * rng.standard_normal((size, size, 1), dtype=np.float32)


def _lane_marks(img: np.ndarray, road: _Road, rng: np.random.Generator, k: float) -> None:
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(road.points, axis=0), axis=1))])  # (M,) px along the road
    dash, colour = rng.uniform(5, 9) * k, rgb(235, 235, 225) if rng.random() < 0.7 else rgb(225, 190, 60)
    for start in np.arange(rng.uniform(0, 2 * dash), arc[-1] - dash, 2 * dash):
        along = np.linspace(start, start + dash, 3)
        _polyline(
            img, np.stack([np.interp(along, arc, road.points[:, 0]), np.interp(along, arc, road.points[:, 1])], axis=1), colour, 1.3 * k
        )
    if rng.random() < 0.6:  # solid edge lines
        normal = np.stack([-road.tangents[:, 1], road.tangents[:, 0]], axis=1)
        for side in (-1, 1):
            _polyline(img, road.points + normal * side * (road.width / 2 - 2.5 * k), rgb(205, 205, 200), 0.9 * k)


def _lot(rng: np.random.Generator, size: int, k: float, blocked: np.ndarray) -> tuple[np.ndarray, float, int] | None:
    """A free spot for a two-row parking lot: (centre, angle, stalls per row), or None."""
    stalls = int(rng.integers(4, 9))
    for _ in range(_TRIES):
        centre, angle = rng.uniform(0.15, 0.85, 2) * size, rng.uniform(0, math.pi)
        if _free(blocked, place(_lot_outline(stalls, k), centre, angle)):
            return centre, angle, stalls
    return None


_STALL_WIDTH, _STALL_DEPTH = 17.0, 31.0  # px at k=1: fits a car of up to 30 x 15 px


def _lot_outline(stalls: int, k: float) -> np.ndarray:
    half_l, half_w = (stalls * _STALL_WIDTH / 2 + 3) * k, (_STALL_DEPTH + 3) * k
    return rect(-half_l, half_l, -half_w, half_w)


def render_scene(rng: np.random.Generator, size: int, classes: Sequence[str], scale: float | None = None) -> Scene:
    """Draw one scene. `classes` are sprite names (see `SPRITES`); class ids are their positions.

    `scale`: pixels per pixel of a 256 px scene (object sizes); None is `size / 256` (see the module docstring).
    """
    k = size / 256 if scale is None else scale
    many = 1 if scale is None else max(1, round(size / (256 * scale)))  # counts of roofs, trees and objects
    urban = rng.random() < 0.6
    canvas, blocked, roads, lot = _surfaces(rng, size, k, urban)
    roofs = _roofs(rng, size, k, blocked, roads, urban, many)
    roof_mask = np.zeros_like(blocked)
    for roof in roofs:
        fill(roof_mask, roof.outline, 255)
    blocked |= roof_mask
    objects, classes_of = _objects(rng, size, k, classes, roof_mask, roads, lot, urban, many)
    trees = _trees(rng, size, k, blocked, objects, urban, many)
    canvas = _cast_shadows(rng, canvas, (*roofs, *objects, *trees), k)
    image = canvas.astype(np.float32)
    composite(image, [(item.sprite, item.centre, item.angle) for item in (*roofs, *objects, *trees)])
    canopy = np.zeros_like(blocked)
    for item in trees:
        for polygon, _ in item.sprite.parts:
            fill(canopy, place(polygon, item.centre, item.angle), 255, antialias=False)
    if trees:  # leaves: break the flat discs with fine noise
        image *= 1 + (canopy.astype(np.float32) / 255 * 0.5 * (value_noise(rng, size, (24, 64), (0.5, 0.5)) - 0.5))[..., None]
    boxes, hidden = _labels(objects, classes_of, canopy)
    return Scene(_light(rng, image, k), boxes, hidden)


def _surfaces(
    rng: np.random.Generator, size: int, k: float, urban: bool
) -> tuple[np.ndarray, np.ndarray, list[_Road], tuple[np.ndarray, float, int] | None]:
    """Ground, roads and a parking lot with their markings: (canvas uint8, where roofs and trees may
    not go (uint8 mask), roads, lot as (centre, angle, stalls per row) or None)."""
    shape = (size, size)
    img = _ground(rng, size, urban)
    blocked = np.zeros(shape, np.uint8)
    roads = [_road(rng, size, k) for _ in range(int(rng.integers(1, 3) if urban else rng.integers(0, 2)))]
    for road in roads:
        mask = np.zeros(shape, np.uint8)
        _polyline(mask, road.points, 255, road.width)
        _paint_surface(img, mask, jitter(rng, rgb(80, 82, 86), 10))
        blocked |= mask
    lot = _lot(rng, size, k, blocked) if urban and rng.random() < 0.5 else None
    if lot is not None:
        mask = np.zeros(shape, np.uint8)
        fill(mask, place(_lot_outline(lot[2], k), lot[0], lot[1]), 255)
        _paint_surface(img, mask, jitter(rng, rgb(108, 108, 110), 10))
        blocked |= mask
    _weather(rng, img)
    canvas = np.clip(img, 0, 255).astype(np.uint8)
    for road in roads:
        _lane_marks(canvas, road, rng, k)
    if lot is not None:
        _stall_lines(canvas, *lot, k)
    return canvas, blocked, roads, lot


def _cast_shadows(rng: np.random.Generator, canvas: np.ndarray, items: Sequence[_Placed], k: float) -> np.ndarray:
    """Darken the ground where the items' shadows fall: each outline swept along the light by its height."""
    sun = rng.uniform(0, 2 * math.pi)
    light = np.array([math.cos(sun), math.sin(sun)]) * rng.uniform(0.8, 1.5)  # shadow offset per px of height
    shadow = np.zeros(canvas.shape[:2], np.uint8)
    for item in items:
        outline = item.outline
        hull = cv2.convexHull(np.concatenate([outline, outline + light * item.sprite.height]).astype(np.float32))[:, 0, :]
        fill(shadow, hull.astype(np.float64), 255)
    alpha = cv2.GaussianBlur(shadow, (0, 0), 0.8 * k).astype(np.float32)[..., None] / 255
    return (canvas * (1 - rng.uniform(0.35, 0.55) * alpha)).astype(np.uint8)


def _stall_lines(canvas: np.ndarray, centre: np.ndarray, angle: float, stalls: int, k: float) -> None:
    half_l, depth = stalls * _STALL_WIDTH / 2 * k, _STALL_DEPTH * k
    colour, width = rgb(228, 228, 220), 1.0 * k
    _polyline(canvas, place(np.array([[-half_l, 0.0], [half_l, 0.0]]), centre, angle), colour, width)
    for j in range(stalls + 1):
        x = -half_l + j * _STALL_WIDTH * k
        _polyline(canvas, place(np.array([[x, -depth], [x, depth]]), centre, angle), colour, width)


def _roofs(rng: np.random.Generator, size: int, k: float, blocked: np.ndarray, roads: list[_Road], urban: bool, many: int) -> list[_Placed]:
    placed: list[_Placed] = []
    taken = blocked.copy()
    for _ in range(many * int(rng.integers(3, 8) if urban else rng.integers(0, 3))):
        sprite = building(rng, rng.uniform(40, 90) * k, rng.uniform(30, 60) * k, k)
        for _ in range(_TRIES):
            centre = rng.uniform(-0.1, 1.1, 2) * size
            along_road = roads and rng.random() < 0.7  # streets are lined with parallel houses
            angle = (
                math.atan2(roads[0].tangents[0, 1], roads[0].tangents[0, 0]) + rng.normal(0, 0.05)
                if along_road
                else rng.uniform(0, math.pi)
            )
            candidate = _Placed(sprite, centre, angle)
            if _free(taken, place(_grown(sprite.outline, 4 * k), centre, angle)):
                placed.append(candidate)
                fill(taken, candidate.outline, 255)
                break
    return placed


def _vehicle_spot(rng: np.random.Generator, size: int, k: float, roads: list[_Road]) -> tuple[np.ndarray, float]:
    """A lane position and heading on a random road (85%), else anywhere with any heading."""
    if roads and rng.random() < 0.85:
        road = roads[int(rng.integers(len(roads)))]
        inside = np.flatnonzero(np.all((road.points > 0) & (road.points < size), axis=1))
        if inside.size:
            i = int(rng.choice(inside))
            lane = 1 if rng.random() < 0.5 else -1  # right-hand traffic: each lane faces its own way
            normal = np.array([-road.tangents[i, 1], road.tangents[i, 0]])
            centre = road.points[i] + normal * lane * (road.width / 4 + rng.normal(0, 0.8 * k))
            heading = math.atan2(road.tangents[i, 1], road.tangents[i, 0]) + (0.0 if lane == 1 else math.pi)
            return centre, heading + rng.normal(0, 0.04)
    return rng.uniform(0, size, 2), rng.uniform(0, 2 * math.pi)


def _objects(
    rng: np.random.Generator,
    size: int,
    k: float,
    classes: Sequence[str],
    roofs: np.ndarray,
    roads: list[_Road],
    lot: tuple[np.ndarray, float, int] | None,
    urban: bool,
    many: int,
) -> tuple[list[_Placed], list[int]]:
    """Sample and place objects; none overlaps another or a roof. Returns them and their class ids."""
    ranges = {
        "car": (5, 15) if urban else (2, 8),
        "truck": (0, 4) if urban else (0, 3),
        "bus": (0, 3) if urban else (0, 2),
        "person": (2, 9) if urban else (1, 7),
    }
    taken = roofs.copy()
    placed: list[_Placed] = []
    classes_of: list[int] = []

    def put(candidate: _Placed, cls: int) -> bool:
        if not _free(taken, place(_grown(candidate.sprite.outline, 1.5 * k), candidate.centre, candidate.angle)):
            return False
        fill(taken, candidate.outline, 255)
        placed.append(candidate)
        classes_of.append(cls)
        return True

    if lot is not None and "car" in classes:
        centre, angle, stalls = lot
        for j in range(stalls):
            for row in (-1, 1):
                if rng.random() < 0.65:
                    spot = np.array([(j + 0.5 - stalls / 2) * _STALL_WIDTH * k, row * _STALL_DEPTH * k / 2])
                    heading = angle + row * math.pi / 2 + (math.pi if rng.random() < 0.3 else 0.0) + rng.normal(0, 0.04)
                    put(_Placed(car(rng, k), place(spot[None], centre, angle)[0], heading), classes.index("car"))
    for cls, name in enumerate(classes):
        for _ in range(many * int(rng.integers(*ranges[name]))):
            sprite = SPRITES[name](rng, k)
            for _ in range(_TRIES):
                centre, heading = (
                    _vehicle_spot(rng, size, k, roads) if name in VEHICLES else (rng.uniform(0, size, 2), rng.uniform(0, 2 * math.pi))
                )
                if put(_Placed(sprite, centre, heading), cls):
                    break
    return placed, classes_of


def _trees(
    rng: np.random.Generator, size: int, k: float, blocked: np.ndarray, objects: list[_Placed], urban: bool, many: int
) -> list[_Placed]:
    """Trees on free ground, plus some deliberately over objects to occlude them partly."""
    trees = []
    for _ in range(many * int(rng.integers(2, 8) if urban else rng.integers(5, 17))):
        sprite = tree(rng, rng.uniform(7, 15) * k)
        for _ in range(_TRIES):
            candidate = _Placed(sprite, rng.uniform(0, size, 2), 0.0)
            if _free(blocked, candidate.outline):
                trees.append(candidate)
                break
    for item in objects:
        if rng.random() < 0.12:
            reach = float(np.abs(item.sprite.outline).max())
            radius = rng.uniform(0.5, 1.1) * reach + 3 * k
            trees.append(_Placed(tree(rng, radius), item.centre + rng.uniform(-1, 1, 2) * reach, 0.0))
    return trees


def _labels(objects: list[_Placed], classes_of: list[int], canopy: np.ndarray) -> tuple[np.ndarray, int]:
    """Boxes of objects at least MIN_VISIBLE visible (in the frame, not under canopy), clipped to the frame."""
    size = canopy.shape[0]
    boxes, hidden = [], 0
    for item, cls in zip(objects, classes_of, strict=True):
        outline = item.outline
        patch, x0, y0 = _raster(outline)
        cover = patch.astype(np.float32) / 255
        overlap = _overlap(canopy.shape, patch, x0, y0)
        visible = 0.0 if overlap is None else float((cover[overlap[0]] * (1 - canopy[overlap[1]].astype(np.float32) / 255)).sum())
        (bx0, by0), (bx1, by1) = np.clip(outline.min(axis=0), 0, size), np.clip(outline.max(axis=0), 0, size)
        if visible < MIN_VISIBLE * cover.sum() or bx1 - bx0 < 2 or by1 - by0 < 2:
            hidden += 1
            continue
        boxes.append((cls, bx0, by0, bx1, by1))
    return np.array(boxes, dtype=np.float64).reshape(-1, 5), hidden


def _light(rng: np.random.Generator, img: np.ndarray, k: float) -> np.ndarray:
    """Global gain, contrast, colour cast and a soft brightness ramp; sometimes blur; sensor noise.

    img: (size, size, 3) float32 BGR, changed in place; returns the final uint8 image.
    """
    size = img.shape[0]
    gain = rng.uniform(0.75, 1.2) * rng.uniform(0.93, 1.07, 3)  # per channel: brightness and colour cast
    contrast = rng.uniform(0.8, 1.15)
    mean = np.asarray(cv2.mean(img)[:3]) * gain
    img *= (gain * contrast).astype(np.float32)  # (x * gain - mean) * contrast + mean, in two passes
    img += (mean * (1 - contrast)).astype(np.float32)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    direction, depth = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.12)
    img *= (1 + depth * (math.cos(direction) * ramp[None, :] + math.sin(direction) * ramp[:, None]))[..., None]
    if rng.random() < 0.3:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 0.9) * k), np.float32)
    img += rng.uniform(0.5, 3) * rng.standard_normal((size, size, 1), dtype=np.float32)
    return np.clip(img, 0, 255, out=img).round().astype(np.uint8)
