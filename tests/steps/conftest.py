"""Small named fixtures for running step scripts directly: one real MLflow store, a trained-model folder
(fake weights: the registry logic needs a file, not a model) and its evaluation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skyops.training.evaluate import write_evaluation
from skyops.training.tracking import TrackingStore


@pytest.fixture(scope="session")
def step_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state dir with one real MLflow sqlite store, shared by the session (each test uses its own model name)."""
    state = tmp_path_factory.mktemp("step-state")
    TrackingStore.local(state).client.search_experiments()  # create the schema once, here
    return state


def evaluation_document(weights_sha256: str, *, map50: float = 0.5, comparison: dict[str, Any] | None = None) -> dict[str, Any]:
    """A schema-valid evaluation.json (schema 1.1) of the weights with that digest."""

    def entry(map50_95: float | None, instances: int, images: int = 2) -> dict[str, Any]:
        return {
            "map50": None if map50_95 is None else min(1.0, 2 * map50_95),
            "map50_95": map50_95,
            "instances": instances,
            "images": images,
        }

    coco = dict.fromkeys(
        ("ap", "ap50", "ap75", "ap_small", "ap_medium", "ap_large", "ar1", "ar10", "ar100", "ar_small", "ar_medium", "ar_large"), 0.3
    )
    return {
        "schema_version": "1.1",
        "metrics": {"map50": map50, "map50_95": map50 / 2, "precision": 0.6, "recall": 0.4},
        "per_class": [{"class_id": 0, "name": "car", "instances": 7, "ap50": 0.5, "ap50_95": 0.3, "precision": 0.6, "recall": 0.4}],
        "per_size": {
            "small": {"map50": 0.1, "map50_95": 0.05, "instances": 3},
            "medium": {"map50": 0.6, "map50_95": 0.4, "instances": 4},
            "large": {"map50": None, "map50_95": None, "instances": 0},
        },
        "coco": {**coco, "ap_large": None, "ar_large": None, "max_detections": 100},
        "slices": {
            "size": {"small": entry(0.05, 3), "medium": entry(0.4, 4), "large": entry(None, 0, 0)},
            "class": {"car": entry(0.3, 7, 5)},
            "brightness": {"dark": entry(None, 0, 0), "normal": entry(0.3, 7, 5), "bright": entry(None, 0, 0)},
            "region": {"centre": entry(0.3, 3), "edge": entry(0.3, 2), "corner": entry(0.3, 2)},
            "crowding": {"isolated": entry(0.3, 7, 5), "group": entry(None, 0, 0), "crowd": entry(None, 0, 0)},
        },
        "weakest_slice": None,
        "confusion": {"conf": 0.25, "iou": 0.45, "labels": ["car", "background"], "matrix": [[5, 2], [1, 0]]},
        "worst_images": [{"image": "a.jpg", "f1": 0.5, "tp": 1, "fp": 1, "fn": 1, "instances": 2}],
        "speed_ms": {"preprocess": 0.1, "inference": 4.0, "postprocess": 0.2, "total": 4.3, "device": "cpu", "imgsz": 64},
        "dataset": {"split": "test", "images": 5, "instances": 7, "fingerprint": None, "box_attributes": None},
        "model": {"weights_sha256": weights_sha256, "imgsz": 64},
        "settings": {"conf": 0.001, "iou": 0.7, "batch": 16, "min_slice_instances": 20, "report_conf": 0.25, "worst_images": 6},
        "comparison": comparison,
        "created": "2025-01-01T12:00:00+00:00",
    }


@pytest.fixture
def trained(tmp_path: Path, step_state: Path) -> Callable[[bytes], tuple[Path, Path]]:
    """trained(weights) -> (model folder, evaluation folder): as the train and evaluate steps leave them.

    The model folder holds best.pt with those bytes and a training.json naming a real MLflow run
    that logged them; the evaluation scores that best.pt.
    """

    def make(weights: bytes) -> tuple[Path, Path]:
        store = TrackingStore.local(step_state)
        run = store.client.create_run(store.experiment_id("step-tests"))
        model = tmp_path / f"model-{run.info.run_id}"
        model.mkdir()
        (model / "best.pt").write_bytes(weights)
        store.client.log_artifact(run.info.run_id, str(model / "best.pt"), "weights")
        training = {
            "mlflow_run_id": run.info.run_id,
            "tracking_uri": store.uri,
            "experiment": "step-tests",
            "names": ["car"],
            "data_fingerprint": "d" * 64,
            "epochs_completed": 2,
            "resumed_from_epoch": None,
            "final_metrics": {},
            "device": "cpu",
            "seconds": 1.0,
            "imgsz": 64,
        }
        (model / "training.json").write_text(json.dumps(training))
        evaluation = tmp_path / f"evaluation-{run.info.run_id}"
        write_evaluation(evaluation_document(hashlib.sha256(weights).hexdigest()), evaluation / "evaluation.json")
        return model, evaluation

    return make


def write_package(folder: Path, weights: bytes, *, int8: bool = False) -> Path:
    """An export step's package of those weights (skyops.serving.package), with a stand-in ONNX file: the
    register step checks files against their digests and their source, never runs them."""
    from skyops.serving import package

    model = package.model_dir(folder)
    model.mkdir(parents=True)
    (model / "best.pt").write_bytes(weights)
    (model / "model.onnx").write_bytes(b"stand-in onnx graph")
    artifacts = {"onnx": package.Artifact(file="model.onnx", details={"opset": 17}), "torch": package.Artifact(file="best.pt")}
    if int8:
        (model / "model-int8.onnx").write_bytes(b"stand-in int8 graph")
        artifacts["int8"] = package.Artifact(file="model-int8.onnx")
    source = package.Source(model="drone-detector", version=None, weights_sha256=hashlib.sha256(weights).hexdigest())
    package.seal(
        folder,
        package.PackageMetadata(names=["car"], imgsz=64, thresholds=package.Thresholds(), source=source, artifacts=artifacts),
    )
    return folder
