"""Source step that fills the disk holding its output, to the last block: a real full-disk test."""

import os

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepSpec, processing_output
from tests.pipeline.toysteps import CATALOG

SPEC = StepSpec(step_type="filldisk", node_type=NodeType.SOURCE, outputs=(Port(name="blob", kind="blob"),))
CONTRACT = ScriptContract(
    entry_point="tests.pipeline.toysteps.filldisk", job_kind=JobKind.PROCESSING, outputs={"blob": processing_output("blob")}
)


@CATALOG.step(spec=SPEC, contract=CONTRACT)
def main(inputs, outputs, env, args):
    disk = os.statvfs(outputs["blob"])
    with open(outputs["blob"] / "blob.bin", "wb") as f:
        f.write(b"\0" * (disk.f_bavail * disk.f_frsize))
