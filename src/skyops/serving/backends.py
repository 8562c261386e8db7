"""Inference backends: one (1, 3, S, S) float32 input in, the raw (4 + nc, N) YOLO head out.

Pre- and post-processing are the server's (skyops.serving.detect), the same for every backend, so
backends differ only in the engine that runs the network:

    onnx      ONNX Runtime on the fp32 model (the default). One session shared by every worker
              thread (ORT's Run is thread-safe and releases the GIL); `threads` intra-op threads per run.
    int8      the same on the statically quantised model, when the package has one.
    openvino  OpenVINO on its IR, when the package has one; one infer request per worker thread.
              OpenVINO's default precision (bf16 where the CPU has it) is what the export step checked.
    torch     the Ultralytics PyTorch weights (fused, eval mode), for comparison and fallback: one run
              at a time, each on `threads` torch threads (default: every usable core, as training and
              evaluation use, not Ultralytics' cores - 1; the cost: torch's OpenMP threads spin against
              the event loop and any other work on the machine, on 2 shared cores 730 ms of CPU per
              request against 46 with one thread, so a busy machine serves better with `--threads 1`).

`workers` (how many requests run inference at once) times `threads` should not exceed the cores:
benchmarks/serve_load.py measures the combinations; the server's defaults come from there.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from skyops.errors import ConfigError
from skyops.serving.model import Artifact, BackendName, ModelInfo
from skyops.training.threads import usable_cpus


class Backend(Protocol):
    name: BackendName
    threads: int

    def infer(self, blob: np.ndarray) -> np.ndarray:
        """Run the network on a (1, 3, S, S) float32 input; returns the (4 + nc, N) float32 head."""
        ...


def cpu_count() -> int:
    """Cores this process may run on (a container's CPU set and CPU quota, not the host's)."""
    return usable_cpus()


def load_backend(info: ModelInfo, name: BackendName, *, threads: int, state_dir: Path) -> Backend:
    """Load `name`'s artifact of the model (its sha256 checked first).

    Args:
        threads: intra-op threads per inference (0: every usable core for torch, 1 for the others).
        state_dir: where Ultralytics keeps its private offline settings (torch backend only).

    Raises:
        ConfigError: the package has no such artifact, the file is damaged, or the runtime refuses it.
    """
    artifact = info.artifact(name)
    try:
        if name in (BackendName.ONNX, BackendName.INT8):
            return OnnxBackend(artifact, name, threads or 1)
        if name is BackendName.OPENVINO:
            return OpenVinoBackend(artifact, threads or 1)
        return TorchBackend(artifact, threads or cpu_count(), state_dir)
    except (RuntimeError, ValueError, OSError) as e:  # the runtimes' own "cannot load this model"
        raise ConfigError(f"the {name.value} runtime cannot load {artifact.path}: {e}", hint="export the model again") from None


class OnnxBackend:
    def __init__(self, artifact: Artifact, name: BackendName, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads spin waiting for work by default: with several workers that burns the cores they need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(artifact.path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.name, self.threads = name, threads

    def infer(self, blob: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.session.run(None, {self.input: blob})[0]
        return out[0]


class OpenVinoBackend:
    def __init__(self, artifact: Artifact, threads: int) -> None:
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(str(artifact.path), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
        self.local = threading.local()  # an infer request per worker thread: requests are not thread-safe
        self.name, self.threads = BackendName.OPENVINO, threads

    def infer(self, blob: np.ndarray) -> np.ndarray:
        request = getattr(self.local, "request", None)
        if request is None:
            request = self.local.request = self.compiled.create_infer_request()
        result: Any = request.infer({0: blob})
        return np.array(next(iter(result.values()))[0])


class TorchBackend:
    def __init__(self, artifact: Artifact, threads: int, state_dir: Path) -> None:
        import torch

        from skyops.training.ultra import import_ultralytics

        import_ultralytics(state_dir)
        from ultralytics import YOLO

        torch.set_num_threads(threads)
        self.torch = torch
        network: Any = YOLO(str(artifact.path)).model
        self.model = network.fuse().eval()
        self.lock = threading.Lock()  # one run at a time: each already uses every thread it was given
        self.name, self.threads = BackendName.TORCH, threads

    def infer(self, blob: np.ndarray) -> np.ndarray:
        with self.lock, self.torch.inference_mode():
            out = self.model(self.torch.from_numpy(blob))
        head = out[0] if isinstance(out, tuple | list) else out
        return np.asarray(head[0].numpy(), dtype=np.float32)
