"""`skyops runs list|show`: browse the lineage of local runs."""

from __future__ import annotations

import json
import time

import click

from skyops.cli.common import format_seconds, settings
from skyops.cli.output import stdout_console
from skyops.cli.params import Integer, argument
from skyops.cli.usage import SkyopsGroup

app = SkyopsGroup("runs", help="Browse past runs and their lineage (inputs, outputs, hashes, timings, user).", no_args_is_help=True)


def _runs_dir():
    return settings().state_dir / "runs"


@app.command("list")
@click.option("--limit", type=Integer(), default=20, help="Show at most this many runs, newest first.")
def list_(limit: int) -> None:
    """List runs, newest first."""
    from rich.table import Table

    from skyops.pipeline.lineage import list_records

    table = Table("run", "pipeline", "status", "started", "took", "steps", "user")
    for r in list_records(_runs_dir())[:limit]:
        counts: dict[str, int] = {}
        for s in r.steps.values():
            counts[str(s.status)] = counts.get(str(s.status), 0) + 1
        took = format_seconds(r.ended - r.started) if r.ended else "-"
        table.add_row(
            r.run_id,
            r.pipeline,
            r.status,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r.started)),
            took,
            ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
            r.user,
        )
    stdout_console().print(table)


@app.command()
@argument("run_id", default="latest", metavar="RUN", help="Run id, a unique prefix of one, or 'latest'.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole lineage record as JSON.")
def show(run_id: str, as_json: bool) -> None:
    """Show one run: parameters, and per step its inputs, outputs, hashes and timing."""
    from skyops.pipeline.lineage import load_record

    record = load_record(_runs_dir(), run_id)
    if as_json:
        print(json.dumps(record.to_json(), indent=2, default=str))
        return
    print(f"run {record.run_id}  pipeline {record.pipeline}  {record.status}  by {record.user}@{record.host}")
    print(f"parameters: {json.dumps(record.parameters, sort_keys=True)}")
    for s in record.steps.values():
        print(f"- {s.name} [{s.step_type}] {s.status} in {format_seconds(s.seconds)}  key {s.cache_key[:12] or '-'}")
        for port, i in s.inputs.items():
            print(f"    in  {port}: {i['source']}  sha256 {i['digest'][:12]}")
        for port, o in s.outputs.items():
            print(f"    out {port}: {o['path']}  sha256 {o['digest'][:12]}")
        if s.error:
            print(f"    error: {s.error}")
        if s.log:
            print(f"    log: {s.log}")
