"""Tiling of large frames for training: overlapping windows, boxes clipped by visibility, geometry kept.

A drone frame (VisDrone: 1360x765, DOTA: up to 20000 px a side) downscaled to the detector's input
loses its small objects; training on full-resolution tiles keeps them. Per image of a canonical-layout
dataset (see skyops.data.layout):

- **Windows.** Square windows of `size` pixels, `stride = size - overlap` apart (`overlap` in pixels,
  or a fraction of `size` when below 1). The last window of a row or column is shifted back to end
  on the image's edge (as SAHI does), so every pixel is covered and no window is padded. An image
  shorter than `size` along an axis gets one window spanning that whole axis: the tile is the whole
  image (or a full-height / full-width strip), never padded with invented pixels; Ultralytics
  letterboxes it like any smaller image.
- **Boxes.** A box is kept in a tile when `visible area / full area >= min_visible`, then clipped to
  the tile. A box kept in no tile (each tile sees too little of it) is counted as `boxes_lost`.
- **Empty tiles.** Tiles holding no kept box are negatives (they may hold slivers of boxes below
  `min_visible`). `empty_tile_fraction` of them are kept, chosen with `seed` across the whole
  dataset (`round(fraction x empty tiles)`); every tile with a box is kept.
- **Output.** The canonical layout: `images/<stem>__x<X>_y<Y>.<ext>` (pixels cropped from the
  stored image, without EXIF rotation, the frame the labels are in; JPEGs re-encoded at quality 95),
  `labels/`, `attributes/` when the source has them (rows follow their boxes), a manifest whose
  records keep the source image's group (so a split never puts tiles of one image on two sides), and
  `tiles.json`: per tile its source image, offset, size and scale, what `map_back` needs to put a
  prediction made on the tile back on its source frame.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from skyops.data.attributes import COLUMNS as ATTRIBUTE_COLUMNS
from skyops.data.attributes import ROW as ATTRIBUTE_ROW
from skyops.data.boxes import xyxy_to_yolo, yolo_to_xyxy
from skyops.data.formats.files import parallel_map
from skyops.data.layout import (
    ATTRIBUTES,
    IMAGES,
    LABELS,
    ImageRecord,
    Manifest,
    atomic_output_dir,
    attributes_file,
    group_of,
    image_stem,
    json_lines,
)
from skyops.errors import ConfigError, DataValidationError

TILES_JSON = "tiles.json"
TILES_VERSION = 1
_LABEL_ROW = "%d %.6f %.6f %.6f %.6f\n"
_JPEG_QUALITY = 95
_AUTO_MIN_IMAGES = 16  # images from which `workers=None` uses a pool
_CHUNK = 8  # images per worker task


@dataclass(frozen=True, kw_only=True)
class TileSettings:
    """How to cut. `overlap` is in pixels when >= 1, else a fraction of `size`."""

    size: int  # tile side, pixels
    overlap: float = 0.2
    min_visible: float = 0.5  # a box is kept in a tile when at least this fraction of its area is inside
    empty_tile_fraction: float = 0.1  # share of the tiles without boxes that is kept
    seed: int = 0

    @property
    def overlap_pixels(self) -> int:
        return int(self.overlap) if self.overlap >= 1 else round(self.overlap * self.size)

    def problems(self) -> list[str]:
        found = []
        if self.size < 32:
            found.append(f"size {self.size} is below 32 pixels")
        if not (math.isfinite(self.overlap) and self.overlap >= 0):
            found.append(f"overlap {self.overlap} must be >= 0 (pixels, or a fraction of size below 1)")
        elif self.overlap_pixels >= self.size:
            found.append(f"overlap of {self.overlap_pixels} px leaves no stride in tiles of {self.size} px")
        if not 0 < self.min_visible <= 1:
            found.append(f"min_visible {self.min_visible} must be in (0, 1]")
        if not 0 <= self.empty_tile_fraction <= 1:
            found.append(f"empty_tile_fraction {self.empty_tile_fraction} must be in [0, 1]")
        return found


@dataclass(frozen=True, kw_only=True)
class Tile:
    """One tile: where it was cut from. `scale` = tile pixels per source pixel (1.0: cut, not resized)."""

    image: str  # "images/<tile name>" in the tiled dataset
    source: str  # "images/<name>" of the source image in the input dataset
    x: int  # left edge in source pixels
    y: int  # top edge in source pixels
    width: int  # in source pixels
    height: int
    scale: float = 1.0
    boxes: int = 0


@dataclass(frozen=True, kw_only=True)
class TileReport:
    images: int  # source images
    tiles: int  # tiles written
    tiles_with_boxes: int
    empty_tiles: int  # tiles without a kept box, before the choice
    empty_tiles_kept: int
    boxes: int  # source boxes
    box_tiles: int  # (box, tile) pairs written, over the kept tiles
    boxes_clipped: int  # of those, clipped by their tile
    boxes_lost: int  # source boxes kept in no tile: no tile shows min_visible of them

    def to_json(self) -> dict[str, int]:
        return asdict(self)


def tile_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows of `size` covering [0, length): every `stride`, the last one ending on the edge."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size, stride))
    return [*starts, length - size]


def tile_windows(width: int, height: int, settings: TileSettings) -> list[tuple[int, int, int, int]]:
    """(x, y, w, h) of each window of a `width` x `height` image, row by row."""
    stride = settings.size - settings.overlap_pixels
    w, h = min(settings.size, width), min(settings.size, height)
    return [(x, y, w, h) for y in tile_starts(height, settings.size, stride) for x in tile_starts(width, settings.size, stride)]


def boxes_in_window(
    boxes: npt.NDArray[np.float64], window: tuple[int, int, int, int], min_visible: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """The boxes a window keeps.

    Args:
        boxes: (N, 4) xyxy in source pixels, positive areas.
        window: (x, y, w, h) in source pixels.
        min_visible: the fraction of a box's area that must lie inside the window.

    Returns:
        indices of the kept boxes, their (K, 4) xyxy clipped and in window pixels, and which of them were clipped.
    """
    x, y, w, h = window
    inside = np.column_stack(
        (np.maximum(boxes[:, 0], x), np.maximum(boxes[:, 1], y), np.minimum(boxes[:, 2], x + w), np.minimum(boxes[:, 3], y + h))
    )
    visible = np.clip(inside[:, 2] - inside[:, 0], 0, None) * np.clip(inside[:, 3] - inside[:, 1], 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept = np.flatnonzero(visible >= min_visible * area)  # min_visible > 0: a box must overlap to be kept
    clipped = (inside[kept] != boxes[kept]).any(axis=1)
    return kept, inside[kept] - np.array([x, y, x, y], dtype=np.float64), clipped


def map_back(boxes: npt.ArrayLike, tile: Tile) -> npt.NDArray[np.float64]:
    """Boxes predicted on `tile`, (N, 4) xyxy in tile pixels, as (N, 4) xyxy in its source image's pixels."""
    found = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return found / tile.scale + np.array([tile.x, tile.y, tile.x, tile.y], dtype=np.float64)


def read_tiles(root: Path) -> list[Tile]:
    """The tiles recorded in `<root>/tiles.json`; [] when the dataset is not tiled."""
    path = root / TILES_JSON
    if not path.is_file():
        return []
    try:
        return [Tile(**t) for t in json.loads(path.read_text())["tiles"]]
    except (ValueError, KeyError, TypeError) as e:
        raise DataValidationError(f"{path} is not a tiles record ({e})", hint="re-run the tile step") from None


def tile_dataset(root: Path | str, target: Path | str, settings: TileSettings, *, workers: int | None = None) -> TileReport:
    """Cut every image of the canonical-layout dataset at `root` into tiles written to `target`.

    Args:
        root: a dataset in the canonical layout. Not modified.
        target: where the tiled dataset is written; must not exist or be an empty folder.
        settings: how to cut (see the module docstring).
        workers: processes cutting and encoding images; None = one per CPU from 16 images up (each
            image is tens of milliseconds of decoding and encoding, so a pool pays for itself early).

    Raises:
        ConfigError: bad settings (every problem at once).
        DataValidationError: `root` has no manifest, `target` exists and is not empty, or one holds the other.
    """
    if problems := settings.problems():
        raise ConfigError(f"{len(problems)} problem(s) in the tile settings: " + "; ".join(problems), hint="e.g. size=640, overlap=0.2")
    root, target = Path(root).resolve(), Path(target).resolve()
    if target.is_relative_to(root) or root.is_relative_to(target):
        raise DataValidationError(
            f"target {target} overlaps the dataset {root}", hint="write the tiles outside the dataset: it is never modified"
        )
    manifest = Manifest.read(root)
    plans = [_plan_image(root, record, settings) for record in manifest.images]  # labels only: no pixels decoded yet
    empty = [(i, k) for i, plan in enumerate(plans) for k, (_, kept, _, _) in enumerate(plan.windows) if not kept.size]
    chosen = np.random.default_rng(settings.seed).permutation(len(empty))[: round(settings.empty_tile_fraction * len(empty))]
    keep_empty = {empty[j] for j in chosen.tolist()}

    jobs = []  # (record, plan, windows to write) of each image with a tile to write
    for i, (record, plan) in enumerate(zip(manifest.images, plans, strict=True)):
        wanted = [k for k, (_, kept, _, _) in enumerate(plan.windows) if kept.size or (i, k) in keep_empty]
        if wanted:
            jobs.append((record, plan, wanted))
    if workers is None:
        workers = (os.cpu_count() or 1) if len(jobs) >= _AUTO_MIN_IMAGES else 1
    tiles: list[Tile] = []
    records: list[ImageRecord] = []
    counts: Counter[str] = Counter()
    with atomic_output_dir(target) as staging:
        (staging / IMAGES).mkdir()
        (staging / LABELS).mkdir()
        chunks = [_Chunk(root, staging, jobs[i : i + _CHUNK]) for i in range(0, len(jobs), _CHUNK)]
        for done in parallel_map(_write_chunk, chunks, max(1, workers)):  # in order: the output does not depend on workers
            tiles += done.tiles
            records += done.records
            counts += done.counts
        report = TileReport(
            images=len(manifest.images),
            tiles=len(tiles),
            tiles_with_boxes=sum(1 for t in tiles if t.boxes),
            empty_tiles=len(empty),
            empty_tiles_kept=len(keep_empty),
            boxes=sum(len(p.boxes) for p in plans),
            box_tiles=counts["box_tiles"],
            boxes_clipped=counts["clipped"],
            boxes_lost=sum(p.lost for p in plans),
        )
        out = Manifest(
            names=manifest.names, images=records, source_format=manifest.source_format, stats={**manifest.stats, "tiling": report.to_json()}
        )
        out.write(staging)
        doc: dict[str, Any] = {
            "version": TILES_VERSION,
            "settings": {**asdict(settings), "overlap_pixels": settings.overlap_pixels},
            "report": report.to_json(),
            "tiles": [asdict(t) for t in tiles],
        }
        (staging / TILES_JSON).write_text(json_lines(doc))
    return report


@dataclass
class _ImagePlan:
    boxes: npt.NDArray[np.float64]  # (N, 4) xyxy source pixels
    classes: npt.NDArray[np.int64]
    attributes: npt.NDArray[np.int64] | None  # (N, len(ATTRIBUTE_COLUMNS)) or None
    # per window: (window, kept box indices, kept boxes in window pixels, clipped flags)
    windows: list[tuple[tuple[int, int, int, int], npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.bool_]]]
    lost: int  # boxes no window keeps


def _plan_image(root: Path, record: ImageRecord, settings: TileSettings) -> _ImagePlan:
    rows = _read_rows(root / record.label) if record.label_sha256 else np.zeros((0, 5))
    classes = rows[:, 0].astype(np.int64)
    boxes = yolo_to_xyxy(rows[:, 1:], record.width, record.height).reshape(-1, 4)
    attributes = _read_attributes(root, record, len(rows))
    windows = [(w, *boxes_in_window(boxes, w, settings.min_visible)) for w in tile_windows(record.width, record.height, settings)]
    seen = np.zeros(len(boxes), dtype=bool)
    for _, kept, _, _ in windows:
        seen[kept] = True
    return _ImagePlan(boxes=boxes, classes=classes, attributes=attributes, windows=windows, lost=int((~seen).sum()))


def _read_rows(path: Path) -> npt.NDArray[np.float64]:
    """(N, 5) class cx cy w h of a label file (validated upstream)."""
    try:
        rows = [line.split()[:5] for line in path.read_text().splitlines() if line.strip()]
        return np.array(rows, dtype=np.float64).reshape(-1, 5)
    except (OSError, ValueError) as e:
        raise DataValidationError(f"cannot read the label file {path.name}: {e}", hint="validate the dataset before tiling it") from None


def _read_attributes(root: Path, record: ImageRecord, rows: int) -> npt.NDArray[np.int64] | None:
    path = attributes_file(root, record.image)
    if not path.is_file():
        return None
    values = np.array([line.split() for line in path.read_text().splitlines() if line.strip()], dtype=np.int64)
    return values.reshape(-1, len(ATTRIBUTE_COLUMNS)) if len(values) == rows else None  # a side file that disagrees is left behind


@dataclass
class _Chunk:
    """A worker's share: images to cut, and what it made of them."""

    root: Path
    staging: Path
    jobs: list[tuple[ImageRecord, _ImagePlan, list[int]]]
    tiles: list[Tile] = field(default_factory=list)
    records: list[ImageRecord] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


def _write_chunk(chunk: _Chunk) -> _Chunk:
    for record, plan, wanted in chunk.jobs:
        _write_tiles(chunk.root, chunk.staging, record, plan, wanted, chunk)
    chunk.jobs = []  # the plans need not travel back
    return chunk


def _write_tiles(root: Path, staging: Path, record: ImageRecord, plan: _ImagePlan, wanted: list[int], out: _Chunk) -> None:
    from PIL import Image  # heavy; only the tiler needs it

    stem, suffix = image_stem(record.image), Path(record.image).suffix
    with Image.open(root / record.image) as image:
        image.load()
        for k in wanted:
            (x, y, w, h), kept, inside, clipped = plan.windows[k]
            name = f"{stem}__x{x}_y{y}{suffix}"
            data = _encode(image.crop((x, y, x + w, y + h)), image.format or "PNG")
            (staging / IMAGES / name).write_bytes(data)
            rows = np.column_stack((plan.classes[kept], xyxy_to_yolo(inside, w, h))).ravel().tolist()
            label = ((_LABEL_ROW * len(kept)) % tuple(rows)).encode()
            (staging / LABELS / f"{Path(name).stem}.txt").write_bytes(label)
            if plan.attributes is not None:
                (staging / ATTRIBUTES).mkdir(exist_ok=True)
                side = ((ATTRIBUTE_ROW * len(kept)) % tuple(plan.attributes[kept].ravel().tolist())).encode()
                attributes_file(staging, name).write_bytes(side)
            out.tiles.append(Tile(image=f"{IMAGES}/{name}", source=record.image, x=x, y=y, width=w, height=h, boxes=len(kept)))
            out.records.append(
                ImageRecord(
                    image=f"{IMAGES}/{name}",
                    label=f"{LABELS}/{Path(name).stem}.txt",
                    width=w,
                    height=h,
                    sha256=hashlib.sha256(data).hexdigest(),
                    label_sha256=hashlib.sha256(label).hexdigest(),
                    boxes=len(kept),
                    group=record.group or group_of(stem),  # the image's group (split.resolve_group): its tiles stay on one side
                    source=record.image,
                )
            )
            out.counts["box_tiles"] += len(kept)
            out.counts["clipped"] += int(clipped.sum())


def _encode(image: Any, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, fmt, quality=_JPEG_QUALITY)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()
