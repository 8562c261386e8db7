"""`skyops monitor`: watch a served model. `monitor run` checks one window of captured requests for drift;
`schedule`, `alert`, `retrain` and `label` (monitor_loop_cmd.py) feed what it finds back into training.

`monitor run` runs the `monitor` pipeline (pipelines/monitor.yaml: baseline -> window -> drift) on the
local engine, like `skyops run monitor`, with its inputs named by options; `--from-run` takes the split,
the profile and the trained model from a run of the default pipeline (its lineage record), so

    skyops monitor run --captures ./captures --from-run latest

checks the newest captures against the model the latest `skyops run` trained. The baseline step is
cached: the first check of a model builds its baseline, later ones reuse it. It ends with the verdict,
the drifted features and where drift.json and report.html are. Exit 0 whether or not the window
drifted (the verdict is the output; alerts read drift.json); 1 when a step fails; 2 for bad options.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from skyops.cli.common import engine, load, parse_params, settings
from skyops.cli.monitor_loop_cmd import register
from skyops.cli.params import ExistingPath, FiniteRange, IntegerRange
from skyops.cli.usage import SkyopsGroup

app = SkyopsGroup(
    "monitor",
    help="Watch a served model: drift of its captured requests against the training baseline; alerts, retraining, labelling, schedule.",
    no_args_is_help=True,
)

PIPELINE = "monitor"
# step type in the default pipeline -> (its output port, the monitor pipeline's parameter)
FROM_RUN = {"split": ("splits", "splits"), "profile": ("profile", "profile"), "train": ("model", "model")}


def _from_run(run: str) -> dict[str, str]:
    """The monitor's splits, profile and model parameters from a run's lineage record."""
    from skyops.errors import ConfigError
    from skyops.pipeline.lineage import load_record

    record = load_record(settings().state_dir / "runs", run)
    found: dict[str, str] = {}
    for step in record.steps.values():
        if step.step_type in FROM_RUN:
            port, parameter = FROM_RUN[step.step_type]
            if port in step.outputs:
                found[parameter] = str(step.outputs[port]["path"])
    missing = sorted({p for _, p in FROM_RUN.values()} - set(found))
    if missing:
        raise ConfigError(
            f"run {record.run_id} of {record.pipeline!r} has no finished {', '.join(missing)} output",
            hint="name a run of the default pipeline that trained a model (skyops runs list), or give --splits and --model",
        )
    return found


@app.command("run")
@click.option(
    "--captures", type=ExistingPath(), required=True, help="Captured requests: a capture folder at any level, or one .jsonl file."
)
@click.option(
    "--from-run", "from_run", metavar="RUN", help="Take --splits, --profile and --model from this run of the default pipeline ('latest')."
)
@click.option("--splits", type=ExistingPath(file_okay=False), help="The split step's output the served model was trained on.")
@click.option("--model", type=ExistingPath(file_okay=False), help="The served model: a train step's model folder (best.pt) or its package.")
@click.option("--profile", type=ExistingPath(file_okay=False), help="The profile step's output, copied into the baseline (optional).")
@click.option("--start", default="", help="Window start, ISO 8601, inclusive (default: the oldest capture).")
@click.option("--end", default="", help="Window end, ISO 8601, exclusive (default: the newest capture).")
@click.option("--last", type=IntegerRange(min=0), default=0, help="Then only the newest LAST requests (0: all).")
@click.option(
    "--alpha", type=FiniteRange(min=0, max=0.5, min_open=True), default=0.01, help="Per-window false-alarm rate of the drift tests."
)
@click.option("--param", "-p", multiple=True, help="Any other parameter of the monitor pipeline: --param permutations=5000 (repeatable).")
@click.option("--no-cache", is_flag=True, help="Re-run every step, the baseline included.")
def run(
    captures: Path,
    from_run: str | None,
    splits: Path | None,
    model: Path | None,
    profile: Path | None,
    start: str,
    end: str,
    last: int,
    alpha: float,
    param: Sequence[str],
    no_cache: bool,
) -> None:
    """Check one window of captured requests for drift against the served model's training baseline."""
    from skyops.cli.live import Progress
    from skyops.cli.output import stdout_output
    from skyops.cli.run_cmd import show_failure, summarize
    from skyops.errors import ConfigError, StepFailed
    from skyops.monitoring.window import parse_time
    from skyops.pipeline.lineage import RunStatus, StepStatus

    parse_time(start, "--start")  # a bad time is a usage error now, not a failed step later
    parse_time(end, "--end")
    overrides = _from_run(from_run) if from_run else {}
    given = {"splits": splits, "model": model, "profile": profile}
    overrides |= {name: str(path.resolve()) for name, path in given.items() if path is not None}
    missing = [f"--{name}" for name in ("splits", "model") if name not in overrides]
    if missing:
        raise ConfigError(
            f"monitor run needs {' and '.join(missing)}", hint="give them, or --from-run latest to take them from the last skyops run"
        )
    overrides |= {"captures": str(captures.resolve()), "start": start, "end": end, "last": str(last), "alpha": repr(alpha)}
    overrides |= parse_params(param)
    pipeline = load(PIPELINE)
    out = stdout_output()
    display = Progress(out.console, [s.name for s in pipeline.steps])
    with display:
        record = engine(pipeline, use_cache=not no_cache).run(pipeline, overrides, listener=display.update)
    summarize(out, record, explain_cache=False)
    if record.status is not RunStatus.SUCCEEDED:
        for step in record.steps.values():
            if step.status is StepStatus.FAILED:
                show_failure(out, step)
        raise StepFailed(f"monitor run {record.run_id} failed", hint=f"fix the cause, then resume with: {record.resume_command}")
    folder = Path(record.steps["drift"].outputs["drift"]["path"])
    result = json.loads((folder / "drift.json").read_text())
    drifted = [f["name"] for f in result["features"] if f["drifted"]] + (["embedding"] if result["embedding"]["drifted"] else [])
    verdict = "DRIFTED" if result["drifted"] else "no drift"
    out.line(
        (verdict, "bold red" if result["drifted"] else "green"),
        f" over {result['window']['requests']} requests" + (f": {', '.join(drifted)}" if drifted else ""),
    )
    out.line(f"result     {folder / 'drift.json'}")
    out.line(f"report     {folder / 'report.html'}")


register(app)  # schedule, alert, retrain, label export|import (monitor_loop_cmd.py)
