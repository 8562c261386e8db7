"""`skyops cost report|estimate`: what the project has cost (Cost Explorer), what a SageMaker execution may cost (offline).

`estimate` sends nothing anywhere: it compiles the pipeline as `skyops sagemaker compile` would and prices
its jobs from the price table shipped with skyops. `report` asks Cost Explorer through the profile guard.
docs/cost.md explains both, and what neither counts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from skyops.cli.common import load, parse_params, settings
from skyops.cli.output import Part, stdout_output
from skyops.cli.params import Choice, argument
from skyops.cli.usage import SkyopsGroup
from skyops.settings import DEFAULT_PIPELINE

if TYPE_CHECKING:
    from skyops.aws.cost_explorer import CostReport
    from skyops.aws.estimate import Estimate

GRANULARITIES = ("monthly", "daily")
METRICS = ("UnblendedCost", "AmortizedCost", "NetUnblendedCost", "NetAmortizedCost", "BlendedCost")
# Compiling for an estimate needs a bucket, a role and an image, none of which changes the price: stand-ins.
_STAND_INS = {"bucket": "skyops-cost-estimate", "role_arn": "arn:aws:iam::000000000000:role/skyops-cost-estimate", "image_uri": "estimate"}

app = SkyopsGroup(
    "cost",
    help="What skyops costs on AWS: `report` reads Cost Explorer (what was spent, by environment and component); "
    "`estimate` prices a SageMaker pipeline's jobs offline before you start it. See docs/cost.md.",
    no_args_is_help=True,
)


@app.command()
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    help="First day (YYYY-MM-DD). [default: the 1st of the month two months ago]",
)
@click.option(
    "--end", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD", help="Day after the last (exclusive, YYYY-MM-DD). [default: today]"
)
@click.option("--granularity", type=Choice(GRANULARITIES, case_sensitive=False), default="monthly", help="One bar per month or per day.")
@click.option(
    "--metric", type=Choice(METRICS), default="UnblendedCost", help="Cost Explorer's cost metric (Amortized spreads upfront fees)."
)
@click.option("--project", default="skyops", help="Value of the project tag whose resources are counted.")
@click.option("--project-tag", default="Project", help="Tag key that marks the project's resources.")
@click.option(
    "--group-by",
    multiple=True,
    default=("Environment", "Component"),
    help="A tag key, or dimension:SERVICE (any Cost Explorer dimension); one or two (repeatable).",
)
@click.option(
    "--chart", type=click.Path(dir_okay=False, path_type=Path), help="Write the chart here. [default: .skyops/reports/cost-START-END.png]"
)
@click.option("--no-chart", is_flag=True, help="Print the table only.")
def report(
    start: datetime | None,
    end: datetime | None,
    granularity: str,
    metric: str,
    project: str,
    project_tag: str,
    group_by: Sequence[str],
    chart: Path | None,
    no_chart: bool,
) -> None:
    """What the project's tagged resources cost: a table by period, environment and component, and a PNG chart.

    Reads Cost Explorer (GetCostAndUsage) through the AWS profile guard (profile ab unless SKYOPS_AWS_PROFILE
    says otherwise; nothing is sent if it is refused). Cost Explorer charges $0.01 per request, one per page.
    Costs appear under a tag only after it is activated as a cost allocation tag in the Billing console, and
    for costs incurred since; data lags by up to a day.

    \b
    Examples:
      skyops cost report                                   # this month and the two before, by Environment and Component
      skyops cost report --granularity daily --start 2026-11-01
      skyops cost report --group-by Environment --group-by dimension:SERVICE
    """
    from skyops.aws.cost_chart import write_chart
    from skyops.aws.cost_explorer import CostQuery, fetch_costs
    from skyops.aws.session import AwsGuard

    today = date.today()
    first = start.date() if start else _months_back(today, 2)
    query = CostQuery(
        start=first,
        end=end.date() if end else today,
        granularity=granularity.upper(),
        metric=metric,
        project_tag=project_tag,
        project=project,
        group_by=tuple(group_by),
    )
    s = settings()
    found = fetch_costs(AwsGuard.from_settings(s), query)
    print_report(found)
    if not no_chart and found.rows:
        target = chart or s.state_dir / "reports" / f"cost-{query.start}-{query.end}.png"
        print(f"chart   {write_chart(found, target)}")


def print_report(found: CostReport) -> None:
    query, out = found.query, stdout_output()
    out.line(f"{query.metric} of resources tagged {query.project_tag}={query.project}, {query.start} to {query.end} (exclusive)")
    if not found.rows:
        out.line(
            f"no costs found: are resources tagged {query.project_tag}={query.project}, and is the tag activated as a cost allocation tag?"
        )
        return
    columns = ["period", *query.group_by, found.unit]
    rows: list[list[Part]] = [
        [row.start + (" (estimated)" if row.estimated else ""), *row.groups, f"{row.amount:,.2f}"] for row in found.rows
    ]
    rows += [["total", *group, f"{amount:,.2f}"] for group, amount in found.totals().items()]
    rows.append([("all", "bold"), *[""] * len(query.group_by), (f"{found.total:,.2f}", "bold")])
    out.table(columns, rows)


@app.command("estimate")
@argument("name", default=DEFAULT_PIPELINE, metavar="NAME", help="Pipeline name (pipelines/NAME.yaml) or path to a pipeline file.")
@click.option("--param", "-p", multiple=True, help="A parameter's value, as for `sagemaker upsert`: -p TrainingInstanceType=ml.g5.xlarge.")
@click.option("--hours", multiple=True, metavar="STEP=HOURS", help="Expected hours of a job step: --hours train=1.5 (repeatable).")
@click.option("--region", help="Region to price in. [env: SKYOPS_SAGEMAKER_REGION, AWS_REGION, AWS_DEFAULT_REGION]")
def estimate_cmd(name: str, param: Sequence[str], hours: Sequence[str], region: str | None) -> None:
    """Price one SageMaker execution of a pipeline, offline: instance-hours × the shipped price table.

    Each Processing and Training step is priced at its instance type and count (SKYOPS_SAGEMAKER_*_INSTANCE_TYPE,
    or -p ProcessingInstanceType=... / TrainingInstanceType=...) for the hours you expect (--hours STEP=H);
    a step without --hours counts its MaxRuntime, the most SageMaker lets it run, so the total is an upper bound.
    Storage, S3, data transfer, retries and spot savings are not counted (docs/cost.md).

    \b
    Examples:
      skyops cost estimate                                 # drone-detection, every job at its cap
      skyops cost estimate --hours train=2 --hours ingest=0.2 -p TrainingInstanceType=ml.g5.xlarge
    """
    from skyops.aws.estimate import estimate, parse_hours
    from skyops.aws.prices import load_prices, shipped_regions
    from skyops.errors import ConfigError
    from skyops.pipeline.sagemaker import compile_pipeline
    from skyops.pipeline.sagemaker.settings import ENV_PREFIX, REGION_ENVS, settings_from_env

    region = region or next((os.environ[n] for n in (ENV_PREFIX + "REGION", *REGION_ENVS) if os.environ.get(n)), None)
    if not region:
        raise ConfigError(
            "no region to price in",
            hint=f"give --region (price tables shipped: {', '.join(shipped_regions())}) or set SKYOPS_SAGEMAKER_REGION",
        )
    pipeline = load(name)
    options = settings_from_env(os.environ, {**_STAND_INS, "region": region, "code_key": "estimate/sourcedir.tar.gz"})
    definition = compile_pipeline(pipeline, options, parse_params(param))
    found = estimate(pipeline.name, definition, {}, load_prices(options.region), parse_hours(parse_params(hours)))
    print_estimate(found)


def print_estimate(found: Estimate, *, table: bool = True) -> None:
    """The estimate's jobs as a table (unless `table` is False), its one-line summary and where its prices came from."""
    out = stdout_output()
    if table:
        rows: list[list[Part]] = [
            [
                job.step,
                job.instance_type + (" (spot: priced on demand)" if job.spot else ""),
                str(job.count),
                "-" if job.usd_per_hour is None else f"{job.usd_per_hour:.3f}",
                f"{job.hours:g}" + (" (cap)" if job.capped else ""),
                "no price" if job.usd is None else f"{job.usd:,.2f}",
            ]
            for job in found.jobs
        ]
        out.table(["step", "instance", "count", "USD/hour", "hours", "USD"], rows)
    out.line(("estimate ", "bold"), found.summary() + (" (steps without --hours at their MaxRuntime)" if found.capped else ""))
    out.line(found.provenance())


def estimate_before_start(pipeline: str, definition: dict[str, Any], values: dict[str, str], region: str) -> None:
    """What `skyops sagemaker start` prints before it starts an execution: the estimate of the stored definition
    with the execution's values, or why there is none (a missing price table never stops a start)."""
    from skyops.aws.estimate import estimate
    from skyops.aws.prices import load_prices
    from skyops.errors import SkyopsError

    try:
        found = estimate(pipeline, definition, values, load_prices(region))
    except SkyopsError as e:
        print(f"cost    no estimate: {e.message}" + (f" ({e.hint})" if e.hint else ""))
        return
    print(f"cost    {found.summary()}; closer: skyops cost estimate {pipeline} --hours STEP=H")
    print(f"        {found.provenance()}")


def _months_back(today: date, months: int) -> date:
    """The first day of the month `months` before today's."""
    index = today.year * 12 + today.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)
