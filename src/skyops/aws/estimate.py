"""What one execution of a SageMaker pipeline may cost: instance-hours × the offline price table.

    table = load_prices("eu-west-1")
    found = estimate(definition, values, table, hours={"train": 1.5})   # the pipeline-definition JSON
    found.total, found.capped                                           # USD; True: some hours are the cap

Read from the pipeline-definition JSON (compiled offline by `skyops cost estimate`, or the one SageMaker
holds, read by `skyops sagemaker start`), so the estimate prices exactly what would run: each Processing
and Training step's instance type (a `{"Get": "Parameters.X"}` resolved from the execution's values or
the parameter's default), instance count and `StoppingCondition.MaxRuntimeInSeconds`.

Hours: a step's `--hours` if given, else its MaxRuntime, the most SageMaker lets it run: an upper
bound, which the estimate says (`capped`). Not counted: storage volumes, S3, data transfer, retries
after a failure (RetryPolicy), spot savings (a spot job is priced on demand), steps inside a
Condition that may not run (counted as if they do), endpoints. docs/cost.md says how to read it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from skyops.aws.prices import PriceTable
from skyops.errors import ConfigError, problems_error

SECONDS_PER_HOUR = 3600
_JOBS = {  # step type -> (Price List component, where its resources are in Arguments)
    "Processing": ("Processing", ("ProcessingResources", "ClusterConfig")),
    "Training": ("Training", ("ResourceConfig",)),
}


@dataclass(frozen=True)
class JobCost:
    """One job of the execution, priced. `usd` is None when its instance type has no price in the table."""

    step: str
    component: str
    instance_type: str
    count: int
    hours: float
    capped: bool  # hours are the step's MaxRuntime (no --hours given)
    usd_per_hour: float | None
    spot: bool

    @property
    def usd(self) -> float | None:
        return None if self.usd_per_hour is None else self.usd_per_hour * self.count * self.hours


@dataclass(frozen=True)
class Estimate:
    """The jobs of one execution and their cost in USD, with the price table they were priced from."""

    pipeline: str
    prices: PriceTable
    jobs: tuple[JobCost, ...]

    @property
    def total(self) -> float:
        """USD of every job with a known price."""
        return sum(job.usd or 0.0 for job in self.jobs)

    @property
    def capped(self) -> bool:
        return any(job.capped for job in self.jobs)

    @property
    def unpriced(self) -> list[JobCost]:
        return [job for job in self.jobs if job.usd_per_hour is None]

    def summary(self) -> str:
        """One line: the total, and what kind of number it is."""
        bound = "at most" if self.capped else "about"
        line = f"{bound} ${self.total:,.2f} for one execution of {self.pipeline} in {self.prices.region}"
        if self.unpriced:
            line += f" + {len(self.unpriced)} job(s) without a price ({', '.join(sorted({j.instance_type for j in self.unpriced}))})"
        return line

    def provenance(self) -> str:
        """Where the prices came from, and how to refresh them when they are a hand-typed seed."""
        if self.prices.fetched:
            return f"prices: {self.prices.source}, read {self.prices.fetched}"
        return f"prices: a seed table typed by hand, not read from the Price List API; refresh: python tools/refresh_prices.py --region {self.prices.region}"


def estimate(
    pipeline: str, definition: Mapping[str, Any], values: Mapping[str, Any], prices: PriceTable, hours: Mapping[str, float] | None = None
) -> Estimate:
    """Price every Processing and Training step of `definition` (see the module docstring).

    Args:
        values: the execution's parameter values (missing ones take the definition's defaults).
        hours: step name -> expected hours; steps not named are counted at their MaxRuntime.

    Raises:
        ConfigError: an `hours` entry names no job step, or is not a positive number; a step's instance
            type or count is an expression no value resolves.
    """
    hours = dict(hours or {})
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
    jobs, problems = [], []
    for step in _steps(definition.get("Steps", [])):
        kind = _JOBS.get(step.get("Type", ""))
        if kind is None:
            continue
        component, path = kind
        arguments = step.get("Arguments", {})
        resources: Any = arguments
        for key in path:
            resources = resources.get(key, {})
        instance_type = _value(resources.get("InstanceType"), values, defaults)
        count = _value(resources.get("InstanceCount", 1), values, defaults)
        cap = arguments.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 24 * SECONDS_PER_HOUR)  # SageMaker's default cap: 1 day
        if not isinstance(instance_type, str) or not isinstance(count, int):
            problems.append(f"step {step['Name']!r}: instance type {instance_type!r} and count {count!r} are not both known")
            continue
        given = hours.pop(step["Name"], None)
        spot = bool(arguments.get("EnableManagedSpotTraining"))
        jobs.append(
            JobCost(
                step=step["Name"],
                component=component,
                instance_type=instance_type,
                count=count,
                hours=given if given is not None else cap / SECONDS_PER_HOUR,
                capped=given is None,
                usd_per_hour=prices.hourly(component, instance_type),
                spot=spot,
            )
        )
    problems += [f"--hours {name}={value}: no Processing or Training step is named {name!r}" for name, value in hours.items()]
    if problems:
        raise problems_error(
            ConfigError, f"the cost estimate of {pipeline!r}", problems, hint=f"job steps: {', '.join(j.step for j in jobs) or 'none'}"
        )
    return Estimate(pipeline=pipeline, prices=prices, jobs=tuple(jobs))


def _steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every step, those inside a Condition's branches included, in definition order."""
    for step in steps:
        yield step
        if step.get("Type") == "Condition":
            yield from _steps(step.get("Arguments", {}).get("IfSteps", []))
            yield from _steps(step.get("Arguments", {}).get("ElseSteps", []))


def _value(value: Any, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    """A literal as it is; `{"Get": "Parameters.X"}` as the execution's value of X, else X's default; other expressions: None."""
    if isinstance(value, dict):
        reference = value.get("Get", "")
        if isinstance(reference, str) and reference.startswith("Parameters."):
            name = reference.removeprefix("Parameters.")
            found = values.get(name, defaults.get(name))
            return int(found) if isinstance(found, str) and found.isdigit() else found
        return None
    return value


def parse_hours(pairs: Mapping[str, str]) -> dict[str, float]:
    """`--hours STEP=H` values as positive hours; every bad one at once.

    Raises:
        ConfigError: a value that is not a positive, finite number.
    """
    hours, problems = {}, []
    for name, text in sorted(pairs.items()):
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 < value < float("inf"):
            problems.append(f"--hours {name}={text}: expected a positive number of hours, e.g. --hours {name}=1.5")
            continue
        hours[name] = value
    if problems:
        raise problems_error(ConfigError, "--hours", problems, hint="write --hours STEP=HOURS, e.g. --hours train=2")
    return hours
