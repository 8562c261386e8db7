"""The detector's own features as an embedding, and the same network's detections, in one forward pass.

The embedding is the mean over the image of three YOLO11 backbone stages (layers 4, 6 and 10: the
C3k2 / C2PSA outputs at strides 8, 16 and 32, what the neck reads), concatenated: 512 numbers for
YOLO11n. It is what Ultralytics' own `embed=` returns for those layers (adaptive average pooling),
so the embedding describes the images the way the detector sees them: a drift the model cannot see
past shows here even when the image statistics look normal.

Inputs go through the server's own letterbox (skyops.serving.detect). Detections use the model's input
size (the baseline's predictions must be the server's: the whole network, then the server's NMS). The
embedding uses `embed_size` px, 128 by default: the backbone at 128 px still sees a scene's light,
layout and texture, at a quarter of the cost at 256 (on two busy cores 7 ms an image against 30).
`Detector.export_embedder` writes the backbone up to layer 10 with its pooling as one small ONNX graph
at that size; the baseline and every window embed with that same graph on ONNX Runtime (`Embedder`):
the same numbers on both sides, and no torch or Ultralytics import in a window (torch eager ran 2-8x
slower than ORT there, benchmarks/monitor_throughput.py).

Weights: a folder holding best.pt (the train step's model; on SageMaker its model.tar.gz, unpacked),
or a served model folder or package (metadata.json naming a torch artifact, sha256 checked).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from skyops.errors import ConfigError
from skyops.serving.detect import Detections, letterbox, postprocess
from skyops.serving.model import METADATA, BackendName, locate_model_folder, read_model_info

EMBED_LAYERS = (4, 6, 10)  # YOLO11 backbone stages at strides 8, 16, 32
WEIGHTS = "best.pt"
OPSET = 17  # as the server's exported models


class Embeds(Protocol):
    """What a window needs: embeddings of decoded BGR images, (N, D) float32."""

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


def _batch(images: Sequence[np.ndarray], imgsz: int) -> tuple[np.ndarray, list[Any]]:
    """The server's letterbox of each image, stacked: (N, 3, imgsz, imgsz) float32, and each image's Letterbox."""
    blobs, boxes = [], []
    for image in images:
        blob, box = letterbox(image, imgsz)
        blobs.append(blob)
        boxes.append(box)
    return np.concatenate(blobs), boxes


@dataclass(frozen=True)
class Thresholds:
    """The server's detection settings: the baseline's predictions must be made as the served ones are."""

    conf: float = 0.25
    iou: float = 0.45
    max_det: int = 300


def find_weights(folder: Path) -> tuple[Path, Thresholds | None]:
    """The torch weights a model folder holds, and the serving thresholds when it is a served model's folder.

    Raises:
        ConfigError: no best.pt, and no model package naming a torch artifact.
    """
    from skyops.training.model_folder import model_folder

    folder = model_folder(Path(folder))
    if (folder / WEIGHTS).is_file():
        served = folder / METADATA
        if not served.is_file():
            return folder / WEIGHTS, None
    try:
        info = read_model_info(locate_model_folder(folder))
    except ConfigError:
        raise ConfigError(
            f"model {folder} holds neither {WEIGHTS} nor a served model (metadata.json)",
            hint="bind the train step's model folder, or a model package the server loads",
        ) from None
    artifact = info.artifact(BackendName.TORCH)  # its sha256 is checked here
    t = info.thresholds
    return artifact.path, Thresholds(t.conf, t.iou, t.max_det)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Detector:
    """A YOLO11 detector on the CPU, for embeddings (and detections) of decoded BGR images.

    Args:
        weights: an Ultralytics checkpoint (best.pt).
        state_dir: where Ultralytics keeps its private offline settings.
        imgsz: square input side; default: the size the model was trained at.
        threads: torch threads (0: leave torch's default).
    """

    def __init__(self, weights: Path, state_dir: Path, *, imgsz: int = 0, threads: int = 0) -> None:
        import torch

        from skyops.training.ultra import import_ultralytics

        import_ultralytics(state_dir)
        from ultralytics.nn.tasks import load_checkpoint

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.weights_sha256 = sha256(weights)
        try:
            model, _ = load_checkpoint(str(weights), device="cpu", fuse=True)
        except (RuntimeError, TypeError, ValueError, OSError, KeyError) as e:
            raise ConfigError(
                f"{weights} is not an Ultralytics checkpoint torch can load: {e}", hint="bind a best.pt the train step wrote"
            ) from None
        layers = getattr(model, "model", None)
        if layers is None or len(layers) <= max(EMBED_LAYERS) or any(layers[i].f != -1 for i in range(max(EMBED_LAYERS) + 1)):
            raise ConfigError(
                f"{weights} is not a YOLO11-shaped detector: its first {max(EMBED_LAYERS) + 1} layers are not one sequential backbone",
                hint="monitoring embeds with YOLO11's backbone stages 4, 6 and 10",
            )
        self.model: Any = model
        self.imgsz = int(imgsz or model.args.get("imgsz", 640))
        names = model.names
        self.names = [names[i] for i in sorted(names)] if isinstance(names, dict) else list(names)

    def _blobs(self, images: Sequence[np.ndarray]) -> tuple[Any, list[Any]]:
        batch, boxes = _batch(images, self.imgsz)
        return self.torch.from_numpy(batch), boxes

    def embed(self, images: Sequence[np.ndarray], size: int = 0) -> np.ndarray:
        """(N, D) float32 embeddings of BGR images letterboxed to `size` px (0: the model's); the network stops after layer 10."""
        if not images:
            return np.zeros((0, 0), np.float32)
        batch, _ = _batch(images, size or self.imgsz)
        with self.torch.inference_mode():
            vectors = self.model.predict(self.torch.from_numpy(batch), embed=list(EMBED_LAYERS))
        return np.stack([v.numpy() for v in vectors]).astype(np.float32)

    def detect(self, images: Sequence[np.ndarray], thresholds: Thresholds) -> list[Detections]:
        """Detections of BGR images as the server makes them: its letterbox, the whole network, its NMS."""
        if not images:
            return []
        batch, boxes = self._blobs(images)
        with self.torch.inference_mode():
            out = self.model(batch)
        head = (out[0] if isinstance(out, tuple | list) else out).numpy()  # (N, 4 + nc, candidates)
        return [
            postprocess(head[k], box, conf=thresholds.conf, iou=thresholds.iou, max_det=thresholds.max_det) for k, box in enumerate(boxes)
        ]

    def export_embedder(self, path: Path, size: int = 0) -> Path:
        """Write the backbone up to the last embedded layer, with its pooling, as an ONNX graph for `Embedder`.

        Its input is (batch, 3, size, size), `size` px (0: the model's input size); the batch is dynamic.
        """
        torch: Any = self.torch
        layers = self.model.model
        module: Any = torch.nn.Module  # a base class from a lazily imported module

        class Backbone(module):  # the layers are one sequential chain (checked at load)
            def __init__(self) -> None:
                super().__init__()
                self.layers = torch.nn.ModuleList(layers[i] for i in range(max(EMBED_LAYERS) + 1))

            def forward(self, x: Any) -> Any:
                pooled = []
                for i, layer in enumerate(self.layers):
                    x = layer(x)
                    if i in EMBED_LAYERS:
                        pooled.append(x.mean(dim=(2, 3)))
                return torch.cat(pooled, dim=1)

        example = torch.zeros(1, 3, size or self.imgsz, size or self.imgsz)
        with torch.no_grad(), warnings.catch_warnings():
            # torch 2.9+ calls this exporter legacy; the new one needs onnxscript, which skyops does not install.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                Backbone().eval(),
                (example,),
                str(path),
                dynamo=False,  # the TorchScript exporter: no onnxscript needed, and a plain graph of this chain
                input_names=["images"],
                output_names=["embedding"],
                dynamic_axes={"images": {0: "batch"}, "embedding": {0: "batch"}},
                opset_version=OPSET,
            )
        return path


class Embedder:
    """The exported backbone on ONNX Runtime: embeddings of BGR images, as `Detector.embed` gives them.

    Args:
        path: the graph `Detector.export_embedder` wrote.
        imgsz: the square input side it was exported for (the baseline's `embed_size`).
        threads: intra-op threads (0: every core this process may use).
    """

    def __init__(self, path: Path, imgsz: int, *, threads: int = 0) -> None:
        import onnxruntime as ort

        from skyops.serving.backends import cpu_count

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_count()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads give their core back
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own error types for a missing or damaged graph
            raise ConfigError(
                f"ONNX Runtime cannot load the embedder {path}: {e}", hint="run the baseline step again (--no-cache)"
            ) from None
        self.imgsz = imgsz

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        if not images:
            return np.zeros((0, 0), np.float32)
        batch, _ = _batch(images, self.imgsz)
        out: np.ndarray = self.session.run(None, {"images": batch})[0]
        return out.astype(np.float32)
