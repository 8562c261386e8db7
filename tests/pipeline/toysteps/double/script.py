"""Internal step: doubles each number; an optional env var adds an offset."""

from dataclasses import dataclass

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from tests.pipeline.toysteps import CATALOG


@dataclass(frozen=True, kw_only=True)
class DoubleConfig(StepConfig):
    factor: int = 2


SPEC = StepSpec(
    step_type="double",
    node_type=NodeType.INTERNAL,
    inputs=(Port(name="numbers", kind="numbers"),),
    outputs=(Port(name="doubled", kind="numbers", aliases=("values",)),),
)
CONTRACT = ScriptContract(
    entry_point="tests.pipeline.toysteps.double",
    job_kind=JobKind.PROCESSING,
    inputs={"numbers": processing_input("numbers")},
    outputs={"doubled": processing_output("doubled")},
    optional_env={"TOY_OFFSET": "0"},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=DoubleConfig)
def main(inputs, outputs, env, args):
    offset = int(env["TOY_OFFSET"])
    numbers = [int(x) for x in (inputs["numbers"] / "numbers.txt").read_text().split()]
    (outputs["doubled"] / "numbers.txt").write_text("".join(f"{n * args.factor + offset}\n" for n in numbers))
