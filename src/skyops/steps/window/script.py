"""window: the monitor's features of a window of captured requests (SageMaker's data-capture format).

Reads the captures with the one reader (skyops.serving.capture.read_captures), keeps those in
[start, end) and then the `last` newest, and measures each image as the baseline measured the
training split: the same features, the same network's embedding. The model bound here must be the
baseline's (same weights sha256), or the embeddings would not compare; the images are embedded by the
baseline's export of that model's backbone on ONNX Runtime (no torch here).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.steps import CATALOG


@dataclass(frozen=True, kw_only=True)
class WindowConfig(StepConfig):
    start: str = ""  # ISO 8601, inclusive; "" = from the oldest capture
    end: str = ""  # ISO 8601, exclusive; "" = to the newest
    last: Annotated[int, Range(ge=0)] = 0  # then only the newest `last` requests; 0 = all
    batch: Annotated[int, Range(ge=1)] = 32  # images embedded at once
    threads: Annotated[int, Range(ge=0)] = 0  # ONNX Runtime threads; 0: every core


SPEC = StepSpec(
    step_type="window",
    node_type=NodeType.INTERNAL,
    inputs=(
        Port(name="captures", kind="data-capture", description="a capture folder (any level) or a copy of SageMaker's"),
        Port(name="model", kind="model-weights", description="the served model's weights: the baseline's"),
        Port(name="baseline", kind="monitoring-baseline"),
    ),
    outputs=(Port(name="window", kind="capture-features", description="features.npz, window.json", files=("features.npz", "window.json")),),
    description="features of a window of captured requests",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.window",
    job_kind=JobKind.PROCESSING,
    inputs={"captures": processing_input("captures"), "model": processing_input("model"), "baseline": processing_input("baseline")},
    outputs={"window": processing_output("window")},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=WindowConfig, libraries=("onnxruntime", "numpy", "opencv-python-headless"))
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: WindowConfig) -> None:
    import json

    from skyops.data.layout import atomic_output_dir
    from skyops.errors import DataValidationError
    from skyops.monitoring.baseline import BASELINE_JSON, EMBEDDER
    from skyops.monitoring.embedding import Embedder, find_weights, sha256
    from skyops.monitoring.window import parse_time, select_records, window_features, write_window

    meta = json.loads((inputs["baseline"] / BASELINE_JSON).read_text())
    weights, _ = find_weights(inputs["model"])
    digest = sha256(weights)
    if digest != meta["model"]["weights_sha256"]:
        raise DataValidationError(
            f"the model bound to window ({digest[:12]}...) is not the baseline's ({meta['model']['weights_sha256'][:12]}...)",
            hint="bind the served model to both, or build a baseline of this model (its embeddings would not compare)",
        )
    embedder = Embedder(inputs["baseline"] / EMBEDDER, int(meta["model"]["embed_size"]), threads=args.threads)
    records = select_records(inputs["captures"], start=parse_time(args.start, "start"), end=parse_time(args.end, "end"), last=args.last)
    table, info = window_features(records, embedder, source=str(inputs["captures"]), batch=args.batch)
    with atomic_output_dir(outputs["window"]) as staging:
        write_window(table, info, staging, model_sha256=digest)
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(info.skipped.items()))
    print(
        f"window: {info.requests} requests, {info.images} images, {info.start} to {info.end}" + (f"; skipped {skipped}" if skipped else "")
    )
