"""Is the export the model it was made from, and is each optional variant worth keeping? Measured on a split.

The fp32 ONNX model is checked against the PyTorch model on every image of the split, fed the very
same input (one letterbox, skyops.serving.export_runtime), with two criteria:

1. mAP50 of each, scored by skyops.evaluation.detmetrics on the same NMS settings as the evaluate
   step (conf 0.001, IoU 0.7, 300 per image): |mAP50(onnx) - mAP50(torch)| <= 0.005.
2. The boxes agree. They are compared anchor by anchor: the raw head has one candidate box per
   output position, and position i is the same in both graphs, so every box is matched exactly,
   with no NMS in between whose knife edges (two near-equal scores, an IoU at the threshold) could
   flip a box in or out for a 1e-6 difference. Every class score of every anchor agrees within
   1e-3, and every box that can become a detection (best score >= 0.001 in either model) overlaps
   its twin with IoU >= 0.99. The worst of each is reported.

A failure raises `ExportCheckError`: the package is not written.

An optional variant (INT8, OpenVINO) is compared with the fp32 ONNX Runtime model on the same
inputs and kept only when both hold (`keep_variant`): its median latency per image is lower, and
its mAP50 is at most 0.01 below fp32's. Latencies are measured round-robin (each image through
every backend in turn, after one warm-up call each), so a burst of load on a shared machine slows
all of them alike; they cover the inference call only, since the letterbox and NMS around it are
the same code for every backend.

The mAP50 here is on square letterboxed inputs (the serving preprocessing), so it can differ
slightly from the evaluate step's, which scores Ultralytics' rectangular batches.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from skyops.errors import ExportCheckError
from skyops.evaluation.detmetrics import IOU_EPS, box_area, box_iou, slice_metrics
from skyops.serving.export_runtime import Detections, LabelledImage, RawModel, image_boxes, letterbox, nms, read_image, timed
from skyops.serving.package import Thresholds

REFERENCE, EXPORT = "torch", "onnx"
MAP_NMS = Thresholds(conf=0.001, iou=0.7, max_det=300)  # the evaluate step's settings (mAP wants low-score boxes too)
MATCH_IOU = 0.5  # a detection of one backend has a twin in another: same class, IoU at least this
FLOAT_NOISE = 1e-9  # 0.6 - 0.59 is 0.010000000000000009: differences this close to a tolerance are at it


@dataclass(frozen=True, kw_only=True)
class Tolerance:
    """How close the export must be to the PyTorch model, and a variant to the fp32 export."""

    map50: float = 0.005  # |mAP50(onnx) - mAP50(torch)|
    box_iou: float = 0.99  # IoU of an anchor's box in both models, for boxes that can become detections
    score: float = 1e-3  # |class score difference| at any anchor
    variant_map50_loss: float = 0.01  # mAP50(fp32 onnx) - mAP50(variant)

    def to_json(self) -> dict[str, float]:
        return {"map50": self.map50, "box_iou": self.box_iou, "score": self.score, "variant_map50_loss": self.variant_map50_loss}


@dataclass
class Agreement:
    """How two backends' raw outputs agree, anchor by anchor, over every image seen so far."""

    anchors: int = 0  # anchors whose scores were compared
    boxes: int = 0  # of them, boxes that can become detections (best score >= MAP_NMS conf in either)
    worst_iou: float = 1.0
    worst_score_delta: float = 0.0

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        """Fold in one image: both (1, 4 + nc, anchors)."""
        ref, cand = reference[0].T.astype(np.float64), candidate[0].T.astype(np.float64)  # (anchors, 4 + nc)
        self.anchors += len(ref)
        self.worst_score_delta = max(self.worst_score_delta, float(np.abs(ref[:, 4:] - cand[:, 4:]).max(initial=0.0)))
        live = (ref[:, 4:].max(axis=1) >= MAP_NMS.conf) | (cand[:, 4:].max(axis=1) >= MAP_NMS.conf)
        if live.any():
            self.boxes += int(live.sum())
            self.worst_iou = min(self.worst_iou, float(_paired_iou(_xyxy(ref[live, :4]), _xyxy(cand[live, :4])).min()))

    def to_json(self) -> dict[str, Any]:
        return {"anchors": self.anchors, "boxes": self.boxes, "worst_box_iou": self.worst_iou, "worst_score_delta": self.worst_score_delta}


@dataclass
class BackendRun:
    """One backend over the split: its detections per image and its latency per image."""

    detections: list[Detections] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.latency_ms)


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """Whether an optional variant stays in the package, and why (printed and kept in metadata.json)."""

    kept: bool
    reason: str
    latency_ms: float | None = None
    map50: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kept": self.kept, "reason": self.reason, "latency_ms": self.latency_ms, "map50": self.map50}


def keep_variant(
    name: str, *, latency_ms: float, map50: float | None, fp32_latency_ms: float, fp32_map50: float | None, tolerance: Tolerance
) -> Verdict:
    """The rule: kept only when measured faster than the fp32 ONNX Runtime model AND mAP50 loss <= tolerance."""
    why_not = []
    speed = f"{latency_ms:.2f} ms/image vs {fp32_latency_ms:.2f} for fp32 ONNX Runtime"
    if latency_ms >= fp32_latency_ms:
        why_not.append(f"not faster ({speed})")
    if map50 is None or fp32_map50 is None:
        why_not.append("its mAP50 loss cannot be measured (the split has no ground-truth boxes)")
        accuracy = ""
    else:
        loss = fp32_map50 - map50
        accuracy = f"mAP50 {map50:.4f} vs {fp32_map50:.4f} (loss {loss:.4f}, allowed {tolerance.variant_map50_loss})"
        if loss > tolerance.variant_map50_loss + FLOAT_NOISE:
            why_not.append(accuracy)
    if why_not:
        return Verdict(kept=False, reason=f"{name} dropped: " + "; ".join(why_not), latency_ms=latency_ms, map50=map50)
    speedup = fp32_latency_ms / latency_ms
    return Verdict(kept=True, reason=f"{name} kept: {speed} ({speedup:.2f}x); {accuracy}", latency_ms=latency_ms, map50=map50)


def run_backends(
    models: Mapping[str, RawModel], images: Sequence[LabelledImage], imgsz: int
) -> tuple[dict[str, BackendRun], dict[str, Agreement]]:
    """Every image through every backend in turn; detections, latencies, and agreement of each with its reference.

    The first backend is the reference of the second (torch for onnx); every later one is compared
    with the second (the fp32 ONNX Runtime model).
    """
    names = list(models)
    runs = {name: BackendRun() for name in names}
    agreements = {name: Agreement() for name in names[1:]}
    first = letterbox(read_image(images[0].path), imgsz)
    for model in models.values():
        model(first)  # warm-up: the first call allocates and plans
    for image in images:
        pixels = read_image(image.path)
        inputs = letterbox(pixels, imgsz)
        raws = {}
        for name, model in models.items():
            raws[name], ms = timed(model, inputs)
            runs[name].latency_ms.append(ms)
            runs[name].detections.append(nms(raws[name], pixels.shape[:2], imgsz, MAP_NMS))
        for name in names[1:]:
            agreements[name].add(raws[names[0] if name == names[1] else names[1]], raws[name])
    return runs, agreements


def map50(images: Sequence[LabelledImage], run: BackendRun) -> float | None:
    """mAP50 of one backend's detections over the images (None when they hold no ground truth)."""
    return slice_metrics([image_boxes(image, found) for image, found in zip(images, run.detections, strict=True)]).map50


def detections_differing(a: BackendRun, b: BackendRun, conf: float) -> float:
    """Fraction of detections at `conf` (either backend's) without a twin (same class, IoU >= MATCH_IOU) in the other."""
    total = unmatched = 0
    for x, y in zip(a.detections, b.detections, strict=True):
        xs, ys = x.scores >= conf, y.scores >= conf
        bx, by = x.boxes[xs], y.boxes[ys]
        same = box_iou(bx, by) * (x.classes[xs][:, None] == y.classes[ys][None, :]) >= MATCH_IOU
        total += len(bx) + len(by)
        unmatched += int((~same.any(axis=1)).sum() + (~same.any(axis=0)).sum())
    return unmatched / total if total else 0.0


def export_problems(torch_map50: float | None, onnx_map50: float | None, agreement: Agreement, tolerance: Tolerance) -> list[str]:
    """What keeps the ONNX export from passing, one line per failed criterion (empty: it passes)."""
    problems = []
    if torch_map50 is not None and onnx_map50 is not None and abs(onnx_map50 - torch_map50) > tolerance.map50 + FLOAT_NOISE:
        problems.append(
            f"mAP50 {onnx_map50:.4f} (onnx) vs {torch_map50:.4f} (torch): |difference| {abs(onnx_map50 - torch_map50):.4f} > {tolerance.map50}"
        )
    if agreement.worst_score_delta > tolerance.score:
        problems.append(f"class scores differ by up to {agreement.worst_score_delta:.4g} > {tolerance.score}")
    if agreement.worst_iou < tolerance.box_iou:
        problems.append(f"boxes overlap their PyTorch twins with IoU down to {agreement.worst_iou:.4f} < {tolerance.box_iou}")
    return problems


def raise_for(problems: list[str], *, images: int, split: str) -> None:
    """The check's one error, when there are problems."""
    if problems:
        raise ExportCheckError(
            f"the ONNX export does not match the PyTorch model on the {split} split ({images} images): " + "; ".join(problems),
            hint="nothing was packaged; the check's numbers are above in the step's log. Report it with the weights' sha256",
        )


def _paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a[i] with b[i]: (N, 4) xyxy twice -> (N,), as detmetrics.box_iou computes each pair."""
    inter = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None).prod(axis=1)
    return inter / (box_area(a) + box_area(b) - inter + IOU_EPS)


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    """(N, 4) centre x, y, width, height -> (N, 4) corners."""
    half = xywh[:, 2:] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)
