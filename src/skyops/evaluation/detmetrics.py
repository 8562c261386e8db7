"""Detection metrics in plain numpy: IoU, greedy matching, AP, and AP per object-size slice.

Ultralytics reports mAP over all boxes only; the size slices (COCO's small / medium / large) are
computed here, with the same method Ultralytics uses so that the all-sizes slice reproduces its
numbers (see docs/evaluation-schema.md):

- IoU thresholds 0.50:0.05:0.95 (10 values).
- Matching per image: predictions in descending confidence; at each threshold a prediction claims
  the unclaimed ground-truth box of its class with the highest IoU, and is a true positive when that
  IoU >= the threshold (Ultralytics' `match_predictions`, greedy variant).
- AP per class from the cumulative precision/recall curve: precision envelope, sampled by linear
  interpolation at 101 recall points, integrated with the trapezoid rule (Ultralytics' `compute_ap`).
  This is why a perfect detector scores 0.995, not 1.0: the curve drops to 0 at recall 1.
- mAP is the mean over classes that have at least one ground-truth box (in the slice).

Size slices follow COCO's `areaRng` semantics: ground truth outside the slice becomes an "ignore"
region; a prediction matched to an ignored box is dropped from the count, and an unmatched
prediction is dropped when its own area is outside the slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # (10,) as in Ultralytics' DetectionValidator.iouv
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # (101,) COCO's recall sampling
IOU_EPS = 1e-7  # Ultralytics' box_iou guard; keeps IoUs identical to its own
RECALL_EPS = 1e-16  # Ultralytics' ap_per_class guard

# COCO size thresholds on box area in pixels of the original image. Half-open [lo, hi) so every box
# is in exactly one slice (COCO's own ranges are closed and share their end points).
SIZE_SLICES: dict[str, tuple[float, float]] = {
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, math.inf),
}
ALL_SIZES = (0.0, math.inf)


@dataclass(frozen=True, kw_only=True)
class ImageBoxes:
    """Ground truth and predictions of one image.

    Boxes are xyxy in one pixel frame (the original image, or the letterboxed network input that
    Ultralytics matches in). Areas decide the size slice and are in pixels of the original image;
    when omitted they are the boxes' own areas (boxes already in original pixels).
    """

    gt_boxes: np.ndarray  # (M, 4) float
    gt_classes: np.ndarray  # (M,) int
    pred_boxes: np.ndarray  # (N, 4) float
    pred_classes: np.ndarray  # (N,) int
    pred_scores: np.ndarray  # (N,) float, confidence in [0, 1]
    gt_areas: np.ndarray | None = None  # (M,) px² of the original image
    pred_areas: np.ndarray | None = None  # (N,) px² of the original image

    def __post_init__(self) -> None:
        m, n = len(self.gt_classes), len(self.pred_classes)
        shapes = {
            "gt_boxes": (self.gt_boxes.shape, (m, 4)),
            "pred_boxes": (self.pred_boxes.shape, (n, 4)),
            "pred_scores": (self.pred_scores.shape, (n,)),
        }
        if self.gt_areas is not None:
            shapes["gt_areas"] = (self.gt_areas.shape, (m,))
        if self.pred_areas is not None:
            shapes["pred_areas"] = (self.pred_areas.shape, (n,))
        bad = [f"{name} has shape {got}, expected {want}" for name, (got, want) in shapes.items() if got != want]
        if bad:
            raise ValueError("ImageBoxes: " + "; ".join(bad))


@dataclass(frozen=True, kw_only=True)
class SliceMetrics:
    """AP of one size slice. `ap` is (K, 10): one row per class in `classes`, one column per IoU threshold."""

    classes: np.ndarray  # (K,) class ids with at least one ground-truth box in the slice
    ap: np.ndarray  # (K, 10)
    instances: int  # ground-truth boxes in the slice

    @property
    def map50(self) -> float | None:
        """Mean AP at IoU 0.5; None when the slice has no ground truth."""
        return float(self.ap[:, 0].mean()) if len(self.classes) else None

    @property
    def map50_95(self) -> float | None:
        """Mean AP over IoU 0.5:0.95; None when the slice has no ground truth."""
        return float(self.ap.mean()) if len(self.classes) else None


def box_area(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> (N,) areas; inverted boxes count as 0."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (M, 4) and (N, 4) xyxy boxes -> (M, N) in [0, 1]."""
    # width and height of the intersection as two (M, N) arrays: a third (M, N, 2) axis costs twice the time
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = width * height
    return inter / (box_area(a)[:, None] + box_area(b)[None, :] - inter + IOU_EPS)


def match_predictions(iou: np.ndarray, gt_ignore: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """Greedy matching of predictions (columns, in descending confidence) to ground truth (rows).

    Args:
        iou: (M, N) IoU, already 0 where the classes differ.
        gt_ignore: (M,) bool, ground truth that is only an ignore region (outside the size slice).
        thresholds: (T,) IoU thresholds.

    Returns:
        (tp, hit_ignored), both (N, T) bool: a true positive on a kept box, or a match to an ignored
        box. At each threshold a prediction takes the best unclaimed kept box, else the best
        unclaimed ignored box (COCO prefers kept boxes the same way); a match claims the box.
    """
    tp, hit_ignored = match_predictions_masks(iou, gt_ignore[None, :], thresholds)
    return tp[0], hit_ignored[0]


def match_predictions_masks(
    iou: np.ndarray, gt_ignore: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS
) -> tuple[np.ndarray, np.ndarray]:
    """`match_predictions` for S ignore masks at once: one pass over the predictions, numpy over (S, M, T).

    Why: every slice of the evaluation has its own ignore mask, and the greedy matching is a loop over
    predictions; running it once per slice would multiply that loop by the number of slices.

    Args:
        iou: (M, N) IoU, already 0 where the classes differ; columns in descending confidence.
        gt_ignore: (S, M) bool, per mask the ground truth that is only an ignore region.
        thresholds: (T,) IoU thresholds.

    Returns:
        (tp, hit_ignored), both (S, N, T) bool: for each mask, what `match_predictions` returns for it.
    """
    s, m, n, t = gt_ignore.shape[0], iou.shape[0], iou.shape[1], len(thresholds)
    tp = np.zeros((s, n, t), dtype=bool)
    hit_ignored = np.zeros((s, n, t), dtype=bool)
    claimed = np.zeros((s, m, t), dtype=bool)
    masks, columns = np.arange(s)[:, None], np.arange(t)[None, :]
    kept, ignored = ~gt_ignore[:, :, None], gt_ignore[:, :, None]  # (S, M, 1)
    close = iou >= thresholds.min()  # (M, N): only these pairs can ever match
    for j in np.flatnonzero(close.any(axis=0)):  # other predictions match nothing
        rows = np.flatnonzero(close[:, j])  # (R,) the few boxes this prediction may take
        available = np.where(claimed[:, rows], 0.0, iou[None, rows, j, None])  # (S, R, T)
        for pool, out in ((kept[:, rows], tp), (ignored[:, rows], hit_ignored)):
            open_ = ~(tp[:, j] | hit_ignored[:, j])[:, None, :]  # (S, 1, T): not matched yet at this threshold
            candidates = np.where(pool & open_, available, 0.0)
            best = candidates.argmax(axis=1)  # (S, T) best box per mask and threshold
            out[:, j] = candidates[masks, best, columns] >= thresholds
            claimed[masks, rows[best], columns] |= out[:, j]
    return tp, hit_ignored


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """AP of one precision/recall curve (points in descending confidence), Ultralytics' way.

    Sentinels (recall 0, precision 1) and (recall 1, precision 0) close the curve; the precision
    envelope (running max from the right) is sampled at 101 recall points by linear interpolation
    and integrated with the trapezoid rule.
    """
    if not len(recall):  # no predictions, nothing found (Ultralytics never scores this case and leaves AP 0)
        return 0.0
    r = np.concatenate(([0.0], recall, [recall[-1], 1.0]))
    p = np.concatenate(([1.0], precision, [0.0, 0.0]))
    envelope = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.trapezoid(np.interp(RECALL_POINTS, r, envelope), RECALL_POINTS))


def ap_per_class(
    tp: np.ndarray, ignored: np.ndarray, scores: np.ndarray, pred_classes: np.ndarray, gt_classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """AP per class and IoU threshold.

    Args:
        tp: (N, T) bool, prediction is a true positive at each threshold.
        ignored: (N, T) bool, prediction left out of the count at each threshold.
        scores: (N,) confidences. pred_classes: (N,) class ids.
        gt_classes: (M,) class ids of the counted ground truth.

    Returns:
        (classes (K,), ap (K, T)) for the K classes that have ground truth; a class without
        predictions has AP 0.
    """
    classes, counts = np.unique(gt_classes.astype(int), return_counts=True)
    ap = np.zeros((len(classes), tp.shape[1]))
    # numpy's default sort, as in Ultralytics: equal scores then fall in the same order as there.
    order = np.argsort(-scores)
    tp, ignored, pred_classes = tp[order], ignored[order], pred_classes[order]
    for k, (cls, n_gt) in enumerate(zip(classes, counts, strict=True)):
        of_class = pred_classes == cls
        class_tp, class_ignored = tp[of_class], ignored[of_class]  # (N_k, T): the class's predictions only
        for t in range(tp.shape[1]):
            hits = class_tp[~class_ignored[:, t], t]
            if not len(hits):
                continue
            tpc = np.cumsum(hits)
            fpc = np.cumsum(~hits)
            ap[k, t] = average_precision(tpc / (n_gt + RECALL_EPS), tpc / (tpc + fpc))
    return classes, ap


def slice_metrics(images: list[ImageBoxes], area_range: tuple[float, float] = ALL_SIZES) -> SliceMetrics:
    """AP over all images for ground truth whose area (pixels) lies in [lo, hi), COCO ignore rules."""
    lo, hi = area_range
    tps, ignores, scores, pred_classes, gt_classes = [], [], [], [], []
    for image in images:
        order = np.argsort(-image.pred_scores, kind="stable")
        boxes, classes = image.pred_boxes[order], image.pred_classes[order]
        gt_area = box_area(image.gt_boxes) if image.gt_areas is None else image.gt_areas
        pred_area = box_area(boxes) if image.pred_areas is None else image.pred_areas[order]
        gt_ignore = (gt_area < lo) | (gt_area >= hi)
        iou = box_iou(image.gt_boxes, boxes) * (image.gt_classes[:, None] == classes[None, :])
        tp, hit_ignored = match_predictions(iou, gt_ignore)
        outside = ((pred_area < lo) | (pred_area >= hi))[:, None]
        tps.append(tp)
        ignores.append(hit_ignored | (outside & ~tp))
        scores.append(image.pred_scores[order])
        pred_classes.append(classes)
        gt_classes.append(image.gt_classes[~gt_ignore])
    if not images:
        return SliceMetrics(classes=np.zeros(0, dtype=int), ap=np.zeros((0, len(IOU_THRESHOLDS))), instances=0)
    kept_gt = np.concatenate(gt_classes)
    classes, ap = ap_per_class(np.concatenate(tps), np.concatenate(ignores), np.concatenate(scores), np.concatenate(pred_classes), kept_gt)
    return SliceMetrics(classes=classes, ap=ap, instances=len(kept_gt))
