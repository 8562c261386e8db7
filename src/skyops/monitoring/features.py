"""Features of one image and of the detector's answer for it, and the table of them that drift is measured on.

One row per image (a batch request gives one row per image), measured in one pass over the decoded
image and the detections the model gave for it:

    image       brightness, contrast, sharpness   skyops.data.profile.image_statistics: the profile's own
                                                  measures (gray mean, std, variance of the Laplacian at 256 px)
                saturation                        mean HSV saturation, 0-255
                colourfulness                     Hasler & Suesstrunk (2003): std + 0.3 mean of the opponent axes
                pixels                            log10(width x height)
                aspect                            width / height
    prediction  boxes                             detections kept (after the threshold and NMS)
                empty                             "yes" when there are none (categorical)
                mean_score, min_score             of the image's detections; NaN when there are none
                box_size                          median sqrt(box area / image area): object size, scale-free
                class_mix                         the image's most frequent predicted class, "none" when empty
                                                  (categorical: one label per image keeps images independent)
    embedding   the detector's own backbone features, pooled (skyops.monitoring.embedding), one vector per image

Why per image, never per box: the tests compare two samples of independent units. Boxes of one image
share its light, place and camera, so a test over pooled boxes counts one odd image many times and
raises false alarms; summaries per image keep the units independent.

`FeatureTable` holds the rows of a window (captured requests) or of a baseline (the training split):
`save` / `load` as one .npz (no pickles).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from skyops.data.profile import image_statistics
from skyops.errors import DataValidationError

NONE_CLASS = "none"  # class_mix of an image without detections


class FeatureKind(StrEnum):
    IMAGE = "image"
    PREDICTION = "prediction"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: FeatureKind
    categorical: bool  # tested with chi-square; numeric ones with Kolmogorov-Smirnov
    unit: str


FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("brightness", FeatureKind.IMAGE, False, "gray level 0-255"),
    FeatureSpec("contrast", FeatureKind.IMAGE, False, "std of gray"),
    FeatureSpec("sharpness", FeatureKind.IMAGE, False, "variance of the Laplacian at 256 px"),
    FeatureSpec("saturation", FeatureKind.IMAGE, False, "mean HSV saturation 0-255"),
    FeatureSpec("colourfulness", FeatureKind.IMAGE, False, "Hasler-Suesstrunk M"),
    FeatureSpec("pixels", FeatureKind.IMAGE, False, "log10(width x height)"),
    FeatureSpec("aspect", FeatureKind.IMAGE, False, "width / height"),
    FeatureSpec("boxes", FeatureKind.PREDICTION, False, "detections per image"),
    FeatureSpec("empty", FeatureKind.PREDICTION, True, "image without detections"),
    FeatureSpec("mean_score", FeatureKind.PREDICTION, False, "mean confidence of the image's detections"),
    FeatureSpec("min_score", FeatureKind.PREDICTION, False, "lowest confidence of the image's detections"),
    FeatureSpec("box_size", FeatureKind.PREDICTION, False, "median sqrt(box area / image area)"),
    FeatureSpec("class_mix", FeatureKind.PREDICTION, True, "most frequent predicted class of the image"),
)
SPECS = {f.name: f for f in FEATURES}
NUMERIC = tuple(f.name for f in FEATURES if not f.categorical)
CATEGORICAL = tuple(f.name for f in FEATURES if f.categorical)
IMAGE_NUMERIC = tuple(f.name for f in FEATURES if f.kind is FeatureKind.IMAGE)


@dataclass(frozen=True)
class Predicted:
    """The detector's answer for one image, whoever gave it (the server's JSON or a model run here)."""

    classes: tuple[str, ...]  # class name per detection
    scores: np.ndarray  # (K,) confidence
    boxes: np.ndarray  # (K, 4) xyxy in pixels of the original image

    @classmethod
    def from_server(cls, detections: Sequence[dict[str, Any]]) -> Predicted:
        """From the server's answer for one image: [{"class_name", "score", "box": [x0, y0, x1, y1]}, ...]."""
        classes = tuple(str(d.get("class_name", d.get("class_id", "?"))) for d in detections)
        scores = np.array([float(d["score"]) for d in detections], dtype=np.float64)
        boxes = np.array([d["box"] for d in detections], dtype=np.float64).reshape(-1, 4)
        return cls(classes, scores, boxes)


def image_features(image: np.ndarray) -> dict[str, float]:
    """The image features of one (H, W, 3) uint8 BGR image (the module docstring)."""
    import cv2  # heavy: only feature extraction needs it

    height, width = image.shape[:2]
    brightness, contrast, sharpness = image_statistics(image)
    small = image
    scale = 256 / max(height, width)
    if scale < 1:  # colour statistics do not need every pixel
        small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    saturation = float(cv2.cvtColor(small, cv2.COLOR_BGR2HSV)[:, :, 1].mean())
    b, g, r = (small[:, :, i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = math.hypot(float(rg.std()), float(yb.std())) + 0.3 * math.hypot(float(rg.mean()), float(yb.mean()))
    return {
        "brightness": brightness,
        "contrast": contrast,
        "sharpness": sharpness,
        "saturation": saturation,
        "colourfulness": colourfulness,
        "pixels": math.log10(width * height),
        "aspect": width / height,
    }


def prediction_features(predicted: Predicted, width: int, height: int) -> tuple[dict[str, float], dict[str, str]]:
    """(numeric, categorical) prediction features of one image of `width` x `height` px."""
    count = len(predicted.classes)
    if count == 0:
        numeric = {"boxes": 0.0, "mean_score": math.nan, "min_score": math.nan, "box_size": math.nan}
        return numeric, {"empty": "yes", "class_mix": NONE_CLASS}
    sides = np.clip(predicted.boxes[:, 2:] - predicted.boxes[:, :2], 0, None)
    relative = np.sqrt(sides[:, 0] * sides[:, 1] / max(width * height, 1))
    counts = Counter(predicted.classes)
    top = max(counts.values())
    majority = min(name for name, n in counts.items() if n == top)  # ties: the first name, so the label is stable
    numeric = {
        "boxes": float(count),
        "mean_score": float(predicted.scores.mean()),
        "min_score": float(predicted.scores.min()),
        "box_size": float(np.median(relative)),
    }
    return numeric, {"empty": "no", "class_mix": majority}


@dataclass
class FeatureTable:
    """Feature rows, one per image, and which request each image came from.

    `embedding` rows are NaN for an image whose pixels were not captured (SageMaker's output-only
    capture): its prediction features are still known, its image features are NaN too.
    """

    request_ids: list[str] = field(default_factory=list)  # the request (inference id) of each row
    numeric: dict[str, list[float]] = field(default_factory=lambda: {n: [] for n in NUMERIC})
    categorical: dict[str, list[str]] = field(default_factory=lambda: {n: [] for n in CATEGORICAL})
    embedding_rows: list[np.ndarray | None] = field(default_factory=list)
    _embedding: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)  # `embedding`, stacked once

    def add(
        self, request_id: str, image: np.ndarray | None, size: tuple[int, int], predicted: Predicted, embedding: np.ndarray | None
    ) -> None:
        """Add one image: its pixels (None when not captured), (width, height), the detections and its raw embedding."""
        width, height = size
        values = image_features(image) if image is not None else {n: math.nan for n in IMAGE_NUMERIC}
        if image is None:  # the answer still says how large the image was
            values |= {"pixels": math.log10(max(width * height, 1)), "aspect": width / max(height, 1)}
        numeric, categorical = prediction_features(predicted, width, height)
        for name in NUMERIC:
            self.numeric[name].append((values | numeric)[name])
        for name in CATEGORICAL:
            self.categorical[name].append(categorical[name])
        self.request_ids.append(request_id)
        self.embedding_rows.append(embedding)
        self._embedding = None

    def __len__(self) -> int:
        return len(self.request_ids)

    def column(self, name: str) -> np.ndarray:
        """A numeric feature as float64 (NaN where unmeasured), or a categorical one as str."""
        if name in self.numeric:
            return np.asarray(self.numeric[name], dtype=np.float64)
        return np.asarray(self.categorical[name], dtype=str)

    @property
    def embedding(self) -> np.ndarray:
        """(N, D) float32 raw embeddings; NaN rows where the image was not captured; (N, 0) when none has one."""
        if self._embedding is None:
            dims = next((len(e) for e in self.embedding_rows if e is not None), 0)
            rows = [e if e is not None else np.full(dims, np.nan, np.float32) for e in self.embedding_rows]
            self._embedding = np.stack(rows).astype(np.float32) if rows else np.zeros((0, dims), np.float32)
        return self._embedding

    def save(self, path: Path) -> None:
        """One .npz: every column, the request ids and the embeddings (loadable without pickles)."""
        arrays: dict[str, np.ndarray] = {"request_ids": np.asarray(self.request_ids, dtype=str), "embedding": self.embedding}
        arrays |= {f"numeric.{n}": self.column(n) for n in NUMERIC} | {f"categorical.{n}": self.column(n) for n in CATEGORICAL}
        with path.open("wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> FeatureTable:
        """Read a table `save` wrote.

        Raises:
            DataValidationError: not such a file, or a column missing or of the wrong length.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as e:
            raise DataValidationError(f"{path} is not a feature table ({e})", hint="run the step that wrote it again") from None
        expected = {"request_ids", "embedding", *(f"numeric.{n}" for n in NUMERIC), *(f"categorical.{n}" for n in CATEGORICAL)}
        missing = sorted(expected - set(arrays))
        lengths = {k: len(v) for k, v in arrays.items() if k in expected}
        if missing or len(set(lengths.values())) > 1:
            what = f"lacks {', '.join(missing)}" if missing else f"has columns of different lengths {sorted(set(lengths.values()))}"
            raise DataValidationError(f"feature table {path} {what}", hint="it was written by another skyops version: run that step again")
        table = cls(
            request_ids=[str(r) for r in arrays["request_ids"]],
            numeric={n: arrays[f"numeric.{n}"].astype(np.float64).tolist() for n in NUMERIC},
            categorical={n: [str(v) for v in arrays[f"categorical.{n}"]] for n in CATEGORICAL},
        )
        embedding = arrays["embedding"].astype(np.float32)
        table.embedding_rows = [None if np.isnan(row).all() else row for row in embedding] if embedding.shape[1] else [None] * len(table)
        table._embedding = embedding
        return table
