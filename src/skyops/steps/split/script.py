"""split: train/val/test lists, deterministic by seed, related frames kept on one side.

Groups (VisDrone sequences, augmented copies of one source frame) never straddle two sides; the
report in split.json states the leakage check result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.steps import CATALOG


@dataclass(frozen=True, kw_only=True)
class SplitConfig(StepConfig):
    train: Annotated[float, Range(ge=0, le=1)] = 0.8
    val: Annotated[float, Range(ge=0, le=1)] = 0.1
    test: Annotated[float, Range(ge=0, le=1)] = 0.1
    seed: int = 0

    def problems(self) -> list[str]:
        total = self.train + self.val + self.test
        return [] if abs(total - 1) < 1e-6 else [f"train + val + test must be 1, got {total:g}"]


SPEC = StepSpec(
    step_type="split",
    node_type=NodeType.INTERNAL,
    inputs=(Port(name="data", kind="yolo-dataset"),),
    outputs=(Port(name="splits", kind="yolo-splits"),),
    description="leak-free train/val/test split",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.split",
    job_kind=JobKind.PROCESSING,
    inputs={"data": processing_input("data")},
    outputs={"splits": processing_output("splits")},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=SplitConfig)
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: SplitConfig) -> None:
    from skyops.data.split import split_dataset

    report = split_dataset(inputs["data"], outputs["splits"], ratios=(args.train, args.val, args.test), seed=args.seed)
    counts = ", ".join(f"{side} {c.images}" for side, c in report.counts.items())
    print(f"split: {counts} images; leakage check {'clean' if report.leakage.clean else 'FAILED'}")
