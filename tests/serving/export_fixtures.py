"""Named fixtures for the export step, imported by the tests that run it: a split dataset of coloured
boxes (tests/training's tiny dataset, with a manifest and train/val/test lists) and one really trained
tiny model.

The model is trained once per session (2 epochs at 64 px, about 20 s on 2 cores) with skyops' own
training code and tests/training's tiny settings; it detects little (test mAP50 0), which the export
check does not need: it compares the exported model with this one, output by output.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from skyops.data.layout import IMAGES, LABELS, ImageRecord, Manifest, write_data_yaml
from skyops.pipeline import runtime
from skyops.pipeline.runtime import PATHS_ENV
from skyops.training.train import TrainConfig, train
from tests.training.conftest import TINY_NAMES, make_boxes_dataset

NAMES = TINY_NAMES
SIZE = 64  # pixels: images and the model's input
TINY_TRAINING = TrainConfig(epochs=2, imgsz=SIZE, batch=4, workers=0, device="cpu", mosaic=0.0)  # tests/training's tiny_config


def write_split_dataset(root: Path, *, images: int, size: int = SIZE, seed: int = 0) -> Path:
    """tests/training's boxes dataset as the split step leaves one: a manifest and train/val/test lists
    (half, a quarter, a quarter)."""
    make_boxes_dataset(root, images=images, size=size, seed=seed)
    records = []
    for image in sorted((root / IMAGES).iterdir()):
        label = root / LABELS / f"{image.stem}.txt"
        with Image.open(image) as opened:
            width, height = opened.size
        records.append(
            ImageRecord(
                image=f"{IMAGES}/{image.name}",
                label=f"{LABELS}/{label.name}",
                width=width,
                height=height,
                sha256=hashlib.sha256(image.read_bytes()).hexdigest(),
                label_sha256=hashlib.sha256(label.read_bytes()).hexdigest(),
                boxes=len(label.read_text().splitlines()),
            )
        )
    Manifest(names=NAMES, images=records).write(root)
    listed = [r.image for r in records]
    half, three_quarters = images // 2, images * 3 // 4
    for split, part in (("train", listed[:half]), ("val", listed[half:three_quarters]), ("test", listed[three_quarters:])):
        (root / f"{split}.txt").write_text("".join(f"{p}\n" for p in part))
    return root


@dataclass(frozen=True)
class Trained:
    """What the export step reads: the split dataset and the train step's model folder."""

    splits: Path
    model: Path
    state: Path  # the state dir the model was trained under (Ultralytics' offline settings)

    @property
    def weights(self) -> Path:
        return self.model / "best.pt"


@pytest.fixture(scope="session")
def tiny_trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A split dataset of 24 images and a YOLO11n trained on its train half for 2 epochs at 64 px."""
    base = tmp_path_factory.mktemp("export-model")
    splits = write_split_dataset(base / "splits", images=24)
    state = base / "state"
    data_yaml = write_data_yaml(splits, base / "data.yaml", NAMES)
    result = train(data_yaml, TINY_TRAINING, out_dir=base / "model", checkpoint_dir=base / "ckpt", state_dir=state)
    training = {
        "mlflow_run_id": "0" * 32,
        "experiment": "export-tests",
        "names": NAMES,
        "data_fingerprint": "d" * 64,
        "epochs_completed": result.epochs_completed,
        "device": result.device,
        "seconds": result.seconds,
        "imgsz": SIZE,
    }
    (base / "model" / "training.json").write_text(json.dumps(training))
    return Trained(splits=splits, model=base / "model", state=state)


def run_export(trained: Trained, out: Path, *args: str, inputs: dict[str, Path] | None = None) -> int:
    """The export step as the local engine runs it (its contract's paths mapped to folders); returns its exit code."""
    from skyops.steps.export.script import main

    bound = {"model": trained.model, "splits": trained.splits, **(inputs or {})}
    paths = {f"/opt/ml/processing/input/{port}": str(path) for port, path in bound.items()}
    paths["/opt/ml/processing/output/package"] = str(out)
    environ = {**os.environ, PATHS_ENV: json.dumps(paths), "SKYOPS_STATE_DIR": str(trained.state)}
    kept = runtime._progress  # runtime.run keeps its process's progress state in a module global
    try:
        return runtime.run(main, args, environ)
    finally:
        runtime._progress = kept
