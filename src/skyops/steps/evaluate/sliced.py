"""The evaluate step's `sliced` section: the same weights on the same split, full frame against sliced, side by side.

Why here (the steps layer): slicing runs the network through the server's letterbox, NMS and slicer
(skyops.serving.sliced) on the trained best.pt (the torch backend), and scores with
skyops.evaluation.sliced_metrics; the training layer, below serving, cannot import the slicer, and the
evaluation layer runs no model. The section lands in evaluation.json as `sliced` and in report.html;
the document's `metrics` (Ultralytics' validator, read by the gates) are untouched.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MAX_DET = 300  # Ultralytics' validation max_det


def sliced_section(
    weights: Path,
    dataset: Path,
    images: Sequence[str],
    classes: int,
    *,
    imgsz: int,
    conf: float,
    iou: float,
    size: int,
    overlap: float,
    merge: str,
    state_dir: Path,
) -> dict[str, Any]:
    """Run `weights` on `images` (paths under `dataset`) unsliced and sliced; metrics and latency of both.

    Raises:
        ConfigError: the slice settings are invalid, or an image would make too many windows.
    """
    import cv2

    from skyops.errors import ConfigError, DataValidationError
    from skyops.evaluation.sliced_metrics import FrameBoxes, ratio, small_object_metrics
    from skyops.serving.backends import TorchBackend, cpu_count
    from skyops.serving.model import Artifact
    from skyops.serving.sliced import MergeKind, SliceLimitError, SliceSettings, detect_sliced

    try:
        settings = SliceSettings(size=size, overlap=overlap, merge=MergeKind(merge))
    except ValueError as e:
        raise ConfigError(
            f"evaluate's slice settings: {e}", hint="slice_size 0 (off) or the model's imgsz, slice_overlap 0..0.75"
        ) from None
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    backend = TorchBackend(Artifact(weights, digest), max(1, cpu_count() - 1), state_dir)
    frames: dict[str, list[FrameBoxes]] = {"full_frame": [], "sliced": []}
    seconds = {"full_frame": [0.0, 0.0], "sliced": [0.0, 0.0]}  # wall, CPU
    runs = 0
    for name in images:
        image = cv2.imread(str(dataset / name), cv2.IMREAD_COLOR)
        if image is None:
            raise DataValidationError(f"{dataset / name} is not a readable image", hint="run the validate step on the dataset")
        height, width = image.shape[:2]
        gt_boxes, gt_classes = _labels(dataset / "labels" / f"{Path(name).stem}.txt", width, height)
        for side, chosen in (("full_frame", SliceSettings(size=0)), ("sliced", settings)):
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                found = detect_sliced(image, backend.infer, imgsz, chosen, conf=conf, iou=iou, max_det=MAX_DET)
            except SliceLimitError as e:
                raise ConfigError(f"{name}: {e}", hint="a larger slice_size") from None
            seconds[side][0] += time.perf_counter() - wall
            seconds[side][1] += time.process_time() - cpu
            if side == "sliced":
                runs += found.runs
            d = found.detections
            frames[side].append(FrameBoxes(gt_boxes, gt_classes, d.boxes, d.scores, d.classes, (height, width)))
    count = max(len(images), 1)
    section: dict[str, Any] = {
        "settings": {"size": size, "overlap": overlap, "merge": merge, "imgsz": imgsz, "conf": conf, "iou": iou, "backend": "torch"},
        "images": len(images),
    }
    for side in ("full_frame", "sliced"):
        section[side] = {
            **small_object_metrics(frames[side], classes),
            "ms_per_image": round(seconds[side][0] / count * 1000, 2),
            "cpu_ms_per_image": round(seconds[side][1] / count * 1000, 2),
        }
    section["sliced"]["runs_per_image"] = round(runs / count, 2)
    section["ratio"] = {key: ratio(section["sliced"][key], section["full_frame"][key]) for key in ("ap50", "ap50_small")}
    return section


def _labels(path: Path, width: int, height: int) -> tuple[Any, Any]:
    """(M, 4) xyxy px and (M,) classes of a YOLO label file (missing: no objects)."""
    import numpy as np

    rows = np.loadtxt(path, ndmin=2) if path.is_file() and path.stat().st_size else np.zeros((0, 5))
    cls, cx, cy, w, h = rows.T
    boxes = np.stack([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], axis=1)
    return boxes, cls.astype(np.int64)
