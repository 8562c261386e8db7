"""The training baseline the monitor compares windows against: the profile plus the same features on the training split.

A baseline folder (the `baseline` step's output, kind `monitoring-baseline`):

    baseline.json    format, the dataset (fingerprint, class names, split, images), the model (weights
                     sha256, input size, embedded layers), the detection thresholds its predictions were
                     made with, the embedding's reduction
    features.npz     the feature table of the split's images (skyops.monitoring.features), raw embeddings included
    projection.npz   the embedding's reduction: mean (D,), components (k, D), scale (k,), and which rows
                     are the MMD reference sample
    embedder.onnx    the model's backbone up to the embedded layers, with the pooling: windows embed with it
                     on ONNX Runtime (skyops.monitoring.embedding.Embedder)
    profile.json     the profile step's output, copied when it was given (class balance, box sizes, plots' data)

The predictions are the model's own on the split's images, made as the server makes them (its letterbox,
NMS and thresholds): a model finds fewer and less certain boxes than the labels hold, so labels would
be the wrong baseline for what the server answers. The embeddings come from embedder.onnx, exported
here from the same model: windows embed with the very same graph.

The reduction is a PCA of the raw embeddings, whitened (each component divided by its standard
deviation), fitted on a seeded half of the rows. The other half is the reference sample of the MMD
test: a projection fitted on the very rows the test compares would make them look closer to each other
than any new window, and the permutation test's exchangeability would not hold.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from skyops.data.layout import Manifest, atomic_output_dir, read_split
from skyops.errors import DataValidationError
from skyops.monitoring.embedding import EMBED_LAYERS, Detector, Embedder, Thresholds, sha256
from skyops.monitoring.features import FeatureTable, Predicted

FORMAT = 1
BASELINE_JSON, FEATURES_NPZ, PROJECTION_NPZ, PROFILE_JSON = "baseline.json", "features.npz", "projection.npz", "profile.json"
EMBEDDER = "embedder.onnx"
MIN_IMAGES = 20  # fewer cannot give a projection and a reference sample worth testing against


@dataclass(frozen=True)
class Projection:
    """Whitened PCA of raw embeddings; `reference` are the table rows held out of the fit for the MMD test."""

    mean: np.ndarray  # (D,)
    components: np.ndarray  # (k, D), unit rows
    scale: np.ndarray  # (k,) std of the fit rows along each component
    reference: np.ndarray  # (R,) int row indices into the baseline table

    @classmethod
    def fit(cls, raw: np.ndarray, dims: int, seed: int) -> Projection:
        """Fit on a seeded half of the rows of `raw` (N, D) that have an embedding; the other half is the reference."""
        rows = np.flatnonzero(~np.isnan(raw).any(axis=1)) if raw.size else np.zeros(0, int)
        if len(rows) < MIN_IMAGES:
            raise DataValidationError(
                f"the baseline has {len(rows)} images with pixels, fewer than {MIN_IMAGES}",
                hint="build it on a larger split (more images, or split=train)",
            )
        shuffled = np.random.default_rng(seed).permutation(rows)
        fit, reference = np.sort(shuffled[: len(rows) // 2]), np.sort(shuffled[len(rows) // 2 :])
        data = raw[fit].astype(np.float64)
        mean = data.mean(axis=0)
        _, singular, vt = np.linalg.svd(data - mean, full_matrices=False)
        scale = singular / np.sqrt(max(len(fit) - 1, 1))
        keep = min(dims, int((scale > scale[0] * 1e-6).sum()))  # drop directions the fit rows do not vary along
        components = vt[:keep]
        signs = np.sign(components[np.arange(keep), np.abs(components).argmax(axis=1)])  # SVD's sign is arbitrary: fix it
        return cls(mean, components * signs[:, None], scale[:keep], reference)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """(N, k) whitened coordinates of raw embeddings (N, D)."""
        return ((raw.astype(np.float64) - self.mean) @ self.components.T) / self.scale


@dataclass
class Baseline:
    table: FeatureTable
    projection: Projection
    meta: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return str(self.meta["dataset"]["fingerprint"])

    def save(self, out_dir: Path) -> None:
        """Write the folder's files into `out_dir` (an atomic output the caller publishes)."""
        self.table.save(out_dir / FEATURES_NPZ)
        p = self.projection
        with (out_dir / PROJECTION_NPZ).open("wb") as f:
            np.savez(f, mean=p.mean, components=p.components, scale=p.scale, reference=p.reference)
        (out_dir / BASELINE_JSON).write_text(json.dumps(self.meta, indent=1))

    @classmethod
    def load(cls, folder: Path) -> Baseline:
        """Read a baseline folder.

        Raises:
            DataValidationError: a file missing or damaged (named), or another format.
        """
        folder = Path(folder)
        missing = [n for n in (BASELINE_JSON, FEATURES_NPZ, PROJECTION_NPZ) if not (folder / n).is_file()]
        if missing:
            raise DataValidationError(
                f"{folder} is not a monitoring baseline: it lacks {', '.join(missing)}", hint="bind the baseline step's output folder"
            )
        try:
            meta = json.loads((folder / BASELINE_JSON).read_text())
            with np.load(folder / PROJECTION_NPZ, allow_pickle=False) as data:
                projection = Projection(data["mean"], data["components"], data["scale"], data["reference"])
        except (OSError, ValueError, KeyError) as e:
            raise DataValidationError(f"baseline {folder} is damaged ({e})", hint="run the baseline step again (--no-cache)") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DataValidationError(f"{folder / BASELINE_JSON} is not a format-{FORMAT} baseline", hint="run the baseline step again")
        return cls(FeatureTable.load(folder / FEATURES_NPZ), projection, meta)


def baseline_from(table: FeatureTable, meta: dict[str, Any], *, dims: int, seed: int) -> Baseline:
    """A baseline of a feature table (its reduction fitted here); `meta` gets the embedding's description."""
    projection = Projection.fit(table.embedding, dims, seed)
    embedding = {
        "raw_dims": int(table.embedding.shape[1]),
        "dims": len(projection.scale),
        "fit_images": int(len(table) - len(projection.reference)),
        "reference_images": len(projection.reference),
        "seed": seed,
    }
    return Baseline(table, projection, {"format": FORMAT, **meta, "embedding": embedding})


def build_baseline(
    splits: Path,
    detector: Detector,
    thresholds: Thresholds,
    out_dir: Path,
    *,
    profile: Path | None = None,
    split: str = "train",
    embed_size: int = 128,
    max_images: int = 2000,
    dims: int = 16,
    seed: int = 0,
    batch: int = 16,
) -> Baseline:
    """Measure the features of `split`'s images (at most `max_images`, a seeded sample) with `detector`, and write the baseline folder.

    Detections at the model's input size; embeddings at `embed_size` px, by the ONNX graph exported into the folder.

    Raises:
        DataValidationError: no such split or too few images in it, an unreadable image, or a profile of another dataset.
    """
    import cv2  # heavy: only measuring images needs it

    from skyops.data.profile import PROFILE_JSON as PROFILE_FILE

    manifest = Manifest.read(splits)
    paths = read_split(splits, split)
    if not paths:
        raise DataValidationError(f"{splits} has no {split} images ({split}.txt is missing or empty)", hint="bind the split step's output")
    if len(paths) > max_images:
        paths = [paths[i] for i in np.sort(np.random.default_rng(seed).choice(len(paths), max_images, replace=False))]
    profile_doc = _profile(profile / PROFILE_FILE, manifest.fingerprint) if profile is not None else None
    with atomic_output_dir(out_dir) as staging:
        embedder_path = detector.export_embedder(staging / EMBEDDER, embed_size)
        embedder = Embedder(embedder_path, embed_size)
        table = FeatureTable()
        for start in range(0, len(paths), batch):
            chunk = paths[start : start + batch]
            images = []
            for path in chunk:
                image = cv2.imread(str(splits / path), cv2.IMREAD_COLOR)
                if image is None:
                    raise DataValidationError(f"{splits / path} is not a readable image", hint="run the validate step before split")
                images.append(image)
            detections, embedding = detector.detect(images, thresholds), embedder.embed(images)
            for path, image, found, vector in zip(chunk, images, detections, embedding, strict=True):
                names = tuple(detector.names[c] if c < len(detector.names) else str(c) for c in found.classes.tolist())
                predicted = Predicted(names, found.scores.astype(np.float64), found.boxes)
                table.add(path, image, (image.shape[1], image.shape[0]), predicted, vector)
        model = {
            "weights_sha256": detector.weights_sha256,
            "imgsz": detector.imgsz,
            "embed_size": embed_size,
            "embed_layers": list(EMBED_LAYERS),
            "embedder": EMBEDDER,
            "embedder_sha256": sha256(embedder_path),
        }
        meta: dict[str, Any] = {
            "dataset": {"fingerprint": manifest.fingerprint, "names": manifest.names, "split": split, "images": len(paths)},
            "model": model,
            "thresholds": {"conf": thresholds.conf, "iou": thresholds.iou, "max_det": thresholds.max_det},
            "profile": profile_doc is not None,
        }
        baseline = baseline_from(table, meta, dims=dims, seed=seed)
        baseline.save(staging)
        if profile is not None:
            shutil.copyfile(profile / PROFILE_FILE, staging / PROFILE_JSON)
    return baseline


def _profile(path: Path, fingerprint: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataValidationError(f"profile {path} cannot be read ({e})", hint="bind the profile step's output folder") from None
    theirs = doc.get("dataset", {}).get("fingerprint") if isinstance(doc, dict) else None
    if theirs != fingerprint:
        raise DataValidationError(
            f"profile {path} is of dataset {str(theirs)[:12]}..., the split of {fingerprint[:12]}...",
            hint="bind the profile and the split of the same pipeline run",
        )
    return doc
