"""Pre- and post-processing around the model: letterbox in, NMS and rescaling out. Pure numpy and OpenCV.

They follow Ultralytics' own predict path (LetterBox with auto=False, `non_max_suppression` with one
label per box, `scale_boxes`), rounding included, so the server answers what `YOLO(...).predict`
answers for the same weights (tests/serving compares them).

The model's raw head is (4 + nc, N): N candidate boxes as (cx, cy, w, h) in letterboxed pixels,
then one score per class. NMS is class-aware (a car does not suppress a person under it) and runs
in numpy by default; OpenCV's `NMSBoxesBatched` gives the same boxes (tested) and is the other
choice, measured in benchmarks/serve_load.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cv2
import numpy as np

PAD_VALUE = 114  # Ultralytics' letterbox grey
MAX_NMS = 30_000  # candidates kept for NMS, best first (Ultralytics' max_nms)
CLASS_OFFSET = 7680.0  # px added per class id so boxes of different classes never overlap (Ultralytics' max_wh)


class NmsKind(StrEnum):
    NUMPY = "numpy"
    OPENCV = "opencv"


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image of `width` x `height` was fitted into the square input: scale, then pad."""

    width: int
    height: int
    gain_x: float
    gain_y: float
    pad_x: int
    pad_y: int


@dataclass(frozen=True, slots=True)
class Detections:
    boxes: np.ndarray  # (K, 4) float32 xyxy in original-image pixels
    scores: np.ndarray  # (K,) float32, best first
    classes: np.ndarray  # (K,) int64 class ids


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Fit a (H, W, 3) uint8 BGR image into the (1, 3, size, size) float32 RGB 0..1 input the model takes."""
    height, width = image.shape[:2]
    r = min(size / height, size / width)
    new_w, new_h = max(round(width * r), 1), max(round(height * r), 1)
    if (new_w, new_h) != (width, height):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    if top or bottom or left or right:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    # One C++ call for BGR->RGB, HWC->CHW, uint8->float32 and /255.
    blob = cv2.dnn.blobFromImage(image, scalefactor=1 / 255, swapRB=True)
    return blob, Letterbox(width, height, new_w / width, new_h / height, left, top)


def postprocess(raw: np.ndarray, box: Letterbox, *, conf: float, iou: float, max_det: int, nms: NmsKind = NmsKind.NUMPY) -> Detections:
    """The detections of one image from the model's raw (4 + nc, N) output.

    Keeps boxes whose best class score is above `conf`, suppresses overlaps above `iou` within a class,
    keeps the `max_det` best and maps them back to the original image (clipped to it).
    """
    scores_by_class = raw[4:]  # (nc, N)
    classes = scores_by_class.argmax(0)
    scores = scores_by_class[classes, np.arange(raw.shape[1])]
    keep = scores > conf
    if not keep.any():
        return _empty()
    xywh, scores, classes = raw[:4, keep].T, scores[keep], classes[keep]
    if len(scores) > MAX_NMS:
        best = np.argsort(-scores, kind="stable")[:MAX_NMS]
        xywh, scores, classes = xywh[best], scores[best], classes[best]
    xyxy = np.empty_like(xywh)
    xyxy[:, :2] = xywh[:, :2] - xywh[:, 2:] / 2
    xyxy[:, 2:] = xywh[:, :2] + xywh[:, 2:] / 2
    kept = _nms_numpy(xyxy, scores, classes, iou, max_det) if nms is NmsKind.NUMPY else _nms_opencv(xyxy, scores, classes, iou, max_det)
    xyxy, scores, classes = xyxy[kept], scores[kept], classes[kept]
    xyxy[:, [0, 2]] = ((xyxy[:, [0, 2]] - box.pad_x) / box.gain_x).clip(0, box.width)
    xyxy[:, [1, 3]] = ((xyxy[:, [1, 3]] - box.pad_y) / box.gain_y).clip(0, box.height)
    return Detections(xyxy.astype(np.float32), scores.astype(np.float32), classes.astype(np.int64))


def _nms_numpy(xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """Greedy class-aware NMS: indices kept, best first. One vectorised IoU row per kept box."""
    boxes = xyxy + (classes * CLASS_OFFSET)[:, None]  # classes apart: they never overlap
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    while order.size and len(kept) < max_det:
        best, rest = order[0], order[1:]
        kept.append(best)
        w = (np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0])).clip(0)
        h = (np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1])).clip(0)
        inter = w * h
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[~(overlap > iou)]  # NaN (two empty boxes) suppresses nothing, as in torchvision
    return np.asarray(kept, dtype=np.int64)


def _nms_opencv(xyxy: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, max_det: int) -> np.ndarray:
    """The same with OpenCV's batched NMS (C++; boxes as x, y, w, h)."""
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).astype(np.float64)
    # top_k would cut the candidates before suppression, not the boxes kept: all go in, the best max_det come out.
    found: Any = cv2.dnn.NMSBoxesBatched(xywh, scores.astype(np.float32), classes.astype(np.int32), 0.0, float(iou))  # type: ignore[arg-type]
    kept = np.asarray(found, dtype=np.int64).reshape(-1)
    return kept[np.argsort(-scores[kept], kind="stable")][:max_det]


def _empty() -> Detections:
    return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
