"""One pass of Ultralytics' validator, keeping its numbers and every image's boxes.

Why hook the validator rather than run `model.predict`: Ultralytics scores predictions in its
letterboxed batch coordinates (rect batches, its own NMS settings and max_det) and keeps no per-box
record. A separate predict pass would letterbox and batch differently and give other boxes;
recording inside `update_metrics` keeps exactly the boxes it scored, in the frame it matched them in,
so the all-sizes slice reproduces its mAP. The same boxes mapped back to the original image (where
sizes, regions, COCO's area ranges and drawings are defined) are kept beside them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyops.errors import ConfigError
from skyops.evaluation.detmetrics import ImageBoxes, box_area
from skyops.evaluation.scored import ScoredImage

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # R, G, B: OpenCV's RGB2GRAY, as the profile step's brightness


@dataclass(kw_only=True)
class ValidationRun:
    """Ultralytics' own numbers, and the boxes it scored (`images`, in the order it read them)."""

    metrics: dict[str, float]  # map50, map50_95, precision, recall
    per_class: list[dict[str, Any]]  # one entry per class id, in id order
    speed_ms: dict[str, float]  # preprocess, inference, postprocess: ms per image
    instances: int
    device: str = ""
    threads: int = 0  # torch CPU threads the validator ran on
    images: list[ScoredImage] = field(default_factory=list)
    unaligned: int = 0  # images whose attribute rows did not match their ground truth (left without attributes)


def run_validation(
    weights: str | os.PathLike[str],
    data_yaml: str | os.PathLike[str],
    *,
    split: str,
    imgsz: int,
    batch: int,
    conf: float,
    iou: float,
    device: str,
    names: list[str],
    state_dir: str | os.PathLike[str],
    attributes: Mapping[str, np.ndarray] | None = None,
    threads: int = 0,
) -> ValidationRun:
    """Run Ultralytics' validator once, keeping its numbers and every image's boxes.

    Args:
        attributes: box attributes by image file name, one row per label row (skyops.data.attributes);
            an image whose rows do not match the ground truth Ultralytics read is left without.
        threads: torch CPU threads; 0 = every usable core (Ultralytics alone takes cores - 1).
        (the others: see skyops.training.evaluate.evaluate)
    """
    from skyops.training.threads import pin_threads, resolve_threads, torch_threads
    from skyops.training.ultra import import_ultralytics

    import_ultralytics(Path(state_dir))
    from ultralytics import YOLO  # heavy (torch); imported offline above

    model = YOLO(str(weights))
    if model.task != "detect":
        raise ConfigError(f"weights {weights} are a {model.task!r} model; evaluation needs a 'detect' model")
    if len(model.names) != len(names):
        raise ConfigError(
            f"names has {len(names)} classes but the model {weights} predicts {len(model.names)}: {list(model.names.values())}",
            hint="pass the class names of the dataset the model was trained on",
        )
    run = ValidationRun(metrics={}, per_class=[], speed_ms={}, instances=0, threads=resolve_threads(threads))
    pin_threads(model, run.threads)  # the validator's select_device sets cores - 1; ours wins (threads.py)
    # Ultralytics' scratch output (save dir, never plots here) goes to a folder removed afterwards.
    with tempfile.TemporaryDirectory(prefix="skyops-eval-") as scratch, torch_threads(run.threads):
        result = model.val(
            validator=_recording_validator(run, attributes or {}),
            data=str(data_yaml),
            split=split,
            imgsz=imgsz,
            batch=batch,
            conf=conf,
            iou=iou,
            device=device,
            plots=False,
            save_json=False,
            project=scratch,
            name="val",
            exist_ok=True,
            verbose=False,
        )
    box = result.box
    run.metrics = {"map50": float(box.map50), "map50_95": float(box.map), "precision": float(box.mp), "recall": float(box.mr)}
    counts = np.asarray(result.nt_per_class, dtype=int)
    run.instances = int(counts.sum())
    row_of = {int(c): i for i, c in enumerate(box.ap_class_index)}
    for class_id, name in enumerate(names):
        instances = int(counts[class_id]) if class_id < len(counts) else 0
        entry: dict[str, Any] = {"class_id": class_id, "name": name, "instances": instances}
        if class_id in row_of and instances:
            p, r, ap50, ap = box.class_result(row_of[class_id])
            entry |= {"ap50": float(ap50), "ap50_95": float(ap), "precision": float(p), "recall": float(r)}
        else:  # no ground truth of this class in the split: AP is undefined
            entry |= {"ap50": None, "ap50_95": None, "precision": None, "recall": None}
        run.per_class.append(entry)
    run.speed_ms = {key: float(result.speed[key]) for key in ("preprocess", "inference", "postprocess")}
    return run


def _recording_validator(run: ValidationRun, attributes: Mapping[str, np.ndarray]) -> type:
    """A DetectionValidator that also records each image into `run` (see the module docstring).

    Per image it keeps the boxes in the letterboxed frame (matching) and in original pixels (clipped
    to the image, as Ultralytics maps them back), and the image's mean gray level, measured on the
    network input without its letterbox padding.
    """
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils import ops

    def as_numpy(values: Any, shape: tuple[int, ...]) -> np.ndarray:
        return values.detach().cpu().numpy().astype(np.float64).reshape(shape)  # astype copies

    def original(boxes: Any, prepared: dict[str, Any]) -> np.ndarray:
        scaled = ops.scale_boxes(prepared["imgsz"], boxes.clone(), prepared["ori_shape"], ratio_pad=prepared["ratio_pad"])
        return as_numpy(scaled, (-1, 4))

    def brightness(image: Any, prepared: dict[str, Any]) -> float:
        (gain_h, gain_w), (pad_w, pad_h) = prepared["ratio_pad"]
        height, width = prepared["ori_shape"]
        top, left = round(pad_h), round(pad_w)
        content = image[
            :, top : top + max(1, round(height * gain_h)), left : left + max(1, round(width * gain_w))
        ]  # (3, h, w) RGB in [0, 1]
        weights = content.new_tensor(GRAY_WEIGHTS).view(3, 1, 1)
        return float((content.float() * weights).sum(dim=0).mean()) * 255

    class RecordingValidator(DetectionValidator):
        def update_metrics(self, preds: list[dict[str, Any]], batch: dict[str, Any]) -> None:
            run.device = str(self.device)
            for si, pred in enumerate(preds):
                prepared = self._prepare_batch(si, batch)
                gt_xyxy, pred_xyxy = original(prepared["bboxes"], prepared), original(pred["bboxes"], prepared)
                name = Path(prepared["im_file"]).name
                found = attributes.get(name)
                if found is not None and len(found) != len(gt_xyxy):  # Ultralytics dropped or merged a row
                    run.unaligned += 1
                    found = None
                run.images.append(
                    ScoredImage(
                        name=name,
                        path=str(prepared["im_file"]),
                        shape=(int(prepared["ori_shape"][0]), int(prepared["ori_shape"][1])),
                        boxes=ImageBoxes(
                            gt_boxes=as_numpy(prepared["bboxes"], (-1, 4)),
                            gt_classes=as_numpy(prepared["cls"], (-1,)).astype(int),
                            pred_boxes=as_numpy(pred["bboxes"], (-1, 4)),
                            pred_classes=as_numpy(pred["cls"], (-1,)).astype(int),
                            pred_scores=as_numpy(pred["conf"], (-1,)),
                            gt_areas=box_area(gt_xyxy),
                            pred_areas=box_area(pred_xyxy),
                        ),
                        gt_xyxy=gt_xyxy,
                        pred_xyxy=pred_xyxy,
                        brightness=brightness(batch["img"][si], prepared),
                        attributes=found,
                    )
                )
            super().update_metrics(preds, batch)

    return RecordingValidator
