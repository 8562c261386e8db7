"""Source step that works through `ticks` epochs and reports its progress after each.

Paced by the test when TOY_MARKER_DIR is set: after reporting epoch k it waits for the file
`seen-<k>` there, which the test writes once its display showed epoch k, so a test looks at the
display between epochs without guessing times. Otherwise each epoch takes `seconds`.
"""

import time
from dataclasses import dataclass
from pathlib import Path

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepConfig, StepSpec, processing_output, report_progress
from tests.pipeline.toysteps import CATALOG

WAIT_LIMIT = 120  # seconds a paced epoch waits for the test before the step gives up


@dataclass(frozen=True, kw_only=True)
class TickerConfig(StepConfig):
    ticks: int = 3
    seconds: float = 0.2


SPEC = StepSpec(step_type="ticker", node_type=NodeType.SOURCE, outputs=(Port(name="ticks", kind="ticks"),))
CONTRACT = ScriptContract(
    entry_point="tests.pipeline.toysteps.ticker",
    job_kind=JobKind.PROCESSING,
    outputs={"ticks": processing_output("ticks")},
    optional_env={"TOY_MARKER_DIR": ""},
)


def wait_for(path: Path) -> None:
    deadline = time.time() + WAIT_LIMIT
    while not path.exists():
        if time.time() > deadline:
            raise TimeoutError(f"no {path} after {WAIT_LIMIT} s")
        time.sleep(0.05)


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=TickerConfig)
def main(inputs, outputs, env, args):
    for epoch in range(1, args.ticks + 1):
        if not env["TOY_MARKER_DIR"]:
            time.sleep(args.seconds)
        report_progress(epoch, args.ticks, metrics={"loss": 1 / epoch, "score": epoch / args.ticks})
        if env["TOY_MARKER_DIR"]:
            wait_for(Path(env["TOY_MARKER_DIR"], f"seen-{epoch}"))
    (outputs["ticks"] / "ticks.txt").write_text(f"{args.ticks}\n")
