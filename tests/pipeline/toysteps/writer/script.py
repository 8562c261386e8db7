"""Source step whose output declares a file (`best.pt`) it may be told not to write."""

from dataclasses import dataclass

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepConfig, StepSpec, processing_output
from tests.pipeline.toysteps import CATALOG


@dataclass(frozen=True, kw_only=True)
class WriterConfig(StepConfig):
    write: bool = True


SPEC = StepSpec(step_type="writer", node_type=NodeType.SOURCE, outputs=(Port(name="model", kind="weights", files=("best.pt",)),))
CONTRACT = ScriptContract(
    entry_point="tests.pipeline.toysteps.writer", job_kind=JobKind.PROCESSING, outputs={"model": processing_output("model")}
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=WriterConfig)
def main(inputs, outputs, env, args):
    (outputs["model"] / "notes.txt").write_text("trained\n")
    if args.write:
        (outputs["model"] / "best.pt").write_text("weights\n")
