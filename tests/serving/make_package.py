"""Build a real model package (docs: the package layout of the export step) without the export step.

A YOLO11n trained for one epoch on a few synthetic aerial scenes, exported by Ultralytics to ONNX
(opset 17, no NMS in the graph, simplified with onnxslim), converted to OpenVINO IR, with the
metadata.json the server reads.

After one epoch the BatchNorm layers still hold their initial running statistics (mean 0, variance
1), so in eval mode the network answers nearly the same for every image. The tests need answers that
differ between images (they compare answers across requests, backends and Ultralytics' own predict),
so the statistics are recomputed from the training images (one forward pass in train mode, a
cumulative average) before export. Scores stay low (~0.01): the tests ask with a low `conf`, and
never compare with ground truth.

Run it in its own process (Ultralytics is imported once per process, with its offline settings):

    python -m tests.serving.make_package OUT_FOLDER [--images 12] [--imgsz 256] [--epochs 1]

OUT_FOLDER/ receives `model/` (the model folder) and `model.tar.gz` (the same files at its root),
plus `scenes/` (the synthetic dataset, whose images the tests send).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

from skyops.data.layout import write_data_yaml
from skyops.data.synth import generate_scenes
from skyops.training.train import TrainConfig, train
from skyops.training.ultra import import_ultralytics

OPSET = 17
CONF, IOU, MAX_DET = 0.25, 0.45, 300


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(out: Path, *, images: int = 12, imgsz: int = 256, epochs: int = 1) -> Path:
    """Train, export and package into `out`; returns the model folder."""
    out.mkdir(parents=True, exist_ok=True)
    scenes = out / "scenes"
    manifest = generate_scenes(scenes, count=images, size=imgsz, seed=0, workers=1)
    data_yaml = write_data_yaml(scenes, out / "data.yaml", manifest.names)
    state = out / "state"
    config = TrainConfig(epochs=epochs, imgsz=imgsz, batch=4, workers=0, device="cpu", mosaic=0.0)
    result = train(data_yaml, config, out_dir=out / "train", checkpoint_dir=out / "ckpt", state_dir=state)

    import_ultralytics(state)
    from ultralytics import YOLO

    model_dir = out / "model"
    model_dir.mkdir()
    recalibrated = YOLO(str(result.best_weights))
    _recalibrate_batchnorm(recalibrated.model, sorted((scenes / "images").glob("*.jpg")))
    recalibrated.save(str(model_dir / "best.pt"))
    exported = Path(
        YOLO(str(model_dir / "best.pt")).export(format="onnx", opset=OPSET, simplify=True, nms=False, imgsz=imgsz, dynamic=False)
    )
    onnx_path = model_dir / "model.onnx"
    exported.replace(onnx_path)

    import openvino as ov

    (model_dir / "openvino").mkdir()
    ov.save_model(ov.convert_model(str(onnx_path)), str(model_dir / "openvino" / "model.xml"), compress_to_fp16=False)

    metadata = {
        "format": 1,
        "names": list(manifest.names),
        "imgsz": imgsz,
        "thresholds": {"conf": CONF, "iou": IOU, "max_det": MAX_DET},
        "source": {"model": "drone-detector", "version": None, "weights_sha256": sha256(model_dir / "best.pt")},
        "artifacts": {
            "onnx": {
                "file": "model.onnx",
                "sha256": sha256(onnx_path),
                "opset": OPSET,
                "input": "images",
                "shape": [1, 3, imgsz, imgsz],
                "dtype": "float32",
            },
            "openvino": {"file": "openvino/model.xml", "sha256": sha256(model_dir / "openvino" / "model.xml")},
            "torch": {"file": "best.pt", "sha256": sha256(model_dir / "best.pt")},
        },
        "check": {"made_by": "tests/serving/make_package.py", "epochs": epochs},
    }
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    with tarfile.open(out / "model.tar.gz", "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return model_dir


def _recalibrate_batchnorm(model: Any, images: list[Path]) -> None:
    """Recompute every BatchNorm layer's running statistics from `images` (see the module docstring)."""
    import cv2
    import torch

    batch = torch.cat([torch.from_numpy(cv2.dnn.blobFromImage(cv2.imread(str(p)), 1 / 255, swapRB=True)) for p in images])
    model.float()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the batches seen
    model.train()
    with torch.no_grad():
        model(batch)
    model.eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--imgsz", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)
    print(build(args.out, images=args.images, imgsz=args.imgsz, epochs=args.epochs))


if __name__ == "__main__":
    sys.exit(main())
