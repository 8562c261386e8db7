"""Everything the evaluation adds to Ultralytics' own numbers, from the images it scored, in one call.

`analyse` returns the document's sections (`coco`, `slices`, `weakest_slice`, `confusion`,
`worst_images`) and what the HTML report draws besides (COCO's curves, the worst images' errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from skyops.evaluation import slices as slicing
from skyops.evaluation.coco import MAX_DETECTIONS, CocoResult, coco_metrics
from skyops.evaluation.mistakes import CONFUSION_IOU, ImageErrors, confusion_matrix, image_errors, worst_images
from skyops.evaluation.scored import ScoredImage


@dataclass(frozen=True, kw_only=True)
class Analysis:
    sections: dict[str, Any]  # coco, slices, weakest_slice, confusion, worst_images: as the document holds them
    coco: CocoResult
    worst: list[ImageErrors]


def analyse(
    images: Sequence[ScoredImage],
    names: Sequence[str],
    *,
    attribute_columns: Sequence[str] = (),
    min_slice_instances: int,
    report_conf: float,
    worst_count: int,
) -> Analysis:
    """Slices, COCO metrics, confusion matrix and worst images of the evaluated images.

    Args:
        images: what the validator scored.
        names: class names by id.
        attribute_columns: the columns of the images' box attributes (empty: none).
        min_slice_instances: a slice needs this many ground-truth boxes to be the weakest.
        report_conf: the operating point (confidence) of the confusion matrix and the worst images.
        worst_count: how many worst images to keep.
    """
    table = slicing.to_json(slicing.slice_table(images, names, attribute_columns))
    coco = coco_metrics(images, len(names))
    worst = worst_images([image_errors(image, report_conf) for image in images], worst_count)
    matrix = confusion_matrix(images, len(names), conf=report_conf, iou=CONFUSION_IOU)
    sections = {
        "coco": {**coco.summary, "max_detections": MAX_DETECTIONS},
        "slices": table,
        "weakest_slice": slicing.weakest_slice(table, min_slice_instances),
        "confusion": {"conf": report_conf, "iou": CONFUSION_IOU, "labels": [*names, "background"], "matrix": matrix.tolist()},
        "worst_images": [errors.to_json() for errors in worst],
    }
    return Analysis(sections=sections, coco=coco, worst=worst)
