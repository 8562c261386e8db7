"""A training-like step: one line per epoch into its checkpoint folder, resuming from it.

Its checkpoint folder also holds `pid` (who is training) and `tag`; with `hold` it waits, before
finishing, until a test creates `release` there. Used to show that concurrent runs never share
checkpoints, that one execution per key runs at a time, and that a killed run resumes.
"""

import os
import time
from dataclasses import dataclass

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepConfig, StepSpec
from skyops.pipeline.contract import CHECKPOINTS, TRAINING_MODEL
from tests.pipeline.toysteps import CATALOG


@dataclass(frozen=True, kw_only=True)
class TrainerConfig(StepConfig):
    tag: str = "a"
    epochs: int = 3
    seconds: float = 0.0  # per epoch
    hold: bool = False


SPEC = StepSpec(step_type="trainer", node_type=NodeType.SOURCE, outputs=(Port(name="model", kind="weights", files=("weights.txt",)),))
CONTRACT = ScriptContract(
    entry_point="tests.pipeline.toysteps.trainer", job_kind=JobKind.TRAINING, outputs={"model": TRAINING_MODEL}, checkpoint_path=CHECKPOINTS
)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=TrainerConfig)
def main(inputs, outputs, env, args):
    checkpoints = outputs["checkpoints"]
    (checkpoints / "tag").write_text(args.tag)
    (checkpoints / "pid").write_text(str(os.getpid()))
    done = int((checkpoints / "epoch").read_text()) if (checkpoints / "epoch").is_file() else 0
    for epoch in range(done + 1, args.epochs + 1):
        with open(checkpoints / "log.txt", "a") as log:
            log.write(f"{args.tag} epoch {epoch}\n")
        (checkpoints / "epoch").write_text(str(epoch))
        time.sleep(args.seconds)
    while args.hold and not (checkpoints / "release").exists():
        time.sleep(0.02)
    (outputs["model"] / "weights.txt").write_text((checkpoints / "log.txt").read_text())
    (outputs["model"] / "resumed.txt").write_text(f"resumed after epoch {done}\n")
