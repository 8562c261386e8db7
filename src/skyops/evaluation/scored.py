"""One evaluated image as the slices, the COCO metrics and the report need it.

Ultralytics' validator matches boxes in its letterboxed network frame; the evaluation keeps those boxes
(`boxes`, so its AP reproduces Ultralytics' own) and the same boxes mapped back to the original image
(`gt_xyxy`, `pred_xyxy`), where object sizes, image regions, COCO's area ranges and the drawings of
the worst images are defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyops.evaluation.detmetrics import ImageBoxes


@dataclass(frozen=True, kw_only=True)
class ScoredImage:
    """Ground truth and post-NMS predictions of one image, in both frames, with what slices it.

    Attributes:
        name: the image's file name under the dataset's images/ (unique in a dataset).
        path: where the image was read from during evaluation (for drawing; may be gone afterwards).
        shape: (height, width) of the original image in pixels.
        boxes: as Ultralytics matched them (letterboxed frame), with areas in original pixels.
        gt_xyxy: (M, 4) ground truth in original pixels, same rows as `boxes.gt_boxes`.
        pred_xyxy: (N, 4) predictions in original pixels, same rows as `boxes.pred_boxes`.
        brightness: mean gray level of the image, 0-255 (gray = 0.299 R + 0.587 G + 0.114 B, as OpenCV).
        attributes: (M, A) integers per ground-truth box (the dataset's attribute columns, e.g.
            VisDrone truncation and occlusion), -1 where unknown; None when the dataset has none
            for this image.
    """

    name: str
    path: str = ""
    shape: tuple[int, int]
    boxes: ImageBoxes
    gt_xyxy: np.ndarray
    pred_xyxy: np.ndarray
    brightness: float
    attributes: np.ndarray | None = None

    def __post_init__(self) -> None:
        m, n = len(self.boxes.gt_classes), len(self.boxes.pred_classes)
        bad = []
        if self.gt_xyxy.shape != (m, 4):
            bad.append(f"gt_xyxy has shape {self.gt_xyxy.shape}, expected {(m, 4)}")
        if self.pred_xyxy.shape != (n, 4):
            bad.append(f"pred_xyxy has shape {self.pred_xyxy.shape}, expected {(n, 4)}")
        if self.attributes is not None and (self.attributes.ndim != 2 or self.attributes.shape[0] != m):
            bad.append(f"attributes has shape {self.attributes.shape}, expected ({m}, columns)")
        if bad:
            raise ValueError(f"ScoredImage {self.name}: " + "; ".join(bad))
