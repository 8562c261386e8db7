"""baseline: the monitoring baseline of a trained model: the profile plus the monitor's features on the training split.

The model's own detections and embeddings of the split's images, made as the server makes them
(skyops.monitoring.baseline has the folder's layout). Run it once per model and dataset: the monitor
pipeline starts with it, so the local engine's cache makes it once and every later window reuses it;
the default pipeline can run it too, after train (docs/monitoring.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.steps import CATALOG


@dataclass(frozen=True, kw_only=True)
class BaselineConfig(StepConfig):
    split: Literal["train", "val", "test"] = "train"
    imgsz: Annotated[int, Range(ge=0)] = 0  # px, detections; 0: the size the model was trained at
    embed_size: Annotated[int, Range(ge=32)] = 128  # px, the embedding's input (a multiple of 32)
    conf: Annotated[float, Range(ge=0, le=1)] = 0.25  # as the server: a served model's metadata.json wins
    iou: Annotated[float, Range(gt=0, le=1)] = 0.45
    max_det: Annotated[int, Range(ge=1)] = 300
    max_images: Annotated[int, Range(ge=20)] = 2000  # a seeded sample of a larger split
    dims: Annotated[int, Range(ge=2)] = 16  # whitened PCA components of the embedding
    seed: int = 0
    batch: Annotated[int, Range(ge=1)] = 16
    threads: Annotated[int, Range(ge=0)] = 0  # torch threads; 0: torch's default (every core)

    def problems(self) -> list[str]:
        return [] if self.embed_size % 32 == 0 else [f"embed_size {self.embed_size} must be a multiple of 32 (YOLO's largest stride)"]


SPEC = StepSpec(
    step_type="baseline",
    node_type=NodeType.INTERNAL,
    inputs=(
        Port(name="splits", kind="yolo-splits"),
        Port(name="model", kind="model-weights", description="the served model's weights (best.pt) or its package"),
        Port(name="profile", kind="data-profile", optional=True, description="the profile step's output, copied in"),
    ),
    outputs=(
        Port(
            name="baseline",
            kind="monitoring-baseline",
            description="baseline.json, features.npz, projection.npz, embedder.onnx",
            files=("baseline.json", "features.npz", "projection.npz", "embedder.onnx"),
        ),
    ),
    description="the monitoring baseline: the model's features on the training split",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.baseline",
    job_kind=JobKind.PROCESSING,
    inputs={"splits": processing_input("splits"), "model": processing_input("model"), "profile": processing_input("profile")},
    outputs={"baseline": processing_output("baseline")},
    optional_env={"SKYOPS_STATE_DIR": "/tmp/skyops"},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=BaselineConfig, libraries=("ultralytics", "torch", "numpy", "opencv-python-headless"))
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: BaselineConfig) -> None:
    from skyops.monitoring.baseline import build_baseline
    from skyops.monitoring.embedding import Detector, Thresholds, find_weights

    weights, served = find_weights(inputs["model"])
    detector = Detector(weights, Path(env["SKYOPS_STATE_DIR"]), imgsz=args.imgsz, threads=args.threads)
    baseline = build_baseline(
        inputs["splits"],
        detector,
        served or Thresholds(args.conf, args.iou, args.max_det),
        outputs["baseline"],
        profile=inputs.get("profile"),
        split=args.split,
        embed_size=args.embed_size,
        max_images=args.max_images,
        dims=args.dims,
        seed=args.seed,
        batch=args.batch,
    )
    e = baseline.meta["embedding"]
    print(
        f"baseline: {len(baseline.table)} {args.split} images, model {detector.weights_sha256[:12]} at {detector.imgsz} px,"
        f" embedding at {args.embed_size} px, {e['raw_dims']} -> {e['dims']} dims ({e['reference_images']} reference images)"
    )
