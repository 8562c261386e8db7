"""The worst images with their ground truth and predictions drawn, as JPEG bytes for the report.

Colours (also the report's legend): ground truth found (green), ground truth missed (orange, thick),
true-positive prediction (blue, thin), false-positive prediction (red) with its class and confidence.
Only predictions at or above the report's confidence are drawn.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from skyops.evaluation.mistakes import ImageErrors

FOUND, MISSED, TRUE_POSITIVE, FALSE_POSITIVE = "#2ca02c", "#ff7f0e", "#1f77b4", "#d62728"
MAX_SIDE = 640  # px: the drawing's longest side
MAX_ENLARGE = 4.0  # a small image (a 96 px synthetic scene) is enlarged at most this much, so its boxes can be seen


def draw_errors(errors: ImageErrors, names: Sequence[str], *, max_side: int = MAX_SIDE) -> bytes:
    """The image at `errors.image.path` scaled to `max_side` (enlarged at most MAX_ENLARGE times), with its boxes drawn; JPEG bytes.

    Raises:
        OSError: the image cannot be read (the caller decides what the report shows instead).
    """
    from PIL import Image, ImageDraw  # only needed to draw

    image = errors.image
    with Image.open(image.path) as source:
        target = max_side / max(source.size)
        if target < 1:  # a JPEG decodes at 1/2, 1/4 or 1/8 scale directly: far less work for a large frame
            source.draft("RGB", (round(source.width * target), round(source.height * target)))
        picture = source.convert("RGB")
    scale = min(MAX_ENLARGE, max_side / max(picture.size))
    if scale != 1.0:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST)
    # boxes are in pixels of the original image as the validator read it: rescale to this picture
    sx, sy = picture.width / image.shape[1], picture.height / image.shape[0]
    factor = np.array([sx, sy, sx, sy])
    draw = ImageDraw.Draw(picture)
    for box, found in zip(image.gt_xyxy * factor, errors.matched_gt, strict=True):
        draw.rectangle(box.tolist(), outline=FOUND if found else MISSED, width=2 if found else 3)
    boxes = image.boxes
    for k in np.flatnonzero(errors.kept):
        box = (image.pred_xyxy[k] * factor).tolist()
        if errors.tp[k]:
            draw.rectangle(box, outline=TRUE_POSITIVE, width=1)
        else:
            draw.rectangle(box, outline=FALSE_POSITIVE, width=2)
            label = f"{names[boxes.pred_classes[k]]} {boxes.pred_scores[k]:.2f}"
            draw.text((box[0] + 2, max(0.0, box[1] - 11)), label, fill=FALSE_POSITIVE)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()
