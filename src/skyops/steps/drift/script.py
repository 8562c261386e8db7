"""drift: a window of captured requests against the baseline: drift.json and one self-contained report.html.

Per-feature tests (KS, chi-square, PSI) and the embedding's MMD permutation test, adjusted together
(Holm by default); skyops.monitoring.drift says why, docs/monitoring.md how to read the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.steps import CATALOG


@dataclass(frozen=True, kw_only=True)
class DriftConfig(StepConfig):
    alpha: Annotated[float, Range(gt=0, le=0.5)] = 0.01  # per-window false-alarm rate (holm) or false discovery rate (bh)
    correction: Literal["holm", "bh"] = "holm"
    psi_threshold: Annotated[float, Range(gt=0)] = 0.25
    psi_features: tuple[str, ...] = ()  # features judged by PSI alone, e.g. ["pixels"]
    permutations: Annotated[int, Range(ge=99)] = 2000  # at least (tests / alpha): see skyops.monitoring.drift
    reference_size: Annotated[int, Range(ge=20)] = 1000
    min_images: Annotated[int, Range(ge=5)] = 30
    seed: int = 0


SPEC = StepSpec(
    step_type="drift",
    node_type=NodeType.INTERNAL,
    inputs=(Port(name="baseline", kind="monitoring-baseline"), Port(name="window", kind="capture-features")),
    outputs=(Port(name="drift", kind="drift-report", description="drift.json, report.html", files=("drift.json", "report.html")),),
    description="drift of a window against the baseline: drift.json and report.html",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.drift",
    job_kind=JobKind.PROCESSING,
    inputs={"baseline": processing_input("baseline"), "window": processing_input("window")},
    outputs={"drift": processing_output("drift")},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=DriftConfig, libraries=("numpy", "scipy", "matplotlib", "jinja2"))
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: DriftConfig) -> None:
    import json

    from skyops.data.layout import atomic_output_dir
    from skyops.errors import DataValidationError
    from skyops.monitoring.baseline import Baseline
    from skyops.monitoring.drift import DriftThresholds, detect_drift
    from skyops.monitoring.features import FeatureTable
    from skyops.monitoring.report import write_report

    baseline = Baseline.load(inputs["baseline"])
    window = FeatureTable.load(inputs["window"] / "features.npz")
    doc = json.loads((inputs["window"] / "window.json").read_text())
    if doc["model"]["weights_sha256"] != baseline.meta["model"]["weights_sha256"]:
        raise DataValidationError(
            "the window was measured with another model than the baseline", hint="bind the window and the baseline of the same model"
        )
    thresholds = DriftThresholds(
        alpha=args.alpha,
        correction=args.correction,
        psi_threshold=args.psi_threshold,
        psi_features=args.psi_features,
        permutations=args.permutations,
        reference_size=args.reference_size,
        min_images=args.min_images,
        seed=args.seed,
    )
    info = doc["window"]
    result = detect_drift(baseline, window, info, thresholds)
    with atomic_output_dir(outputs["drift"]) as staging:
        result.to_json(staging / "drift.json")
        write_report(result, baseline, window, info, staging / "report.html")
    flagged = {f.name for f in result.features if f.drifted} | ({"embedding"} if result.embedding.drifted else set())
    drifted = [name for name in result.top if name in flagged]  # by evidence
    print(
        f"drift: {'DRIFTED' if result.drifted else 'no drift'} over {info['requests']} requests"
        + (f" ({', '.join(drifted)})" if drifted else "")
    )
