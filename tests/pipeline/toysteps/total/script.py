"""Sink-like step: sums numbers into total.txt."""

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepSpec, processing_input, processing_output
from tests.pipeline.toysteps import CATALOG

SPEC = StepSpec(
    step_type="total",
    node_type=NodeType.INTERNAL,
    inputs=(Port(name="values", kind="numbers"),),
    outputs=(Port(name="total", kind="number"),),
)
CONTRACT = ScriptContract(
    entry_point="tests.pipeline.toysteps.total",
    job_kind=JobKind.PROCESSING,
    inputs={"values": processing_input("values")},
    outputs={"total": processing_output("total")},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT)
def main(inputs, outputs, env, args):
    numbers = [int(x) for x in (inputs["values"] / "numbers.txt").read_text().split()]
    (outputs["total"] / "total.txt").write_text(f"{sum(numbers)}\n")
