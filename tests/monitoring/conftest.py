"""Small named fixtures of the monitoring tests: a real YOLO11n detector, a synthetic baseline, captured windows.

`detector` is a seeded, untrained YOLO11n (detector_model.py) loaded once per session; `embedder` its ONNX
export on ONNX Runtime (what windows embed with); `synthetic_baseline(n)` is the baseline of n synthetic scenes of the training distribution (scenes.py), its predictions
simulated and its embeddings the detector's; `window(seed, shift)` writes a window of 200 such scenes as
captured requests and reads it back through the capture reader into a feature table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skyops.monitoring.baseline import Baseline, baseline_from
from skyops.monitoring.embedding import Detector, Embedder, Embeds
from skyops.monitoring.features import FeatureTable, Predicted
from skyops.monitoring.window import WindowInfo, select_records, window_features

from .detector_model import build
from .scenes import Shot, as_stored, shots, write_captures

BASELINE_IMAGES = 400
WINDOW = 200  # the acceptance's window size


@pytest.fixture(scope="session")
def monitoring_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("monitoring-state")


@pytest.fixture(scope="session")
def weights(tmp_path_factory: pytest.TempPathFactory, monitoring_state: Path) -> Path:
    """A model folder as the train step leaves it (best.pt): a seeded YOLO11n trained at 128 px."""
    folder = tmp_path_factory.mktemp("model")
    build(folder, imgsz=128, state_dir=monitoring_state)
    return folder


@pytest.fixture(scope="session")
def detector(weights: Path, monitoring_state: Path) -> Detector:
    return Detector(weights / "best.pt", monitoring_state, threads=1)  # torch's threads stall each other on a busy machine


@pytest.fixture(scope="session")
def embedder(detector: Detector, tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """The detector's backbone exported to ONNX and run on ONNX Runtime, as the baseline step leaves it for windows."""
    return Embedder(detector.export_embedder(tmp_path_factory.mktemp("embedder") / "embedder.onnx", 128), 128)


def table_of(items: list[Shot], embedder: Embeds, prefix: str) -> FeatureTable:
    """A feature table of shots as the baseline step measures its split: JPEG files decoded, embedded in batches."""
    table = FeatureTable()
    for start in range(0, len(items), 32):
        chunk = items[start : start + 32]
        images = [as_stored(s.image) for s in chunk]
        for i, (shot, image, vector) in enumerate(zip(chunk, images, embedder.embed(images), strict=True)):
            size = (image.shape[1], image.shape[0])
            table.add(f"{prefix}{start + i}", image, size, Predicted.from_server(shot.answer["detections"]), vector)
    return table


@pytest.fixture(scope="session")
def synthetic_baseline(detector: Detector, embedder: Embedder) -> Callable[[int], Baseline]:
    """synthetic_baseline(n) -> the baseline of the first n scenes of the training distribution (stream seed 0), made once per n."""
    made: dict[int, Baseline] = {}

    def make(images: int = BASELINE_IMAGES) -> Baseline:
        if images not in made:
            table = table_of(list(shots(0, images)), embedder, "train-")
            meta: dict[str, Any] = {
                "dataset": {"fingerprint": "f" * 64, "names": ["car", "truck", "person"], "split": "train", "images": images},
                "model": {
                    "weights_sha256": detector.weights_sha256,
                    "imgsz": detector.imgsz,
                    "embed_size": 128,
                    "embed_layers": [4, 6, 10],
                },
                "thresholds": {"conf": 0.25, "iou": 0.45, "max_det": 300},
                "profile": False,
            }
            made[images] = baseline_from(table, meta, dims=16, seed=0)
        return made[images]

    return make


@pytest.fixture
def window(tmp_path: Path, embedder: Embedder) -> Callable[..., tuple[FeatureTable, WindowInfo]]:
    """window(seed, shift=None, count=WINDOW) -> the feature table of those scenes, written and read back as captures, embedded as the window step does."""

    def make(seed: int, shift: str | None = None, count: int = WINDOW) -> tuple[FeatureTable, WindowInfo]:
        folder = tmp_path / f"captures-{seed}-{shift}"
        write_captures(folder, list(shots(seed, count, shift)))
        return window_features(select_records(folder), embedder, source=str(folder))

    return make


# The monitoring loop's fixtures and helpers (events, retraining, labelling) live in loop_support.py.
from .loop_support import (  # noqa: E402,F401
    NAMES,
    SINK_ENV,
    TINY_PIPELINE,
    Webhook,
    aws_files,
    cli,
    drift_document,
    groundtruth_line,
    labelled_dataset,
    logged_events,
    moto,
    moto_server,
    project,
    python_env,
    scenes,
    webhook,
    with_yaml,
    write_drift,
    write_manifest,
)
