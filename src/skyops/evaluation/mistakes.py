"""What the detector gets wrong at an operating point: the confusion matrix and the worst images.

mAP integrates over every confidence; a reviewer looks at what a deployed model does at one. Both
views here keep the predictions with confidence >= `conf` (Ultralytics' predict default, 0.25):

- Per image, true positives are matched as for mAP50 (same class, IoU >= 0.5, greedy in confidence
  order); false positives are the other kept predictions, false negatives the unmatched ground
  truth. An image's F1 = 2 TP / (2 TP + FP + FN); the worst images have the lowest F1 (most errors
  first on a tie). An image with neither ground truth nor kept predictions has nothing wrong.
- The confusion matrix matches regardless of class, as Ultralytics' does: pairs with IoU > `iou`
  (0.45), the highest IoU first, each box used once. Rows are the true class, columns the predicted
  one, with a last row and column for background: a missed object is (class, background), a false
  alarm (background, class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyops.evaluation.detmetrics import box_iou, match_predictions
from skyops.evaluation.scored import ScoredImage

REPORT_CONF = 0.25  # Ultralytics' predict default
CONFUSION_IOU = 0.45  # Ultralytics' ConfusionMatrix default
MATCH_IOU = np.array([0.5])


@dataclass(frozen=True, kw_only=True)
class ImageErrors:
    """One image at the operating point. `matched_gt` and `tp` are what the drawings colour."""

    image: ScoredImage
    kept: np.ndarray  # (N,) bool, predictions with confidence >= conf
    tp: np.ndarray  # (N,) bool, kept predictions that are true positives
    matched_gt: np.ndarray  # (M,) bool, ground truth found by one of them

    @property
    def counts(self) -> tuple[int, int, int]:
        """(tp, fp, fn)."""
        tp = int(self.tp.sum())
        return tp, int(self.kept.sum()) - tp, len(self.matched_gt) - int(self.matched_gt.sum())

    @property
    def f1(self) -> float | None:
        """None when the image has neither ground truth nor kept predictions."""
        tp, fp, fn = self.counts
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None

    def to_json(self) -> dict[str, Any]:
        tp, fp, fn = self.counts
        return {"image": self.image.name, "f1": self.f1, "tp": tp, "fp": fp, "fn": fn, "instances": len(self.matched_gt)}


def image_errors(image: ScoredImage, conf: float = REPORT_CONF) -> ImageErrors:
    """TP / FP / FN of one image at confidence >= `conf`, matched as for mAP50 (in the frame Ultralytics matched in)."""
    boxes = image.boxes
    kept = boxes.pred_scores >= conf
    tp = np.zeros(len(kept), dtype=bool)
    matched_gt = np.zeros(len(boxes.gt_classes), dtype=bool)
    index = np.flatnonzero(kept)
    index = index[np.argsort(-boxes.pred_scores[index], kind="stable")]
    if len(index) and len(matched_gt):
        iou = box_iou(boxes.gt_boxes, boxes.pred_boxes[index]) * (boxes.gt_classes[:, None] == boxes.pred_classes[index][None, :])
        hits = match_predictions(iou, np.zeros(len(matched_gt), dtype=bool), MATCH_IOU)[0][:, 0]
        tp[index[hits]] = True
        # the ground truth each hit claimed: replay the greedy choice on the hits alone (same order, same result)
        for j in np.flatnonzero(hits):
            row = np.where(matched_gt, -1.0, iou[:, j]).argmax()
            matched_gt[row] = True
    return ImageErrors(image=image, kept=kept, tp=tp, matched_gt=matched_gt)


def worst_images(errors: Sequence[ImageErrors], count: int) -> list[ImageErrors]:
    """The `count` images with the lowest F1 (then most errors, then name); images with nothing to judge are left out."""
    judged = [e for e in errors if e.f1 is not None]
    judged.sort(key=lambda e: (e.f1, -(e.counts[1] + e.counts[2]), e.image.name))
    return judged[:count]


def confusion_matrix(images: Sequence[ScoredImage], classes: int, *, conf: float = REPORT_CONF, iou: float = CONFUSION_IOU) -> np.ndarray:
    """(classes + 1, classes + 1) counts: rows the true class, columns the predicted one, background last."""
    background = classes
    matrix = np.zeros((classes + 1, classes + 1), dtype=np.int64)
    for image in images:
        boxes = image.boxes
        kept = boxes.pred_scores >= conf
        gt_cls, pred_cls = boxes.gt_classes, boxes.pred_classes[kept]
        gt_used = np.zeros(len(gt_cls), dtype=bool)
        pred_used = np.zeros(len(pred_cls), dtype=bool)
        if len(gt_cls) and len(pred_cls):
            overlap = box_iou(boxes.gt_boxes, boxes.pred_boxes[kept])  # (M, N), any class
            rows, cols = np.nonzero(overlap > iou)
            order = np.argsort(-overlap[rows, cols], kind="stable")
            rows, cols = rows[order], cols[order]
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):  # highest IoU first, each box once
                if not gt_used[r] and not pred_used[c]:
                    gt_used[r] = pred_used[c] = True
                    matrix[gt_cls[r], pred_cls[c]] += 1
        matrix[:, background] += np.bincount(gt_cls[~gt_used], minlength=classes + 1)  # missed
        matrix[background, :] += np.bincount(pred_cls[~pred_used], minlength=classes + 1)  # false alarms
    return matrix
