"""Small named fixtures for the evaluation maths: hand-made scenes, and Ultralytics imported offline once."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from skyops.evaluation.detmetrics import IOU_THRESHOLDS, ImageBoxes
from skyops.evaluation.scored import ScoredImage

Gt = tuple[int, float, float, float, float]  # class, x0, y0, x1, y1 (pixels)
Pred = tuple[int, float, float, float, float, float]  # class, score, x0, y0, x1, y1


def scored(
    gt: Sequence[Gt],
    preds: Sequence[Pred],
    *,
    shape: tuple[int, int] = (600, 600),
    brightness: float = 120.0,
    attributes: Sequence[Sequence[int]] | None = None,
    name: str = "scene.png",
    path: str = "",
) -> ScoredImage:
    """One image whose boxes are already in original pixels (the letterboxed frame is the same)."""
    gt_boxes = np.array([g[1:] for g in gt], dtype=float).reshape(-1, 4)
    pred_boxes = np.array([p[2:] for p in preds], dtype=float).reshape(-1, 4)
    boxes = ImageBoxes(
        gt_boxes=gt_boxes,
        gt_classes=np.array([g[0] for g in gt], dtype=int),
        pred_boxes=pred_boxes,
        pred_classes=np.array([p[0] for p in preds], dtype=int),
        pred_scores=np.array([p[1] for p in preds], dtype=float),
    )
    return ScoredImage(
        name=name,
        path=path,
        shape=shape,
        boxes=boxes,
        gt_xyxy=gt_boxes,
        pred_xyxy=pred_boxes,
        brightness=brightness,
        attributes=None if attributes is None else np.array(attributes, dtype=int).reshape(-1, 2),
    )


@pytest.fixture(scope="session")
def ultra_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dir for Ultralytics' offline settings (a process imports it once; a second prepared dir is accepted)."""
    return tmp_path_factory.mktemp("ultra-state")


@pytest.fixture(scope="session")
def ultralytics_reference(ultra_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Ultralytics' matching and AP functions, imported offline."""
    from skyops.training.ultra import import_ultralytics

    import_ultralytics(ultra_state)
    import torch
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import ap_per_class
    from ultralytics.utils.metrics import box_iou as torch_iou

    validator = DetectionValidator(save_dir=Path(tmp_path_factory.mktemp("val")))

    def reference(images: list[ImageBoxes]) -> tuple[np.ndarray, np.ndarray]:
        tps = []
        for image in images:
            if len(image.gt_classes) and len(image.pred_classes):
                iou = torch_iou(torch.tensor(image.gt_boxes), torch.tensor(image.pred_boxes))
                tps.append(validator.match_predictions(torch.tensor(image.pred_classes), torch.tensor(image.gt_classes), iou).numpy())
            else:
                tps.append(np.zeros((len(image.pred_classes), len(IOU_THRESHOLDS)), dtype=bool))
        cat = np.concatenate
        result = ap_per_class(
            cat(tps), cat([i.pred_scores for i in images]), cat([i.pred_classes for i in images]), cat([i.gt_classes for i in images])
        )
        return result[6], result[5]  # classes (K,), ap (K, 10)

    return reference
