"""profile: class balance, box sizes, image statistics, plots and an HTML page.

Its profile.json doubles as the monitoring baseline: drift is measured against it later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from skyops.steps import CATALOG


@dataclass(frozen=True, kw_only=True)
class ProfileConfig(StepConfig):
    max_side: Annotated[int, Range(ge=32)] = 256  # pixels; images are downscaled to this for statistics
    sample_cap: Annotated[int, Range(ge=10)] = 5000  # most raw values kept per feature
    workers: Annotated[int, Range(ge=1)] = 2


SPEC = StepSpec(
    step_type="profile",
    node_type=NodeType.INTERNAL,
    inputs=(Port(name="data", kind="yolo-dataset"),),
    outputs=(Port(name="profile", kind="data-profile", aliases=("baseline",)),),
    description="profile the validated data; the result is the monitoring baseline",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.profile",
    job_kind=JobKind.PROCESSING,
    inputs={"data": processing_input("data")},
    outputs={"profile": processing_output("profile")},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=ProfileConfig, libraries=("numpy", "opencv-python-headless", "matplotlib"))
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: ProfileConfig) -> None:
    from skyops.data.profile import profile_dataset

    profile = profile_dataset(inputs["data"], outputs["profile"], max_side=args.max_side, sample_cap=args.sample_cap, workers=args.workers)
    print(f"profile: {profile['dataset']['images']} images, {profile['dataset']['boxes']} boxes")
