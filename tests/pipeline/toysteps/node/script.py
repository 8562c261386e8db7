"""A node of any small DAG: reads up to two upstream nodes, fails on demand, writes a gate file.

Used by the scheduler's property-based tests: random graphs, random failures, random gates.
"""

import json
from dataclasses import dataclass

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from tests.pipeline.toysteps import CATALOG


@dataclass(frozen=True, kw_only=True)
class NodeConfig(StepConfig):
    tag: str = "n"
    score: int = 0  # written to gate.json, for gates to compare
    fail: bool = False


SPEC = StepSpec(
    step_type="node",
    node_type=NodeType.SOURCE,
    inputs=(Port(name="a", kind="node", optional=True), Port(name="b", kind="node", optional=True)),
    outputs=(Port(name="out", kind="node", files=("value.txt", "gate.json")),),
)
CONTRACT = ScriptContract(
    entry_point="tests.pipeline.toysteps.node",
    job_kind=JobKind.PROCESSING,
    inputs={"a": processing_input("a"), "b": processing_input("b")},
    outputs={"out": processing_output("out")},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=NodeConfig)
def main(inputs, outputs, env, args):
    if args.fail:
        raise RuntimeError(f"node {args.tag} asked to fail")
    upstream = "".join((folder / "value.txt").read_text() for folder in (inputs.get("a"), inputs.get("b")) if folder)
    (outputs["out"] / "value.txt").write_text(f"{args.tag}({upstream})")
    (outputs["out"] / "gate.json").write_text(json.dumps({"score": args.score}))
