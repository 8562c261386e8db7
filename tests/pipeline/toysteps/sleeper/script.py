"""Source step that records when it ran and sleeps; writes part of its output before sleeping.

Used to show concurrency (two sleepers overlap) and crash safety (killed mid-write).
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepConfig, StepSpec, processing_output
from tests.pipeline.toysteps import CATALOG


@dataclass(frozen=True, kw_only=True)
class SleeperConfig(StepConfig):
    seconds: float = 0.5
    tag: str = "a"


SPEC = StepSpec(step_type="sleeper", node_type=NodeType.SOURCE, outputs=(Port(name="stamp", kind="stamp"),))
CONTRACT = ScriptContract(
    entry_point="tests.pipeline.toysteps.sleeper",
    job_kind=JobKind.PROCESSING,
    outputs={"stamp": processing_output("stamp")},
    optional_env={"TOY_MARKER_DIR": ""},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=SleeperConfig)
def main(inputs, outputs, env, args):
    start = time.time()
    (outputs["stamp"] / "part-1.txt").write_text(f"{args.tag} started\n")
    if env["TOY_MARKER_DIR"]:  # tell a watching test we are mid-write, and who to kill
        Path(env["TOY_MARKER_DIR"], f"{args.tag}.pid").write_text(str(os.getpid()))
    time.sleep(args.seconds)
    (outputs["stamp"] / "part-2.txt").write_text(f"{start} {time.time()}\n")
