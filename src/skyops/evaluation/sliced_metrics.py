"""Full frame against sliced inference, scored the same way: COCO AP, AP50, and both on small objects (area < 32²).

Both sides are predictions of one model through the same letterbox and NMS (the server's,
skyops.serving.sliced), so the difference is the slicing alone; Ultralytics' validator (the document's
`metrics`) batches and letterboxes differently and is not one of the two sides. COCO's area ranges are in
original pixels: "small" is area < 32² (faster-coco-eval's APs). `ap50_small` is the AP at IoU 0.50 on
small objects, read from COCOeval's precision array (it has no summary of its own): small objects are
what slicing is for, and at 6-20 px the 0.50:0.95 average is dominated by a pixel's localisation error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KEYS = ("ap", "ap50", "ap_small", "ap50_small")


@dataclass(frozen=True, slots=True)
class FrameBoxes:
    """One image's ground truth and predictions, xyxy in original pixels."""

    gt_boxes: np.ndarray  # (M, 4)
    gt_classes: np.ndarray  # (M,) int
    boxes: np.ndarray  # (N, 4)
    scores: np.ndarray  # (N,)
    classes: np.ndarray  # (N,) int
    shape: tuple[int, int]  # (height, width)


def _quiet(*_: object) -> None:
    return None


def small_object_metrics(images: Sequence[FrameBoxes], classes: int) -> dict[str, float | None]:
    """COCO AP, AP50, APs and AP50 on small objects (None where nothing is there to score)."""
    from faster_coco_eval import COCO, COCOeval_faster  # C++ extension; only loaded to evaluate

    ground_truth: list[dict[str, object]] = []
    detections: list[dict[str, object]] = []
    for image_id, image in enumerate(images, 1):
        for (x0, y0, x1, y1), cls in zip(image.gt_boxes.tolist(), image.gt_classes.tolist(), strict=True):
            w, h = x1 - x0, y1 - y0
            ground_truth.append(
                {
                    "id": len(ground_truth) + 1,
                    "image_id": image_id,
                    "category_id": cls + 1,
                    "bbox": [x0, y0, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for (x0, y0, x1, y1), score, cls in zip(image.boxes.tolist(), image.scores.tolist(), image.classes.tolist(), strict=True):
            detections.append({"image_id": image_id, "category_id": cls + 1, "bbox": [x0, y0, x1 - x0, y1 - y0], "score": score})
    if not ground_truth:
        return dict.fromkeys(KEYS)
    dataset = {
        "images": [{"id": i, "height": image.shape[0], "width": image.shape[1]} for i, image in enumerate(images, 1)],
        "annotations": ground_truth,
        "categories": [{"id": c + 1, "name": str(c)} for c in range(classes)],
    }
    gt_api = COCO(dataset, print_function=_quiet)
    evaluator = COCOeval_faster(gt_api, gt_api.loadRes(detections) if detections else COCO(), "bbox", print_function=_quiet)
    evaluator.params.catIds = list(range(1, classes + 1))
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = [float(v) for v in evaluator.stats]
    precision = np.asarray(evaluator.eval["precision"])  # (T IoUs, R recalls, K classes, A areas: all/small/medium/large, M maxDets)
    small50 = precision[0, :, :, 1, -1]
    valid = small50[:, (small50 > -1).all(axis=0)]  # classes with small ground truth
    found = {"ap": stats[0], "ap50": stats[1], "ap_small": stats[3], "ap50_small": float(valid.mean()) if valid.size else -1.0}
    return {key: (round(value, 6) if value >= 0 else None) for key, value in found.items()}


def ratio(sliced: float | None, full: float | None) -> float | None:
    """sliced / full, None when undefined (full 0 or missing)."""
    if sliced is None or not full:
        return None
    return round(sliced / full, 4)
