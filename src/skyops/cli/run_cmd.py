"""`skyops run`: run a pipeline on this machine, with live progress and a summary."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from skyops.cli.common import engine, format_seconds, load, parse_params, settings
from skyops.cli.live import STYLE as _STYLE
from skyops.cli.live import Progress
from skyops.cli.output import Output, Part, stdout_output
from skyops.cli.params import ExistingPath, IntegerRange, argument
from skyops.cli.results import print_results
from skyops.pipeline.lineage import RunStatus, StepStatus
from skyops.settings import DEFAULT_PIPELINE

if TYPE_CHECKING:
    from skyops.pipeline.definition import Pipeline
    from skyops.pipeline.lineage import RunRecord, StepRecord


@click.command("run")
@argument("name", default=DEFAULT_PIPELINE, metavar="NAME", help="Pipeline name (pipelines/NAME.yaml) or path to a pipeline file.")
@click.option("--param", "-p", multiple=True, help="Override a pipeline parameter: --param epochs=3 (repeatable).")
@click.option(
    "--params-file",
    "-P",
    type=ExistingPath(dir_okay=False),
    default=None,
    help="Parameters from a YAML or JSON file (e.g. skyops tune's best parameters); --param overrides it.",
)
@click.option("--explain-cache", is_flag=True, help="Say why each step hit or missed the cache.")
@click.option("--no-cache", is_flag=True, help="Re-run every step, ignoring cached results.")
@click.option("--workers", type=IntegerRange(min=1), default=2, help="Most steps running at once.")
def run(name: str, param: Sequence[str], params_file: Path | None, explain_cache: bool, no_cache: bool, workers: int) -> None:
    """Run a pipeline locally. Finished steps are cached: running again resumes a failed run."""
    from skyops.errors import StepFailed

    pipeline = load(name)
    overrides = {**(read_params_file(params_file, pipeline) if params_file else {}), **parse_params(param)}
    out = stdout_output()
    display = Progress(out.console, [s.name for s in pipeline.steps])
    with display:  # the engine resolves the pipeline's sources first; a found champion is announced
        runner = engine(pipeline, workers=workers, use_cache=not no_cache, announce=out.line)
        record = runner.run(pipeline, overrides, listener=display.update)
    announce(record)
    summarize(out, record, explain_cache=explain_cache)
    print_results(out, record)
    if record.status is RunStatus.GATED:
        failed_gates = {name: g for name, g in record.gates.items() if not g.passed}
        for name, gate in failed_gates.items():
            out.line((f"gate {name}", "bold red"), f" stopped {', '.join(gate.guards)}: {gate.message}")
            for line in gate.details:
                out.line(f"  {line}")
        raise StepFailed(
            f"run {record.run_id} of {pipeline.name!r} stopped at gate {', '.join(map(repr, failed_gates))}",
            hint="improve the model (more data or epochs) or change the threshold parameter, then run again",
        )
    if record.status is not RunStatus.SUCCEEDED:
        failed = [s for s in record.steps.values() if s.status is StepStatus.FAILED]
        for step in failed:
            show_failure(out, step)
        raise StepFailed(
            f"run {record.run_id} of {pipeline.name!r} failed at step {', '.join(repr(s.name) for s in failed)}",
            hint=f"fix the cause, then resume with: {record.resume_command}",
        )


def read_params_file(path: Path, pipeline: Pipeline) -> dict[str, str]:
    """A mapping of parameter names to scalar values, as `--param` strings; every problem at once.

    Raises:
        ConfigError: not YAML/JSON, not a mapping, an unknown name, a value that is not a scalar or not of
            the parameter's type; each naming the file.
    """
    import yaml

    from skyops.errors import ConfigError, problems_error

    hint = "a params file maps parameter names to values, e.g. {epochs: 8, lr0: 0.01}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"params file {path}: not valid YAML or JSON ({str(e).splitlines()[0]})", hint=hint) from None
    if not isinstance(data, dict):
        raise ConfigError(f"params file {path}: expected a mapping of parameter names to values, got {type(data).__name__}", hint=hint)
    declared = {p.name: p for p in pipeline.parameters}
    values, problems = {}, []
    for key, value in data.items():
        if key not in declared:
            problems.append(f"pipeline {pipeline.name!r} has no parameter {key!r} (parameters: {', '.join(declared)})")
        elif isinstance(value, dict | list) or value is None:
            problems.append(f"{key}: expected a single {declared[key].type} value, got {value!r}")
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            try:
                declared[key].parse(text)
                values[str(key)] = text
            except ConfigError as e:
                problems.append(f"{key}: {e.message.partition(': ')[2]} ({e.hint})")
    if len(problems) == 1:
        raise ConfigError(f"params file {path}: {problems[0]}", hint=hint)
    if problems:
        raise problems_error(ConfigError, f"params file {path}", problems, hint=hint)
    return values


def announce(record: RunRecord) -> None:
    """Publish the run's events (a failure; a version registered pending approval): skyops.monitoring.notify."""
    from skyops.monitoring.notify import notify, run_events

    events = run_events(record)
    if events:  # the event log and sinks are loaded only when there is something to say
        notify(settings(), events)


def summarize(out: Output, record: RunRecord, *, explain_cache: bool) -> None:
    out.line(
        f"run {record.run_id} of {record.pipeline}: ", (str(record.status), "green" if record.status is RunStatus.SUCCEEDED else "bold red")
    )
    rows: list[list[Part]] = []
    for step in record.steps.values():
        row: list[Part] = [step.name, (str(step.status), _STYLE[str(step.status)]), format_seconds(step.seconds)]
        if explain_cache:
            row.append(cache_explanation(step))
        rows.append(row)
    out.table(["step", "status", "time", *(["cache"] if explain_cache else [])], rows)
    out.line(f"lineage: skyops runs show {record.run_id}")


def cache_explanation(step: StepRecord) -> str:
    if step.status is StepStatus.CACHED:
        return f"hit {step.cache_key[:12]}" + (f" after waiting {format_seconds(step.waited)} for another run" if step.waited else "")
    if step.status in (StepStatus.DONE, StepStatus.FAILED) and step.cache_key:
        return f"miss {step.cache_key[:12]}: " + "; ".join(step.miss_reasons or [step.cache_reason])
    return step.error or step.cache_reason or "-"


def show_failure(out: Output, step: StepRecord, lines: int = 20) -> None:
    if step.error:
        out.line((step.name, "bold red"), f": {step.error}")
        return
    out.line((step.name, "bold red"), f" exited with code {step.exit_code}; log: {step.log}")
    if step.log and Path(step.log).is_file():
        with open(step.log, errors="replace") as f:
            tail = deque(f, maxlen=lines)
        sys.stdout.write("".join(f"  | {line}" for line in tail))
