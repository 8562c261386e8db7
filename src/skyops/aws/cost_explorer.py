"""What the project has cost: Cost Explorer's GetCostAndUsage, filtered by the project's tag, grouped by two keys.

    query = CostQuery(start=date(2026, 9, 1), end=date(2026, 12, 1))          # Project=skyops, by Environment and Component
    report = fetch_costs(AwsGuard(), query)                                    # every page, through the guard
    report.rows, report.totals(), report.total                                 # USD

Costs show under a tag only once the tag is *activated* as a cost allocation tag in the Billing console
(and only for costs incurred after that); resources without the tag are left out by the filter, and a
resource without a grouping tag falls in the "(no Environment)" group. Each request costs $0.01
(Cost Explorer's API price); a report is one request per page of results. docs/cost.md says more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from skyops.aws.session import AwsGuard, aws_request
from skyops.errors import ConfigError, problems_error

GRANULARITIES = ("MONTHLY", "DAILY")
METRICS = ("UnblendedCost", "AmortizedCost", "NetUnblendedCost", "NetAmortizedCost", "BlendedCost")
DIMENSION_PREFIX = "dimension:"  # a group key like dimension:SERVICE groups by a Cost Explorer dimension, not a tag
_DAILY_LIMIT = 366  # days a DAILY report may span here (Cost Explorer keeps ~14 months; one page per day group)


@dataclass(frozen=True)
class CostQuery:
    """What to ask Cost Explorer. `end` is exclusive (Cost Explorer's rule); at most two group keys (its limit).

    Args:
        group_by: tag keys, or `dimension:NAME` (e.g. dimension:SERVICE) for a Cost Explorer dimension.
    """

    start: date
    end: date
    granularity: str = "MONTHLY"
    metric: str = "UnblendedCost"
    project_tag: str = "Project"
    project: str = "skyops"
    group_by: tuple[str, ...] = ("Environment", "Component")

    def __post_init__(self) -> None:
        problems = []
        if self.start >= self.end:
            problems.append(f"start {self.start} must be before end {self.end} (end is exclusive)")
        if self.granularity not in GRANULARITIES:
            problems.append(f"granularity {self.granularity!r} is not one of {', '.join(GRANULARITIES)}")
        elif self.granularity == "DAILY" and (self.end - self.start).days > _DAILY_LIMIT:
            problems.append(f"a DAILY report spans at most {_DAILY_LIMIT} days, not {(self.end - self.start).days}")
        if self.metric not in METRICS:
            problems.append(f"metric {self.metric!r} is not one of {', '.join(METRICS)}")
        if not 1 <= len(self.group_by) <= 2:
            problems.append(f"group by one or two keys (Cost Explorer's limit), not {len(self.group_by)}")
        if any(not key.removeprefix(DIMENSION_PREFIX) for key in self.group_by):
            problems.append("a group key is empty")
        if problems:
            raise problems_error(ConfigError, "the cost report's query", problems, hint="see `skyops cost report --help`")

    def request(self) -> dict[str, Any]:
        """The GetCostAndUsage request (without the page token)."""
        return {
            "TimePeriod": {"Start": self.start.isoformat(), "End": self.end.isoformat()},
            "Granularity": self.granularity,
            "Metrics": [self.metric],
            "Filter": {"Tags": {"Key": self.project_tag, "Values": [self.project], "MatchOptions": ["EQUALS"]}},
            "GroupBy": [
                {"Type": "DIMENSION", "Key": key.removeprefix(DIMENSION_PREFIX)}
                if key.startswith(DIMENSION_PREFIX)
                else {"Type": "TAG", "Key": key}
                for key in self.group_by
            ],
        }


@dataclass(frozen=True)
class CostRow:
    """The cost of one group in one period. `groups` holds one value per group key ("(no Environment)" when untagged)."""

    start: str
    end: str
    groups: tuple[str, ...]
    amount: float
    unit: str
    estimated: bool  # Cost Explorer's flag: the period is not closed yet


@dataclass(frozen=True)
class CostReport:
    query: CostQuery
    rows: tuple[CostRow, ...]
    pages: int = 1
    units: frozenset[str] = field(default_factory=frozenset)

    @property
    def periods(self) -> list[str]:
        return sorted({row.start for row in self.rows})

    @property
    def total(self) -> float:
        return sum(row.amount for row in self.rows)

    @property
    def unit(self) -> str:
        return next(iter(self.units)) if len(self.units) == 1 else "USD"

    def totals(self) -> dict[tuple[str, ...], float]:
        """Each group's total over the whole period, largest first."""
        sums: dict[tuple[str, ...], float] = defaultdict(float)
        for row in self.rows:
            sums[row.groups] += row.amount
        return dict(sorted(sums.items(), key=lambda item: (-item[1], item[0])))


def parse_results(query: CostQuery, pages: Sequence[Mapping[str, Any]]) -> CostReport:
    """GetCostAndUsage responses (every page) as rows; a group split over two pages is added up.

    A group key comes back as `Environment$production` for a tag (`Environment$` when the resource lacks
    it) and as the plain value for a dimension.
    """
    amounts: dict[tuple[str, str, tuple[str, ...]], float] = defaultdict(float)
    estimated: dict[tuple[str, str], bool] = {}
    units: set[str] = set()
    for page in pages:
        for period in page.get("ResultsByTime", []):
            start, end = period["TimePeriod"]["Start"], period["TimePeriod"]["End"]
            estimated[(start, end)] = bool(period.get("Estimated", False))
            for group in period.get("Groups", []):
                metric = group.get("Metrics", {}).get(query.metric, {})
                if "Amount" not in metric:
                    continue
                keys = tuple(_group_value(key, name) for key, name in zip(group.get("Keys", []), query.group_by, strict=False))
                amounts[(start, end, keys)] += float(metric["Amount"])
                units.add(str(metric.get("Unit", "USD")))
    rows = tuple(
        CostRow(
            start=start,
            end=end,
            groups=groups,
            amount=amount,
            unit=next(iter(units)) if len(units) == 1 else "USD",
            estimated=estimated[(start, end)],
        )
        for (start, end, groups), amount in sorted(amounts.items())
    )
    return CostReport(query=query, rows=rows, pages=len(pages), units=frozenset(units))


def fetch_costs(guard: AwsGuard, query: CostQuery) -> CostReport:
    """Every page of GetCostAndUsage for `query`, through the guard (Cost Explorer answers from us-east-1)."""
    client = guard.client("ce")
    pages: list[dict[str, Any]] = []
    token: str | None = None
    hint = (
        "the profile's role needs ce:GetCostAndUsage, and Cost Explorer must be enabled for the account "
        f"(Billing console); the tags {query.project_tag} and {', '.join(query.group_by)} must be activated as cost allocation tags"
    )
    with aws_request(f"read the costs tagged {query.project_tag}={query.project}", hint=hint):
        while True:
            page = client.get_cost_and_usage(**query.request(), **({"NextPageToken": token} if token else {}))
            pages.append(page)
            token = page.get("NextPageToken")
            if not token:
                break
    return parse_results(query, pages)


def _group_value(key: str, name: str) -> str:
    """`Environment$production` -> production; `Environment$` -> (no Environment); a dimension's value as it is."""
    if name.startswith(DIMENSION_PREFIX):
        return key or f"(no {name.removeprefix(DIMENSION_PREFIX)})"
    _, sep, value = key.partition("$")
    return (value if sep else key) or f"(no {name})"
