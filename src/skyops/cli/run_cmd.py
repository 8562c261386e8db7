"""`skyops run`: run a pipeline on this machine, with live progress and a summary."""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from skyops.cli.common import engine, format_seconds, load, parse_params, settings, stdout_console
from skyops.cli.live import STYLE as _STYLE
from skyops.cli.live import Progress
from skyops.cli.results import print_results
from skyops.pipeline.lineage import RunStatus, StepStatus
from skyops.settings import DEFAULT_PIPELINE

if TYPE_CHECKING:
    from rich.console import Console

    from skyops.pipeline.lineage import RunRecord, StepRecord


def run(
    name: Annotated[
        str, typer.Argument(help="Pipeline name (pipelines/NAME.yaml) or path to a pipeline file.", metavar="NAME")
    ] = DEFAULT_PIPELINE,
    param: Annotated[list[str], typer.Option("--param", "-p", help="Override a pipeline parameter: --param epochs=3 (repeatable).")] = [],  # noqa: B006
    explain_cache: Annotated[bool, typer.Option("--explain-cache", help="Say why each step hit or missed the cache.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Re-run every step, ignoring cached results.")] = False,
    workers: Annotated[int, typer.Option(help="Most steps running at once.", min=1)] = 2,
) -> None:
    """Run a pipeline locally. Finished steps are cached: running again resumes a failed run."""
    from skyops.errors import StepFailed

    pipeline = load(name)
    overrides = parse_params(param)
    console = stdout_console()
    if "champion" in {p.name for p in pipeline.parameters} and "champion" not in overrides:
        from skyops.registry.champion import champion_weights

        found = champion_weights(settings().state_dir, "drone-detector", settings().tracking_uri)  # checked against the registry
        if found:
            overrides["champion"] = str(found[1])
            console.print(f"comparing with the champion: drone-detector v{found[0]} (override with --param champion=PATH)")
    display = Progress(console, [s.name for s in pipeline.steps])
    with display:
        record = engine(pipeline, workers=workers, use_cache=not no_cache).run(pipeline, overrides, listener=display.update)
    summarize(console, record, explain_cache=explain_cache)
    print_results(console, record)
    if record.status is RunStatus.GATED:
        failed_gates = {name: g for name, g in record.gates.items() if not g.passed}
        for name, gate in failed_gates.items():
            console.print(f"[bold red]gate {name}[/] stopped {', '.join(gate.guards)}: {gate.message}")
            for line in gate.details:
                console.print(f"  {line}")
        raise StepFailed(
            f"run {record.run_id} of {pipeline.name!r} stopped at gate {', '.join(map(repr, failed_gates))}",
            hint="improve the model (more data or epochs) or change the threshold parameter, then run again",
        )
    if record.status is not RunStatus.SUCCEEDED:
        failed = [s for s in record.steps.values() if s.status is StepStatus.FAILED]
        for step in failed:
            show_failure(console, step)
        raise StepFailed(
            f"run {record.run_id} of {pipeline.name!r} failed at step {', '.join(repr(s.name) for s in failed)}",
            hint=f"fix the cause, then resume with: {record.resume_command}",
        )


def summarize(console: Console, record: RunRecord, *, explain_cache: bool) -> None:
    from rich.table import Table

    console.print(
        f"run {record.run_id} of {record.pipeline}: [{'green' if record.status is RunStatus.SUCCEEDED else 'bold red'}]{record.status}[/]"
    )
    table = Table()
    for column in ("step", "status", "time", *(["cache"] if explain_cache else [])):
        table.add_column(column)
    for step in record.steps.values():
        row = [step.name, f"[{_STYLE[str(step.status)]}]{step.status}[/]", format_seconds(step.seconds)]
        if explain_cache:
            row.append(cache_explanation(step))
        table.add_row(*row)
    console.print(table)
    console.print(f"lineage: skyops runs show {record.run_id}")


def cache_explanation(step: StepRecord) -> str:
    if step.status is StepStatus.CACHED:
        return f"hit {step.cache_key[:12]}" + (f" after waiting {format_seconds(step.waited)} for another run" if step.waited else "")
    if step.status in (StepStatus.DONE, StepStatus.FAILED) and step.cache_key:
        return f"miss {step.cache_key[:12]}: " + "; ".join(step.miss_reasons or [step.cache_reason])
    return step.error or step.cache_reason or "-"


def show_failure(console: Console, step: StepRecord, lines: int = 20) -> None:
    if step.error:
        console.print(f"[bold red]{step.name}[/]: {step.error}")
        return
    console.print(f"[bold red]{step.name}[/] exited with code {step.exit_code}; log: {step.log}")
    if step.log and Path(step.log).is_file():
        with open(step.log, errors="replace") as f:
            tail = deque(f, maxlen=lines)
        sys.stdout.write("".join(f"  | {line}" for line in tail))
