"""Model packages for the deploy tests (the package layout of the export step), built in seconds without training.

A YOLO11n made from its yaml with 4 classes, exported by Ultralytics to ONNX (opset 17, no NMS,
onnxslim), at 128 px. An untrained network answers the same for every image (every score equal), so
two things are set by hand first: the BatchNorm statistics are recomputed from the scenes (one
forward pass in train mode), which makes the features depend on the image, and the heads' biases are
set so that class scores sit around 0.5 and boxes are small (about two strides wide): detections
then differ from image to image and lie where the features are, which is what the canary compares.

`broken(model_dir, out, how)` copies a package and rewrites its ONNX output (metadata's sha256 kept
true, so the server loads it): "silent" zeroes every class score (the model finds nothing),
"misplaced" moves every box 40 px (the model finds things in the wrong place).

Run it in its own process (Ultralytics is imported once per process, with its offline settings):

    python -m tests.deploy_local.make_packages OUT    ->  OUT/model/ (metadata.json, model.onnx), OUT/scenes/images/*.jpg
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

IMGSZ = 128
NAMES = ["car", "truck", "bus", "person"]
OPSET = 17


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(out: Path) -> Path:
    """Export the model into `out/model` (with `out/scenes` as its images); returns the model folder."""
    import cv2
    import torch
    import yaml

    from skyops.data.synth import generate_scenes
    from skyops.training.ultra import import_ultralytics

    out.mkdir(parents=True, exist_ok=True)
    generate_scenes(out / "scenes", count=8, size=IMGSZ, seed=0, workers=1)
    import_ultralytics(out / "state")
    from ultralytics import YOLO
    from ultralytics.nn.tasks import yaml_model_load

    torch.manual_seed(0)
    config = {k: v for k, v in yaml_model_load("yolo11n.yaml").items() if k != "yaml_file"}
    config.update(nc=len(NAMES), scale="n")
    work = out / "work"
    work.mkdir()
    (work / "yolo11n.yaml").write_text(yaml.safe_dump(config))
    model = YOLO(str(work / "yolo11n.yaml"))
    network = model.model
    images = sorted((out / "scenes" / "images").glob("*.jpg"))
    batch = torch.cat([torch.from_numpy(cv2.dnn.blobFromImage(cv2.imread(str(p)), 1 / 255, swapRB=True)) for p in images])
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the one batch
    network.train()
    with torch.no_grad():
        network(batch)
    network.eval()
    head = network.model[-1]
    with torch.no_grad():
        for boxes, scores in zip(head.cv2, head.cv3, strict=True):
            scores[-1].bias.zero_()  # class logits around 0: scores around 0.5, varying with the features
            boxes[-1].weight.mul_(0.05)  # distances decided by the bias: one stride on each side
            boxes[-1].bias.copy_(torch.full((4, head.reg_max), -4.0).index_fill_(1, torch.tensor([1]), 4.0).flatten())
    exported = Path(model.export(format="onnx", opset=OPSET, simplify=True, nms=False, imgsz=IMGSZ, dynamic=False))
    model_dir = out / "model"
    model_dir.mkdir()
    exported.replace(model_dir / "model.onnx")
    write_metadata(model_dir, version=None)
    shutil.rmtree(work)
    return model_dir


def write_metadata(model_dir: Path, *, version: int | None) -> None:
    onnx_path = model_dir / "model.onnx"
    metadata = {
        "format": 1,
        "names": NAMES,
        "imgsz": IMGSZ,
        "thresholds": {"conf": 0.25, "iou": 0.45, "max_det": 300},
        "source": {"model": "drone-detector", "version": version, "weights_sha256": sha256(onnx_path)},
        "artifacts": {
            "onnx": {
                "file": "model.onnx",
                "sha256": sha256(onnx_path),
                "opset": OPSET,
                "input": "images",
                "shape": [1, 3, IMGSZ, IMGSZ],
                "dtype": "float32",
            }
        },
        "check": {"made_by": "tests/deploy_local/make_packages.py"},
    }
    (model_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))


def versioned(model_dir: Path, out: Path, version: int) -> Path:
    """A copy of the model folder (canary included) whose metadata names `version`."""
    shutil.copytree(model_dir, out)
    write_metadata(out, version=version)
    return out


def broken(model_dir: Path, out: Path, how: str, version: int) -> Path:
    """A copy whose ONNX answers wrongly (see the module docstring), its metadata true to the new file."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    shutil.copytree(model_dir, out)
    graph_model = onnx.load(str(out / "model.onnx"))
    graph = graph_model.graph
    final = graph.output[0].name
    for node in graph.node:
        node.output[:] = ["raw_head" if name == final else name for name in node.output]
    rows = 4 + len(NAMES)
    if how == "silent":
        factor = np.array([1, 1, 1, 1] + [0] * len(NAMES), np.float32).reshape(1, rows, 1)
        graph.initializer.append(numpy_helper.from_array(factor, "broken_factor"))
        graph.node.append(helper.make_node("Mul", ["raw_head", "broken_factor"], [final]))
    elif how == "misplaced":
        shift = np.array([40, 40, 0, 0] + [0] * len(NAMES), np.float32).reshape(1, rows, 1)
        graph.initializer.append(numpy_helper.from_array(shift, "broken_shift"))
        graph.node.append(helper.make_node("Add", ["raw_head", "broken_shift"], [final]))
    else:
        raise ValueError(f"unknown breakage {how!r}")
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(out / "model.onnx"))
    write_metadata(out, version=version)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1])))
