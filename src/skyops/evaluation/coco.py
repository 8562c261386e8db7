"""The standard COCO detection metrics, from faster-coco-eval (a maintained C++ port of pycocotools' COCOeval).

Why beside Ultralytics' numbers: published results (VisDrone-DET papers, detector zoos) quote COCO's
AP, AP50, AP75, APs/APm/APl and AR, which differ from Ultralytics' mAP in method: COCO samples the
precision envelope at 101 recall points as a step function (Ultralytics interpolates linearly and
integrates with the trapezoid rule), keeps the 100 most confident detections per image and class, and
matches each detection in confidence order. Ground truth and detections are given in pixels of the
original image (COCO's area ranges are defined there): small area <= 32², medium 32²-96², large > 96²,
COCO's own closed ranges.

Note for VisDrone: its official toolkit scores up to 500 detections per image; COCO's 100 is used here,
as by the COCO-style figures most papers report. Ignored regions (VisDrone category 0) are not used:
the converter drops them by default (skyops.data.formats.visdrone).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skyops.evaluation.scored import ScoredImage

# COCOeval.stats, in its order (maxDets 1, 10, 100; AP and the area ranges at 100 detections).
COCO_KEYS = ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large")
MAX_DETECTIONS = 100  # per image and class, COCO's default


@dataclass(frozen=True, kw_only=True)
class CocoResult:
    """COCO's summary, and its precision/recall curves for the report.

    Attributes:
        summary: COCO_KEYS -> value in [0, 1], or None where COCO reports -1 (nothing to score, e.g.
            no large object in the data).
        precision: (101, K) precision at COCO's recall points, IoU 0.50, all areas, 100 detections,
            one column per class id; -1 where the class has no ground truth.
        recall_points: (101,) 0.00, 0.01, ..., 1.00.
    """

    summary: dict[str, float | None]
    precision: np.ndarray
    recall_points: np.ndarray


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    return np.concatenate((xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]), axis=1)


def coco_metrics(images: Sequence[ScoredImage], classes: int) -> CocoResult:
    """Run COCOeval (bbox) on the evaluated images.

    Args:
        images: the evaluated images (original-pixel boxes are used).
        classes: number of classes of the model; class id c is COCO category c + 1.

    Returns:
        The summary and the curves. With no ground truth at all, every value is None.
    """
    from faster_coco_eval import COCO, COCOeval_faster  # C++ extension; only loaded to evaluate

    def quiet(*_: object) -> None:  # COCOeval narrates every phase
        return None

    ground_truth: list[dict[str, object]] = []
    detections: list[dict[str, object]] = []
    for image_id, image in enumerate(images, 1):
        gt = _xywh(image.gt_xyxy).tolist()
        for box, cls in zip(gt, image.boxes.gt_classes.tolist(), strict=True):
            ground_truth.append(
                {
                    "id": len(ground_truth) + 1,
                    "image_id": image_id,
                    "category_id": cls + 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
        pred = _xywh(image.pred_xyxy).tolist()
        for box, cls, score in zip(pred, image.boxes.pred_classes.tolist(), image.boxes.pred_scores.tolist(), strict=True):
            detections.append({"image_id": image_id, "category_id": cls + 1, "bbox": box, "score": score})
    recall_points = np.linspace(0.0, 1.0, 101)
    if not ground_truth:
        return CocoResult(summary=dict.fromkeys(COCO_KEYS), precision=np.full((101, classes), -1.0), recall_points=recall_points)
    dataset = {
        "images": [{"id": i, "height": image.shape[0], "width": image.shape[1]} for i, image in enumerate(images, 1)],
        "annotations": ground_truth,
        "categories": [{"id": c + 1, "name": str(c)} for c in range(classes)],
    }
    gt_api = COCO(dataset, print_function=quiet)
    evaluator = COCOeval_faster(gt_api, gt_api.loadRes(detections), "bbox", print_function=quiet)
    evaluator.params.catIds = list(range(1, classes + 1))  # every class, so precision has one column per class id
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = [float(v) for v in evaluator.stats]
    precision = np.asarray(evaluator.eval["precision"])  # (T, R, K, A, M)
    return CocoResult(
        summary={key: (value if value >= 0 else None) for key, value in zip(COCO_KEYS, stats, strict=True)},
        precision=precision[0, :, :, 0, -1],
        recall_points=recall_points,
    )
