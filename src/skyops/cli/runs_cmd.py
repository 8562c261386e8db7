"""`skyops runs list|show`: browse the lineage of local runs; `skyops runs push|pull`: publish one to S3, fetch it back.

push and pull send every request through the profile guard (SKYOPS_AWS_PROFILE, default `ab`), which refuses before
the first one unless that profile is the one in use. Without --to/--from they use the bucket of the environment's
stacks (`skyops infra deploy`, environment $SKYOPS_INFRA_ENV or dev), under `experiments/local-runs/`: a prefix both
personas' roles may read and write.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from skyops.cli.common import format_seconds, settings
from skyops.cli.output import stdout_console
from skyops.cli.params import Integer, argument
from skyops.cli.usage import SkyopsGroup

if TYPE_CHECKING:
    from skyops.aws.session import AwsGuard

RUNS_PREFIX = "experiments/local-runs/"  # under the environment's bucket, when no --to/--from is given

app = SkyopsGroup(
    "runs",
    help="Browse past runs and their lineage (inputs, outputs, hashes, timings, user); publish one to S3 and fetch it back.",
    no_args_is_help=True,
)


def _runs_dir() -> Path:
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


@app.command()
@argument("run_id", metavar="RUN", help="Run id, a unique prefix of one, or 'latest'.")
@click.option(
    "--to",
    "destination",
    metavar="S3_URI",
    help="Where to publish: s3://BUCKET/PREFIX. [default: s3://<the environment's bucket>/experiments/local-runs/ (skyops infra deploy)]",
)
def push(run_id: str, destination: str | None) -> None:
    """Publish a run's outputs and lineage to S3, through the profile guard.

    Each distinct file is one object named by its sha256 (PREFIX/objects/<sha256>, x-amz-meta-sha256); objects
    already there are not uploaded again. The run's manifest (PREFIX/runs/<run>.json: each step's outputs, their
    files and sha256, and the run record) is written last, so a reader never sees a partial run, and a killed push
    is finished by the next. A published run is never replaced. Every output is checked against the run record
    first: a run whose cached outputs are gone or changed is refused before any request.

    This publishes a run; it is not the local engine's cache, which stays on this machine (docs/adr/0013).
    """
    from skyops.aws.run_store import RunStore
    from skyops.aws.session import AwsGuard
    from skyops.pipeline.lineage import load_record

    record = load_record(_runs_dir(), run_id)
    guard = AwsGuard.from_settings(settings())
    store = RunStore(guard, announce=print)
    pushed = store.push(record, _where(guard, destination, "--to"))
    print(f"run       {pushed.run_id} -> {pushed.location}")
    print(
        f"objects   {pushed.files} files, {pushed.objects} distinct ({_size(pushed.total_bytes)}): {pushed.uploaded} uploaded "
        f"({_size(pushed.uploaded_bytes)}), {pushed.objects - pushed.uploaded} already there"
        + (f", {pushed.replaced} replaced (their metadata did not match their name)" if pushed.replaced else "")
    )
    print(f"manifest  {pushed.manifest_uri} ({'written' if pushed.manifest_written else 'already published, the same'})")
    print(f"next      skyops runs pull {pushed.run_id} --from {pushed.location}")


@app.command()
@argument("run_id", metavar="RUN", help="The id of a published run (in full).")
@click.option(
    "--from",
    "source",
    metavar="S3_URI",
    help="Where it was published: s3://BUCKET/PREFIX. [default: s3://<the environment's bucket>/experiments/local-runs/]",
)
@click.option(
    "--into",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to pull into: the run lands in INTO/RUN/. [default: <state dir>/imports]",
)
def pull(run_id: str, source: str | None, into: Path | None) -> None:
    """Fetch a published run's outputs into a local folder, through the profile guard.

    The manifest is checked whole first (names and paths that would leave the folder refuse the pull before any
    download); every file's sha256 is checked; the run appears as INTO/RUN/<step>/<port>/... (read-only, with
    manifest.json) all at once, or not at all. Each pulled output folder hashes to the digest its run recorded, so
    given as an input to a run here it enters the cache key as the original did.
    """
    from skyops.aws.run_store import RunStore
    from skyops.aws.session import AwsGuard

    guard = AwsGuard.from_settings(settings())
    store = RunStore(guard, announce=print)
    pulled = store.pull(run_id, _where(guard, source, "--from"), into if into is not None else settings().state_dir / "imports")
    if pulled.already:
        print(f"run       {pulled.run_id} was pulled before from {pulled.manifest_uri}: {pulled.path} (nothing downloaded)")
        return
    print(f"run       {pulled.run_id} <- {pulled.manifest_uri}")
    print(f"files     {pulled.files} files, {pulled.objects} objects downloaded ({_size(pulled.downloaded_bytes)}), every sha256 checked")
    print(f"into      {pulled.path}")


def _where(guard: AwsGuard, given: str | None, option: str) -> str:
    """The S3 prefix given, else the environment's bucket under RUNS_PREFIX (its kept outputs, else DescribeStacks)."""
    from skyops.aws.infra import infra_environment
    from skyops.aws.infra_outputs import stack_outputs
    from skyops.errors import ConfigError

    if given:
        return given
    env = infra_environment()
    outputs = stack_outputs(guard, settings().state_dir, env)  # the guard decides first
    bucket = outputs.core.get("BucketName") if outputs is not None else None
    if not bucket:
        raise ConfigError(
            f"no S3 prefix to use: {option} is not given and environment {env.name!r} has no stack with a bucket "
            f"(profile {guard.profile}, region {guard.check().region})",
            hint=f"give {option} s3://BUCKET/PREFIX, or deploy the environment's stacks once (skyops infra deploy): "
            f"runs then go to s3://<its bucket>/{RUNS_PREFIX}",
        )
    return f"s3://{bucket}/{RUNS_PREFIX}"


def _size(count: float) -> str:
    from skyops.aws.s3_mirror import human_size

    return human_size(count)
