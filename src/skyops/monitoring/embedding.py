"""The detector's own features as an embedding, and the same network's detections, in one forward pass.

The embedding is the mean over the image of three YOLO11 backbone stages (layers 4, 6 and 10: the
C3k2 / C2PSA outputs at strides 8, 16 and 32, what the neck reads), concatenated: 512 numbers for
YOLO11n. It is what Ultralytics' own `embed=` returns for those layers (adaptive average pooling),
so the embedding describes the images the way the detector sees them: a drift the model cannot see
past shows here even when the image statistics look normal.

Inputs go through the server's own letterbox (skyops.serving.detect), so the network sees exactly
what it sees when serving. A window needs only the embedding (its detections were captured): the
pass stops after layer 10. The baseline needs both: the whole network runs once, the three layers
read through forward hooks on the way, and the raw head goes through the server's NMS.

Weights: a folder holding best.pt (the train step's model; on SageMaker its model.tar.gz, unpacked),
or a served model folder or package (metadata.json naming a torch artifact, sha256 checked).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skyops.errors import ConfigError
from skyops.serving.detect import Detections, letterbox, postprocess
from skyops.serving.model import METADATA, BackendName, locate_model_folder, read_model_info

EMBED_LAYERS = (4, 6, 10)  # YOLO11 backbone stages at strides 8, 16, 32
WEIGHTS = "best.pt"


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
        boxes, blobs = [], []
        for image in images:
            blob, box = letterbox(image, self.imgsz)
            blobs.append(blob)
            boxes.append(box)
        return self.torch.from_numpy(np.concatenate(blobs)), boxes

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32 embeddings of BGR images; the network stops after the last embedded layer."""
        if not images:
            return np.zeros((0, 0), np.float32)
        batch, _ = self._blobs(images)
        with self.torch.inference_mode():
            vectors = self.model.predict(batch, embed=list(EMBED_LAYERS))
        return np.stack([v.numpy() for v in vectors]).astype(np.float32)

    def detect_and_embed(self, images: Sequence[np.ndarray], thresholds: Thresholds) -> tuple[list[Detections], np.ndarray]:
        """Detections (as the server makes them) and embeddings of BGR images, from one pass of the whole network."""
        if not images:
            return [], np.zeros((0, 0), np.float32)
        batch, boxes = self._blobs(images)
        pooled: dict[int, Any] = {}
        hooks = [
            self.model.model[i].register_forward_hook(lambda _m, _in, out, i=i: pooled.__setitem__(i, out.mean(dim=(2, 3))))
            for i in EMBED_LAYERS
        ]
        try:
            with self.torch.inference_mode():
                out = self.model(batch)
        finally:
            for hook in hooks:
                hook.remove()
        head = (out[0] if isinstance(out, tuple | list) else out).numpy()  # (N, 4 + nc, candidates)
        detections = [
            postprocess(head[k], box, conf=thresholds.conf, iou=thresholds.iou, max_det=thresholds.max_det) for k, box in enumerate(boxes)
        ]
        embedding = self.torch.cat([pooled[i] for i in EMBED_LAYERS], dim=1).numpy().astype(np.float32)
        return detections, embedding
