"""What the evaluation's analysis costs beside Ultralytics' own metric computation, on the same boxes.

Both sides score one synthetic validation set the size of VisDrone-DET val (548 images; up to 140
ground-truth boxes and 300 predictions per image, the validator's max_det; 10 classes; truncation and
occlusion per box), in this process, median of --runs:
  skyops  `skyops.evaluation.analysis.analyse`: mAP of every slice (size, class, brightness, region,
          crowding, occlusion, truncation), COCO's metrics (faster-coco-eval), the confusion matrix
          and the worst images; then the HTML report (plots, and the worst images drawn from real
          image files)
  anchor  what Ultralytics' validator computes from the same boxes: its IoU and matching per image
          (DetectionValidator.match_predictions, torch) and ap_per_class, i.e. metrics.map50 / map

    python benchmarks/evaluation_analysis.py [--runs 3] [--images 548]

No target ratio: the anchor is a lower bound of any evaluation (it computes one mAP); the figure says
what the slices, COCO and the report add to an evaluate step, whose wall time is dominated by the
model's forward passes (not measured here). Measured on 2 shared CPU cores (load about 5), 548
images, 39,952 boxes, 164,400 predictions: anchor 6.0 s, analysis 29.1 s (4.8x), report 1.6 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from skyops.data.attributes import COLUMNS  # noqa: E402 - after the path set-up above
from skyops.evaluation.analysis import analyse  # noqa: E402
from skyops.evaluation.detmetrics import ImageBoxes  # noqa: E402
from skyops.evaluation.report import write_report  # noqa: E402
from skyops.evaluation.scored import ScoredImage  # noqa: E402

NAMES = ["pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor"]
SIDE = (1080, 1920)  # (height, width) px, a VisDrone frame


def scenes(count: int, folder: Path, seed: int = 0) -> list[ScoredImage]:
    """Images with jittered detections of most objects, misclassifications and low-confidence clutter."""
    rng = np.random.default_rng(seed)
    picture = folder / "frame.jpg"
    Image.fromarray(rng.integers(0, 255, (*SIDE, 3), dtype=np.uint8)).save(picture, quality=80)
    images = []
    for i in range(count):
        m = int(rng.integers(5, 140))
        xy = rng.uniform(0, (SIDE[1] - 120, SIDE[0] - 120), (m, 2))
        gt = np.concatenate((xy, xy + rng.uniform(6, 120, (m, 2))), axis=1)
        gt_cls = rng.integers(0, len(NAMES), m)
        found = rng.random(m) < 0.7
        hits = gt[found] + rng.normal(0, 3, (int(found.sum()), 4))
        hit_cls = np.where(rng.random(len(hits)) < 0.85, gt_cls[found], rng.integers(0, len(NAMES), len(hits)))
        clutter = 300 - len(hits)
        cxy = rng.uniform(0, (SIDE[1] - 80, SIDE[0] - 80), (clutter, 2))
        pred = np.concatenate((hits, np.concatenate((cxy, cxy + rng.uniform(6, 80, (clutter, 2))), axis=1)))
        cls = np.concatenate((hit_cls, rng.integers(0, len(NAMES), clutter)))
        scores = np.concatenate((rng.uniform(0.2, 1.0, len(hits)), rng.uniform(0.001, 0.4, clutter)))
        boxes = ImageBoxes(gt_boxes=gt, gt_classes=gt_cls, pred_boxes=pred, pred_classes=cls, pred_scores=scores)
        images.append(
            ScoredImage(
                name=f"frame{i:04d}.jpg",
                path=str(picture),
                shape=SIDE,
                boxes=boxes,
                gt_xyxy=gt,
                pred_xyxy=pred,
                brightness=float(rng.uniform(30, 220)),
                attributes=np.column_stack((rng.integers(0, 2, m), rng.integers(0, 3, m))),
            )
        )
    return images


def anchor(images: list[ScoredImage]) -> Callable[[], None]:
    """Ultralytics' metric path on the same boxes (imported offline, as skyops does)."""
    from skyops.training.ultra import import_ultralytics

    state = Path(tempfile.mkdtemp(prefix="skyops-bench-ultra-"))
    import_ultralytics(state)
    import torch
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import ap_per_class, box_iou

    validator = DetectionValidator(save_dir=state / "val")
    ordered = []
    for image in images:
        order = np.argsort(-image.boxes.pred_scores, kind="stable")
        b = image.boxes
        ordered.append(
            (
                torch.tensor(b.gt_boxes),
                torch.tensor(b.gt_classes),
                torch.tensor(b.pred_boxes[order]),
                torch.tensor(b.pred_classes[order]),
                b.pred_scores[order],
            )
        )

    def run() -> None:
        tps, confs, classes, targets = [], [], [], []
        for gt, gt_cls, pred, pred_cls, scores in ordered:
            tps.append(validator.match_predictions(pred_cls, gt_cls, box_iou(gt, pred)).numpy())
            confs.append(scores)
            classes.append(pred_cls.numpy())
            targets.append(gt_cls.numpy())
        ap_per_class(np.concatenate(tps), np.concatenate(confs), np.concatenate(classes), np.concatenate(targets))

    return run


def timed(fn: Callable[[], object], runs: int) -> float:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--images", type=int, default=548)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="skyops-bench-eval-") as tmp:
        images = scenes(args.images, Path(tmp))
        boxes = sum(len(i.gt_xyxy) for i in images), sum(len(i.pred_xyxy) for i in images)
        ultralytics = timed(anchor(images), args.runs)
        found = {}

        def analysis() -> None:
            found["analysis"] = analyse(images, NAMES, attribute_columns=COLUMNS, min_slice_instances=20, report_conf=0.25, worst_count=6)

        ours = timed(analysis, args.runs)
        result = found["analysis"]
        doc = {
            "schema_version": "1.1",
            "metrics": {"map50": 0.0, "map50_95": 0.0, "precision": 0.0, "recall": 0.0},
            **result.sections,
            "dataset": {"split": "test", "images": len(images), "instances": boxes[0], "fingerprint": None, "box_attributes": None},
            "model": {"weights_sha256": "0" * 64, "imgsz": 640},
            "settings": {"conf": 0.001, "iou": 0.7, "batch": 16, "min_slice_instances": 20, "report_conf": 0.25, "worst_images": 6},
            "comparison": None,
            "created": "2025-01-01T00:00:00+00:00",
        }
        report = timed(lambda: write_report(doc, Path(tmp) / "report.html", coco=result.coco, worst=result.worst, names=NAMES), args.runs)
    print(f"{len(images)} images, {boxes[0]} ground-truth boxes, {boxes[1]} predictions; median of {args.runs} runs")
    print(f"anchor  Ultralytics' matching + ap_per_class   {ultralytics:7.2f} s")
    print(f"skyops  slices + COCO + confusion + worst     {ours:7.2f} s   ({ours / ultralytics:.1f}x the anchor)")
    print(f"skyops  HTML report                          {report:7.2f} s")


if __name__ == "__main__":
    main()
