"""Sliced inference for small objects: the frame cut into overlapping windows at the model's input size, plus the full frame, merged.

A 1536 px drone frame letterboxed to a 256 px model shrinks a 12 px car to 2 px: the network cannot see it.
Cut into windows of the model's own size, each object reaches the network at its native resolution;
the full frame still runs too (large objects that no window holds whole). Every window's detections are
mapped back to frame pixels (an offset: a window of the input size is not resized) and merged:

    nms   greedy, class-aware: of boxes overlapping a better one by more than `match`, only the better is kept.
    nmm   greedy, class-aware non-maximum *merging* (sahi's GREEDYNMM): the better box grows to the union of
          the boxes it matches, keeping its score; a car cut by a window's edge comes back whole.

Two boxes are the same object only when they also have the same extent: neither more than SAME_EXTENT times the
other's area. Without that rule, at a low confidence threshold a large, weak box around an 11 px car matched it
by IoS 1.0, and NMM grew the car's box into it: 228 px boxes (the median over a 1536 px test frame, measured by
benchmarks/sliced_inference.py), small-object AP50 0.000 with NMM against 0.296 with NMS.

"Overlap" between detections is intersection over the smaller box (IoS), not IoU: half a car against the
whole car has IoU 0.5 but IoS 1.0, so the piece a window cut off is recognised as the same object.

Why hand-written rather than a library, measured (`benchmarks/sliced_inference.py --compare-libraries`; tables in
docs/small-objects.md). supervision 0.31.2's `InferenceSlicer`, given the same callback (our letterbox, ONNX
Runtime, our postprocess), cuts the same 64 windows of a 1536 px frame (256 px, overlap 0.2) and returns the
same boxes with NMS (checked box for box); per frame both spend the same CPU (1.47-1.54 s of it in 64 network
runs: inference is the cost, ~23 ms CPU a window, on 2 cores at load 12). The merge is where they differ:
on 3000 candidates supervision's IoS NMS takes 1010 ms CPU (a full N x N matrix) against 262 ms here, its NMM
470 against 417. It also has no full-frame pass and no window limit, which we would wrap around it anyway.
sahi 0.12.8 wants a `DetectionModel` subclass around a model it loads itself and converts every box to
Python objects. Written here: ~100 lines of numpy on the server's own letterbox and postprocess, so the
answers of a sliced and an unsliced request are comparable box for box.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from skyops.serving.detect import CLASS_OFFSET, Detections, NmsKind, letterbox, postprocess

MAX_SLICES = 400  # windows per image (plus the full frame); past this a request or a setting is refused, never run silently
MAX_OVERLAP = 0.75  # beyond this the windows nearly repeat each other: more runs, no more coverage
MATCH = 0.5  # IoS above which two detections of a class are one object


class MergeKind(StrEnum):
    NMS = "nms"
    NMM = "nmm"


class SliceLimitError(ValueError):
    """The settings or the image would make more windows than the limit (the caller turns it into its own error)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SliceSettings:
    """How to slice. `size` 0 means no slicing (the full frame only)."""

    size: int  # window side in px (square); best the model's input size, so a window is not resized
    overlap: float = 0.2  # fraction of `size` neighbouring windows share, in [0, MAX_OVERLAP]
    merge: MergeKind = MergeKind.NMS  # NMM at a low confidence threshold grows boxes past their objects (docs/small-objects.md)
    match: float = MATCH  # IoS above which detections from different windows are one object
    full_frame: bool = True  # also run the whole frame letterboxed (large objects)
    max_slices: int = MAX_SLICES

    def __post_init__(self) -> None:
        problems = []
        if self.size < 0 or (0 < self.size < 32):
            problems.append(f"size={self.size}: expected 0 (off) or at least 32 px")
        if not (math.isfinite(self.overlap) and 0 <= self.overlap <= MAX_OVERLAP):
            problems.append(f"overlap={self.overlap}: expected a fraction in [0, {MAX_OVERLAP}]")
        if not (math.isfinite(self.match) and 0 < self.match <= 1):
            problems.append(f"match={self.match}: expected a number in (0, 1]")
        if self.max_slices < 1:
            problems.append(f"max_slices={self.max_slices}: expected at least 1")
        if problems:
            raise ValueError("invalid slice settings: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class SlicedResult:
    detections: Detections  # merged, in frame pixels, best first
    slices: int  # windows run, the full frame not counted
    runs: int  # network runs (slices + the full frame)


def _starts(length: int, size: int, stride: int) -> list[int]:
    """Window starts along one axis: every `stride` px, the last one flush with the far edge (no window hangs over)."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size, stride))
    return [*starts, length - size]


def slice_count(width: int, height: int, size: int, overlap: float) -> int:
    """How many windows `slice_windows` makes (without making them)."""
    stride = max(1, size - round(size * overlap))
    return len(_starts(width, size, stride)) * len(_starts(height, size, stride))


def slice_windows(width: int, height: int, settings: SliceSettings) -> np.ndarray:
    """(S, 4) int64 windows x0, y0, x1, y1 covering the frame, row by row; neighbours share `overlap * size` px.

    Raises:
        SliceLimitError: more than `settings.max_slices` windows.
    """
    size = settings.size
    count = slice_count(width, height, size, settings.overlap)
    if count > settings.max_slices:
        raise SliceLimitError(
            f"a {width}x{height} image makes {count} slices of {size} px at overlap {settings.overlap:g}, over the limit of {settings.max_slices}"
        )
    stride = max(1, size - round(size * settings.overlap))
    xs, ys = _starts(width, size, stride), _starts(height, size, stride)
    return np.array([(x, y, min(x + size, width), min(y + size, height)) for y in ys for x in xs], dtype=np.int64)


def ios_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) intersection over the smaller box's area, for xyxy boxes."""
    w = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    h = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    smaller = np.minimum(area_a[:, None], area_b[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(smaller > 0, w * h / smaller, 0.0)


SAME_EXTENT = 4.0  # a window's piece of an object is at least a quarter of it; a box around many objects is not


def merge(found: Detections, kind: MergeKind, match: float, max_det: int) -> Detections:
    """Merge detections of one frame from several windows (see the module docstring); best first, at most `max_det`.

    Greedy, one vectorised IoS row per kept box (no N x N matrix: a crowded frame has thousands of candidates).
    """
    if len(found.scores) == 0:
        return found
    order = np.argsort(-found.scores, kind="stable")
    boxes, scores, classes = found.boxes[order].astype(np.float64), found.scores[order], found.classes[order]
    shifted = boxes + (classes * CLASS_OFFSET)[:, None]  # classes apart: never matched with each other
    rest = np.arange(len(scores))
    kept: list[int] = []
    kept_boxes: list[np.ndarray] = []
    while rest.size and len(kept) < max_det:
        best = rest[0]
        area = (boxes[best, 2] - boxes[best, 0]) * (boxes[best, 3] - boxes[best, 1])
        areas = (boxes[rest, 2] - boxes[rest, 0]) * (boxes[rest, 3] - boxes[rest, 1])
        comparable = (areas <= SAME_EXTENT * area) & (area <= SAME_EXTENT * areas)
        same = (ios_matrix(shifted[best : best + 1], shifted[rest])[0] > match) & comparable
        same[0] = True  # the box itself, even an empty one
        box = boxes[best]
        if kind is MergeKind.NMM:
            members = boxes[rest[same]]
            box = np.concatenate([members[:, :2].min(0), members[:, 2:].max(0)])
        kept.append(int(best))
        kept_boxes.append(box)
        rest = rest[~same]
    return Detections(np.asarray(kept_boxes, np.float32).reshape(-1, 4), scores[kept], classes[kept])


def detect_sliced(
    image: np.ndarray,
    infer: Callable[[np.ndarray], np.ndarray],
    imgsz: int,
    settings: SliceSettings,
    *,
    conf: float,
    iou: float,
    max_det: int,
    nms: NmsKind = NmsKind.NUMPY,
) -> SlicedResult:
    """Detect on a (H, W, 3) uint8 BGR frame window by window (and whole), merged.

    Args:
        infer: one network run, (1, 3, imgsz, imgsz) float32 -> the raw (4 + nc, N) head (a `Backend.infer`).
        imgsz: the model's square input size.
        conf, iou, max_det, nms: as for an unsliced request, applied within each window.

    Raises:
        SliceLimitError: the frame would make more than `settings.max_slices` windows.
    """
    height, width = image.shape[:2]
    windows = slice_windows(width, height, settings) if settings.size else np.zeros((0, 4), np.int64)
    parts: list[Detections] = []
    if settings.full_frame or not len(windows):
        blob, box = letterbox(image, imgsz)
        parts.append(postprocess(infer(blob), box, conf=conf, iou=iou, max_det=max_det, nms=nms))
    for x0, y0, x1, y1 in windows.tolist():
        blob, box = letterbox(image[y0:y1, x0:x1], imgsz)
        found = postprocess(infer(blob), box, conf=conf, iou=iou, max_det=max_det, nms=nms)
        offset = np.array([x0, y0, x0, y0], np.float32)
        parts.append(Detections(found.boxes + offset, found.scores, found.classes))
    combined = Detections(
        np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]), np.concatenate([p.classes for p in parts])
    )
    merged = parts[0] if len(parts) == 1 else merge(combined, settings.merge, settings.match, max_det)  # one run: nothing to merge
    return SlicedResult(merged, len(windows), len(parts))
