"""Sliced against full-frame inference on high-resolution synthetic scenes: small-object AP50 and latency, same model, same run.

What is compared, and why it is fair: ONE YOLO11n (trained here, or --weights) runs on the same held-out
1536 px scenes (objects 5-36 px, all COCO-small) two ways, through the same letterbox and NMS (the server's):

    full frame   the frame letterboxed to the model's imgsz (256): a 12 px car becomes 2 px
    sliced       windows of imgsz px (not resized) at --overlap, plus the full frame, merged by NMM

The model is trained on both scales it will see: 256 px tiles cut from training scenes (objects at native size)
and the same scenes downscaled whole to 256 px. Scored with COCO (faster-coco-eval): AP50 overall and on
small objects (area < 32²). The target (issue 16): sliced small-object AP50 at least 2x the full frame's.

    python benchmarks/sliced_inference.py                          # trains ~3 min on 2 cores (--epochs), then measures
    python benchmarks/sliced_inference.py --weights best.pt        # measures a model trained earlier
    python benchmarks/sliced_inference.py --compare-libraries      # also: our slicer against supervision's InferenceSlicer

Latency is per image on the torch backend with one thread; wall time is noisy on a shared machine, so CPU time is
printed beside it, with the load average. Figures of record: docs/small-objects.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from skyops.data.layout import IMAGES, LABELS, write_data_yaml  # noqa: E402
from skyops.data.synth import DEFAULT_CLASSES, generate_scenes  # noqa: E402

TARGET = 2.0  # sliced / full-frame small-object AP50


def tiles_dataset(scenes: Path, out: Path, imgsz: int) -> Path:
    """A YOLO dataset of `imgsz` tiles cut from each scene (tiles with objects) plus each scene downscaled whole."""
    (out / IMAGES).mkdir(parents=True)
    (out / LABELS).mkdir()
    names = []
    for image_path in sorted((scenes / IMAGES).glob("*.jpg")):
        image = cv2.imread(str(image_path))
        side = image.shape[0]
        rows = np.loadtxt(scenes / LABELS / f"{image_path.stem}.txt", ndmin=2)
        cls, cx, cy, w, h = rows.T
        x0, y0, x1, y1 = (cx - w / 2) * side, (cy - h / 2) * side, (cx + w / 2) * side, (cy + h / 2) * side
        for ty in range(0, side - imgsz + 1, imgsz):
            for tx in range(0, side - imgsz + 1, imgsz):
                inside = (x0 >= tx) & (x1 <= tx + imgsz) & (y0 >= ty) & (y1 <= ty + imgsz)  # whole objects only: no cut labels
                if not inside.any():
                    continue
                name = f"{image_path.stem}_{tx}_{ty}"
                cv2.imwrite(str(out / IMAGES / f"{name}.jpg"), image[ty : ty + imgsz, tx : tx + imgsz])
                lines = [
                    f"{int(c)} {((a + b) / 2 - tx) / imgsz:.6f} {((t + u) / 2 - ty) / imgsz:.6f} {(b - a) / imgsz:.6f} {(u - t) / imgsz:.6f}"
                    for c, a, t, b, u in zip(cls[inside], x0[inside], y0[inside], x1[inside], y1[inside], strict=True)
                ]
                (out / LABELS / f"{name}.txt").write_text("\n".join(lines) + "\n")
                names.append(f"{IMAGES}/{name}.jpg")
        whole = f"{image_path.stem}_whole"
        cv2.imwrite(str(out / IMAGES / f"{whole}.jpg"), cv2.resize(image, (imgsz, imgsz), interpolation=cv2.INTER_AREA))
        (out / LABELS / f"{whole}.txt").write_text((scenes / LABELS / f"{image_path.stem}.txt").read_text())  # normalised: unchanged
        names.append(f"{IMAGES}/{whole}.jpg")
    val = names[:: max(1, len(names) // 24)]
    (out / "train.txt").write_text("".join(f"{n}\n" for n in names))
    (out / "val.txt").write_text("".join(f"{n}\n" for n in val))
    return out


def train_model(work: Path, args: argparse.Namespace) -> Path:
    from skyops.training.train import TrainConfig, train

    scenes = work / "train-scenes"
    generate_scenes(scenes, args.train_scenes, size=args.size, seed=100, workers=2, scale=args.scale)
    data = tiles_dataset(scenes, work / "tiles", args.imgsz)
    print(f"training on {len((data / 'train.txt').read_text().split())} images ({args.train_scenes} scenes' tiles and downscaled frames)")
    data_yaml = write_data_yaml(data, work / "data.yaml", list(DEFAULT_CLASSES))
    config = TrainConfig(epochs=args.epochs, imgsz=args.imgsz, batch=16, workers=0, device="cpu", mosaic=0.0, close_mosaic=0, patience=0)
    started, cpu = time.perf_counter(), time.process_time()
    result = train(data_yaml, config, out_dir=work / "train", checkpoint_dir=work / "ckpt", state_dir=work / "state")
    print(
        f"trained {args.epochs} epochs in {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU (this process)"
    )
    return Path(result.best_weights)


def compare_libraries(weights: Path, image: np.ndarray, imgsz: int, overlap: float, state_dir: Path) -> None:
    """Our slicer against supervision's InferenceSlicer on one frame, with the same per-window callback."""
    try:
        import supervision as sv
    except ImportError:
        print("--compare-libraries: supervision is not installed (pip install supervision==0.31.2)")
        return
    import hashlib

    from skyops.serving.backends import TorchBackend
    from skyops.serving.detect import letterbox, postprocess
    from skyops.serving.model import Artifact
    from skyops.serving.sliced import MergeKind, SliceSettings, detect_sliced

    backend = TorchBackend(Artifact(weights, hashlib.sha256(weights.read_bytes()).hexdigest()), 1, state_dir)

    def callback(window: np.ndarray) -> sv.Detections:
        blob, box = letterbox(window, imgsz)
        found = postprocess(backend.infer(blob), box, conf=0.001, iou=0.7, max_det=300)
        return sv.Detections(xyxy=found.boxes.astype(np.float64), confidence=found.scores, class_id=found.classes)

    ours_settings = SliceSettings(size=imgsz, overlap=overlap, merge=MergeKind.NMS, full_frame=False)
    slicer = sv.InferenceSlicer(
        callback=callback,
        slice_wh=imgsz,
        overlap_wh=round(imgsz * overlap),
        overlap_filter="non_max_suppression",
        iou_threshold=0.5,
        overlap_metric="IOS",
    )
    timings = {}
    for name, run in (
        ("skyops", lambda: detect_sliced(image, backend.infer, imgsz, ours_settings, conf=0.001, iou=0.7, max_det=10_000).detections.boxes),
        ("supervision", lambda: slicer(image).xyxy),
    ):
        wall, cpu = time.perf_counter(), time.process_time()
        boxes = run()
        timings[name] = (time.perf_counter() - wall, time.process_time() - cpu, boxes)
    a, b = (np.array(sorted(map(tuple, np.round(t[2], 1).tolist()))) for t in timings.values())
    same = a.shape == b.shape and np.allclose(a, b)
    for name, (wall, cpu, boxes) in timings.items():
        print(f"  {name:12s} {len(boxes):5d} boxes  {wall * 1000:8.0f} ms wall  {cpu * 1000:8.0f} ms CPU")
    print(f"  same boxes (NMS, IoS 0.5): {same}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="a trained YOLO11 .pt (default: train one here)")
    parser.add_argument("--size", type=int, default=1536, help="scene side, px")
    parser.add_argument("--scale", type=float, default=0.5, help="object scale (synth): 0.5 at 1536 px gives 5-36 px objects")
    parser.add_argument("--imgsz", type=int, default=256, help="the model's input size and the window size")
    parser.add_argument("--overlap", type=float, default=0.2)
    parser.add_argument("--train-scenes", type=int, default=10)
    parser.add_argument("--test-scenes", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--compare-libraries", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep the scenes and the model here (default: a temp folder)")
    args = parser.parse_args(argv)

    from skyops.steps.evaluate.sliced import sliced_section

    with tempfile.TemporaryDirectory(prefix="skyops-sliced-bench-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        weights = args.weights or train_model(work, args)
        test = work / "test-scenes"
        if not test.exists():
            generate_scenes(test, args.test_scenes, size=args.size, seed=999, workers=2, scale=args.scale)
        images = sorted(f"{IMAGES}/{p.name}" for p in (test / IMAGES).glob("*.jpg"))
        found = sliced_section(
            weights,
            test,
            images,
            len(DEFAULT_CLASSES),
            imgsz=args.imgsz,
            conf=0.001,
            iou=0.7,
            size=args.imgsz,
            overlap=args.overlap,
            merge="nmm",
            state_dir=work / "state",
        )
        full, cut = found["full_frame"], found["sliced"]
        windows = cut["runs_per_image"] - 1
        print(
            f"\n{len(images)} held-out {args.size} px scenes (scale {args.scale}), model imgsz {args.imgsz}, windows {args.imgsz} px overlap {args.overlap}"
        )
        print(f"{'':12s}{'AP50':>8s}{'AP50 small':>12s}{'APs':>8s}{'ms/image':>11s}{'CPU ms/image':>14s}{'runs':>6s}")
        for label, side, runs in (("full frame", full, 1.0), ("sliced", cut, cut["runs_per_image"])):
            print(
                f"{label:12s}{side['ap50'] or 0:8.3f}{side['ap50_small'] or 0:12.3f}{side['ap_small'] or 0:8.3f}"
                f"{side['ms_per_image']:11.0f}{side['cpu_ms_per_image']:14.0f}{runs:6.0f}"
            )
        per_window = (cut["ms_per_image"] - full["ms_per_image"]) / windows
        per_window_cpu = (cut["cpu_ms_per_image"] - full["cpu_ms_per_image"]) / windows
        print(f"cost of slicing: {per_window:.1f} ms wall, {per_window_cpu:.1f} ms CPU per window ({windows:.0f} windows per image)")
        ratio = found["ratio"]["ap50_small"]
        verdict = "n/a" if ratio is None else f"{ratio:.2f}x ({'meets' if ratio >= TARGET else 'misses'} the target {TARGET:.0f}x)"
        print(f"small-object AP50, sliced / full frame: {verdict}")
        print(f"load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
        if args.compare_libraries:
            print("\nslicer libraries, one frame, same callback (torch, 1 thread), windows only:")
            image = cv2.imread(str(test / images[0]))
            compare_libraries(weights, image, args.imgsz, args.overlap, work / "state")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
