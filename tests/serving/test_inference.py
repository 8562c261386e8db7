"""The predictor's warm-up: the first inference of a backend runs alone, then one per worker thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from skyops.serving.backends import OnnxBackend, cpu_count, load_backend
from skyops.serving.detect import NmsKind
from skyops.serving.images import Limits
from skyops.serving.inference import WARMUP_RUNS, Predictor
from skyops.serving.metrics import ServerMetrics
from skyops.serving.model import BackendName, read_model_info


class Watched:
    """The real ONNX backend, recording how many calls were running whenever one started, and on which thread."""

    def __init__(self, inner: OnnxBackend) -> None:
        self.inner, self.name, self.threads = inner, inner.name, inner.threads
        self.lock = threading.Lock()
        self.running = 0
        self.starts: list[tuple[int, str]] = []  # (calls already running, thread name)

    def infer(self, blob: np.ndarray) -> np.ndarray:
        with self.lock:
            self.starts.append((self.running, threading.current_thread().name))
            self.running += 1
        try:
            return self.inner.infer(blob)
        finally:
            with self.lock:
                self.running -= 1


def test_the_first_inference_runs_alone_in_the_loading_thread(model_dir: Path) -> None:
    """OpenVINO's binding deadlocks when two threads make its first call at once (seen: 2 processes in 15 with 8 threads)."""
    info = read_model_info(model_dir)
    backend = Watched(OnnxBackend(info.artifact(BackendName.ONNX), BackendName.ONNX, 1))
    predictor = Predictor(info, backend, Limits(10**6, 10**6, 1), ServerMetrics(), workers=4, max_queue=0, nms=NmsKind.NUMPY)
    try:
        predictor.warm_up()
    finally:
        predictor.close()
    assert backend.starts[0] == (0, threading.current_thread().name)
    assert len(backend.starts) == 1 + WARMUP_RUNS * 4
    assert {name for _, name in backend.starts[1:]} <= {f"skyops-infer_{i}" for i in range(4)}


def test_torch_runs_on_every_core_by_default(model_dir: Path, tmp_path: Path) -> None:
    """Issue 15: every usable core by default, as training and evaluation (Ultralytics alone takes cores - 1); `threads` sets it."""
    import torch

    info = read_model_info(model_dir)
    before = torch.get_num_threads()
    try:
        backend = load_backend(info, BackendName.TORCH, threads=0, state_dir=tmp_path)
        assert backend.threads == torch.get_num_threads() == cpu_count()
        assert load_backend(info, BackendName.TORCH, threads=2, state_dir=tmp_path).threads == torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
