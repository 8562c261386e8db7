"""Box maths on numpy arrays, vectorised over boxes. Pure functions, no I/O.

Three encodings of the same (N, 4) float array:
    xywh   top-left x, top-left y, width, height, in pixels (VisDrone, COCO, Ground Truth)
    xyxy   left, top, right, bottom, in pixels (Pascal VOC; what clipping works on)
    yolo   centre x, centre y, width, height, normalised by the image size to [0, 1]

Pixel coordinates are continuous: a box covering the whole W x H image is (0, 0, W, H) in xyxy.
Image sizes are scalars, or (N,) arrays giving each box its own image (to convert many images'
boxes in one call).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Boxes = npt.NDArray[np.float64]  # (N, 4)
Size = float | npt.NDArray[np.float64]  # pixels: a scalar, or (N,) one per box


def as_boxes(values: npt.ArrayLike) -> Boxes:
    """Return `values` as a float64 (N, 4) array; an empty input gives shape (0, 4)."""
    boxes = np.asarray(values, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4), dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"expected boxes of shape (N, 4), got {boxes.shape}")
    return boxes


def xywh_to_xyxy(boxes: npt.ArrayLike) -> Boxes:
    b = as_boxes(boxes)
    return np.column_stack((b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]))


def xyxy_to_xywh(boxes: npt.ArrayLike) -> Boxes:
    b = as_boxes(boxes)
    return np.column_stack((b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]))


def xyxy_to_yolo(boxes: npt.ArrayLike, width: Size, height: Size) -> Boxes:
    """Pixel xyxy -> normalised centre xywh for an image of `width` x `height` pixels."""
    b = as_boxes(boxes)
    return np.column_stack(
        (
            (b[:, 0] + b[:, 2]) / (2.0 * width),
            (b[:, 1] + b[:, 3]) / (2.0 * height),
            (b[:, 2] - b[:, 0]) / width,
            (b[:, 3] - b[:, 1]) / height,
        )
    )


def yolo_to_xyxy(boxes: npt.ArrayLike, width: Size, height: Size) -> Boxes:
    """Normalised centre xywh -> pixel xyxy for an image of `width` x `height` pixels."""
    b = as_boxes(boxes)
    half_w, half_h = b[:, 2] * (width / 2.0), b[:, 3] * (height / 2.0)
    cx, cy = b[:, 0] * width, b[:, 1] * height
    return np.column_stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h))


def xywh_to_yolo(boxes: npt.ArrayLike, width: Size, height: Size) -> Boxes:
    return xyxy_to_yolo(xywh_to_xyxy(boxes), width, height)


def yolo_to_xywh(boxes: npt.ArrayLike, width: Size, height: Size) -> Boxes:
    return xyxy_to_xywh(yolo_to_xyxy(boxes, width, height))


def clip_xyxy(boxes: npt.ArrayLike, width: Size, height: Size) -> tuple[Boxes, npt.NDArray[np.bool_]]:
    """Clip pixel xyxy boxes to the image [0, width] x [0, height].

    Returns:
        The clipped (N, 4) boxes and an (N,) mask of the boxes that changed. A box entirely
        outside the image collapses to zero width or height; drop those with `positive_area`.
    """
    b = as_boxes(boxes)
    high = np.stack(np.broadcast_arrays(width, height, width, height), axis=-1).astype(np.float64)  # (4,) or (N, 4)
    clipped = np.clip(b, 0.0, high)
    return clipped, np.any(clipped != b, axis=1)


def positive_area(boxes_xyxy: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """(N,) mask of boxes with right > left and bottom > top."""
    b = as_boxes(boxes_xyxy)
    return (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
