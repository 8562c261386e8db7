"""validate: check every image and label; quarantine bad files; fail when too many are bad.

Quarantined images are listed (validation.json) and left out of the output dataset; the source is
never touched. The policy decides what quarantines and how much may be quarantined.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.steps import CATALOG


@dataclass(frozen=True, kw_only=True)
class ValidateConfig(StepConfig):
    max_invalid_fraction: Annotated[float, Range(ge=0, le=1)] = 0.05  # more quarantined than this fails the step
    min_side: Annotated[int, Range(ge=1)] = 32  # pixels; smaller images are quarantined
    max_pixels: Annotated[int, Range(ge=1)] = 89_478_485  # decompression-bomb guard (Pillow's threshold)
    decode: bool = False  # decode every image fully (slower; finds corruption inside the data)
    warn_only: tuple[str, ...] = ()  # rule ids that only warn instead of quarantining
    workers: Annotated[int, Range(ge=0)] = 0  # processes; 0 = one per CPU


SPEC = StepSpec(
    step_type="validate",
    node_type=NodeType.INTERNAL,
    inputs=(Port(name="raw", kind="yolo-dataset"),),
    outputs=(
        Port(name="data", kind="yolo-dataset", aliases=("validated",), description="the dataset minus quarantined images"),
        Port(name="report", kind="validation-report", description="validation.json and summary.txt"),
    ),
    description="validate images and labels, quarantine bad files",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.validate",
    job_kind=JobKind.PROCESSING,
    inputs={"raw": processing_input("raw")},
    outputs={"data": processing_output("data"), "report": processing_output("report")},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=ValidateConfig, libraries=("pillow", "opencv-python-headless"))
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: ValidateConfig) -> None:
    from skyops.data.validate import DEFAULT_QUARANTINE, Rule, ValidationPolicy, summary, validate, write_validated

    policy = ValidationPolicy(
        max_invalid_fraction=args.max_invalid_fraction,
        quarantine=DEFAULT_QUARANTINE - {Rule(r) for r in args.warn_only},
        min_side=args.min_side,
        max_pixels=args.max_pixels,
        decode=args.decode,
    )
    report = validate(inputs["raw"], policy, workers=args.workers or None)
    write_validated(inputs["raw"], outputs["data"], report, overwrite=True)
    text = summary(report)
    (outputs["report"] / "validation.json").write_text(json.dumps(report.to_json(), indent=1))
    (outputs["report"] / "summary.txt").write_text(text + "\n")
    print(text)
