"""Source step: writes the numbers 1..count, one per line."""

from dataclasses import dataclass
from typing import Annotated

from skyops.pipeline import JobKind, NodeType, Port, Range, ScriptContract, StepConfig, StepSpec, processing_output
from tests.pipeline.toysteps import CATALOG


@dataclass(frozen=True, kw_only=True)
class EmitConfig(StepConfig):
    count: Annotated[int, Range(ge=1)] = 3


SPEC = StepSpec(step_type="emit", node_type=NodeType.SOURCE, outputs=(Port(name="numbers", kind="numbers"),))
CONTRACT = ScriptContract(
    entry_point="tests.pipeline.toysteps.emit", job_kind=JobKind.PROCESSING, outputs={"numbers": processing_output("numbers")}
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=EmitConfig)
def main(inputs, outputs, env, args):
    (outputs["numbers"] / "numbers.txt").write_text("".join(f"{i}\n" for i in range(1, args.count + 1)))
