"""Small named fixtures for training: a tiny generated dataset, one Ultralytics state dir, one MLflow store.

Ultralytics reads its settings once per process, so in-process tests share one state dir
(`ultra_state`); tests that need a fresh import run a subprocess (`run_python`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skyops.data.layout import IMAGES, LABELS, write_data_yaml
from skyops.training.tracking import TrackingStore
from skyops.training.train import TrainConfig

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
TINY_NAMES = ["red", "blue"]
TINY_COLOURS = [(220, 30, 30), (30, 30, 220)]  # RGB per class


def make_boxes_dataset(root: Path, *, images: int, size: int, seed: int = 0) -> Path:
    """Noise images with 1-3 solid rectangles each, in the canonical layout; returns its data yaml."""
    rng = np.random.default_rng(seed)
    (root / IMAGES).mkdir(parents=True)
    (root / LABELS).mkdir()
    for i in range(images):
        pixels = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)  # (H, W, 3) grey noise
        lines = []
        for _ in range(rng.integers(1, 4)):
            cls = int(rng.integers(0, len(TINY_NAMES)))
            w, h = (int(v) for v in rng.integers(size // 8, size // 3, 2))
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            pixels[y : y + h, x : x + w] = TINY_COLOURS[cls]
            lines.append(f"{cls} {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}\n")
        Image.fromarray(pixels).save(root / IMAGES / f"scene{i:03d}.png")
        (root / LABELS / f"scene{i:03d}.txt").write_text("".join(lines))
    return write_data_yaml(root, root / "data.yaml", TINY_NAMES)


@pytest.fixture(scope="session")
def tiny_data_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 images of 128 px, 2 classes; data yaml with train = val = all images."""
    return make_boxes_dataset(tmp_path_factory.mktemp("tiny") / "dataset", images=8, size=128)


@pytest.fixture(scope="session")
def ultra_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one state dir in-process tests give Ultralytics."""
    return tmp_path_factory.mktemp("ultra-state")


@pytest.fixture
def tiny_config() -> TrainConfig:
    """Seconds per epoch on 2 CPU cores."""
    return TrainConfig(epochs=2, imgsz=64, batch=4, workers=0, device="cpu", mosaic=0.0)


@pytest.fixture(scope="session")
def tracking_store(tmp_path_factory: pytest.TempPathFactory) -> TrackingStore:
    """One real sqlite store for the session (creating one runs MLflow's migrations, ~1.5 s)."""
    store = TrackingStore.local(tmp_path_factory.mktemp("mlflow"))
    store.client.search_experiments()  # create the schema now, not inside the first test
    return store


@pytest.fixture
def aerial_cars() -> Path:
    root = DATASETS / "aerial-cars" / "datasets"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (the shared/ folder beside the repo)")
    return root


@pytest.fixture
def run_python() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a snippet in a fresh interpreter, without pytest's variables (Ultralytics and MLflow change behaviour under tests)."""

    def run(
        code: str, *, env: dict[str, str] | None = None, unset: tuple[str, ...] = (), timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "YOLO_", "MLFLOW_")) and k not in unset}
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)], env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )

    return run


@pytest.fixture
def threads_seen(monkeypatch: pytest.MonkeyPatch, ultra_state: Path) -> Callable[..., list[tuple[str, int]]]:
    """`threads_seen(event, ...)`: (where, torch's thread count) at each of those Ultralytics callbacks.

    Added to Ultralytics' default callbacks (restored after the test), so every trainer, validator
    and predictor of a `YOLO` built afterwards runs it: what the code under test set, read from
    inside the run. `where` is the event, plus " (standalone)" for a validator outside the training
    loop (the final validation of best.pt, or an evaluation).
    """
    from skyops.training.ultra import import_ultralytics

    import_ultralytics(ultra_state)
    from ultralytics.utils import callbacks

    seen: list[tuple[str, int]] = []

    def watch(*events: str) -> list[tuple[str, int]]:
        import torch

        for event in events:

            def record(runner: object, event: str = event) -> None:
                where = event if getattr(runner, "training", True) else f"{event} (standalone)"
                seen.append((where, torch.get_num_threads()))

            monkeypatch.setitem(callbacks.default_callbacks, event, [*callbacks.default_callbacks[event], record])
        return seen

    return watch
