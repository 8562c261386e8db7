"""`skyops cost report` against a real moto server: Cost Explorer's GetCostAndUsage through the guard, every page read,
the request checked against botocore's model, the table and the chart.

moto 5.2.5 implements GetCostAndUsage but tracks no costs: it answers each distinct request with the next result
queued through its own API (POST /moto-api/static/ce/cost-and-usage-results), and does not validate the request.
So the results here are seeded in Cost Explorer's response shape, and every request is checked by botocore's
ParamValidator and the model's constraints (the `checked` fixture), its content by the assertions below.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from skyops.aws.cost_chart import bar_series
from skyops.aws.cost_explorer import CostQuery, fetch_costs
from skyops.cli import main as skyops_main
from skyops.errors import ConfigError

from .conftest import CheckedRequests, MotoServer


def group(environment: str, component: str, amount: str) -> dict[str, Any]:
    return {
        "Keys": [f"Environment${environment}", f"Component${component}"],
        "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}},
    }


def period(start: str, end: str, groups: list[dict[str, Any]], estimated: bool = False) -> dict[str, Any]:
    return {"TimePeriod": {"Start": start, "End": end}, "Total": {}, "Groups": groups, "Estimated": estimated}


# Two pages, as Cost Explorer splits a long answer: October's production/training continues on page 2.
PAGES = [
    {
        "GroupDefinitions": [{"Type": "TAG", "Key": "Environment"}, {"Type": "TAG", "Key": "Component"}],
        "ResultsByTime": [
            period("2026-09-01", "2026-10-01", [group("production", "training", "120.5"), group("staging", "training", "10")]),
            period("2026-10-01", "2026-11-01", [group("production", "training", "40"), group("production", "endpoint", "80.25")]),
        ],
        "DimensionValueAttributes": [],
        "NextPageToken": "page-2",
    },
    {
        "GroupDefinitions": [{"Type": "TAG", "Key": "Environment"}, {"Type": "TAG", "Key": "Component"}],
        "ResultsByTime": [
            period("2026-10-01", "2026-11-01", [group("production", "training", "4.5")]),
            period("2026-11-01", "2026-12-01", [group("", "", "3.2"), group("production", "endpoint", "20")], estimated=True),
        ],
        "DimensionValueAttributes": [],
    },
]
QUERY = CostQuery(start=date(2026, 9, 1), end=date(2026, 12, 1))
REQUEST = {
    "TimePeriod": {"Start": "2026-09-01", "End": "2026-12-01"},
    "Granularity": "MONTHLY",
    "Metrics": ["UnblendedCost"],
    "Filter": {"Tags": {"Key": "Project", "Values": ["skyops"], "MatchOptions": ["EQUALS"]}},
    "GroupBy": [{"Type": "TAG", "Key": "Environment"}, {"Type": "TAG", "Key": "Component"}],
}


def seed(moto: MotoServer, pages: list[dict[str, Any]]) -> None:
    """Queue Cost Explorer's answers on the moto server (moto's own API; not counted as a request)."""
    body = json.dumps({"results": pages}).encode()
    request = urllib.request.Request(
        f"{moto.url}/moto-api/static/ce/cost-and-usage-results", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def test_every_page_is_read_with_a_request_botocore_accepts(moto: MotoServer, guard: Any, checked: CheckedRequests) -> None:
    seed(moto, PAGES)
    report = fetch_costs(guard, QUERY)
    assert checked.problems == []
    assert checked.of("GetCostAndUsage") == [REQUEST, {**REQUEST, "NextPageToken": "page-2"}]
    assert moto.operations == ["GetCostAndUsage", "GetCostAndUsage"]
    assert [(r.start, r.groups, r.amount, r.estimated) for r in report.rows] == [
        ("2026-09-01", ("production", "training"), 120.5, False),
        ("2026-09-01", ("staging", "training"), 10.0, False),
        ("2026-10-01", ("production", "endpoint"), 80.25, False),
        ("2026-10-01", ("production", "training"), 44.5, False),  # 40 on page 1 + 4.5 on page 2
        ("2026-11-01", ("(no Environment)", "(no Component)"), 3.2, True),
        ("2026-11-01", ("production", "endpoint"), 20.0, True),
    ]
    assert report.total == pytest.approx(278.45) and report.unit == "USD"
    periods, series = bar_series(report)
    assert periods == ["2026-09-01", "2026-10-01", "2026-11-01"]
    assert series == {
        "production / training": [120.5, 44.5, 0.0],
        "production / endpoint": [0.0, 80.25, 20.0],
        "staging / training": [10.0, 0.0, 0.0],
        "(no Environment) / (no Component)": [0.0, 0.0, 3.2],
    }


def test_a_dimension_group_is_asked_as_one() -> None:
    query = CostQuery(start=date(2026, 11, 1), end=date(2026, 11, 8), granularity="DAILY", group_by=("Environment", "dimension:SERVICE"))
    assert query.request()["GroupBy"] == [{"Type": "TAG", "Key": "Environment"}, {"Type": "DIMENSION", "Key": "SERVICE"}]


def test_a_bad_query_is_refused_with_every_problem() -> None:
    with pytest.raises(ConfigError, match=r"^4 problems in the cost report's query") as info:
        CostQuery(start=date(2026, 12, 1), end=date(2026, 9, 1), granularity="HOURLY", metric="Cost", group_by=("a", "b", "c"))
    assert info.value.problems == [
        "granularity 'HOURLY' is not one of MONTHLY, DAILY",
        "group by one or two keys (Cost Explorer's limit), not 3",
        "metric 'Cost' is not one of UnblendedCost, AmortizedCost, NetUnblendedCost, NetAmortizedCost, BlendedCost",
        "start 2026-12-01 must be before end 2026-09-01 (end is exclusive)",
    ]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        skyops_main(list(args))
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_report_prints_the_table_and_writes_the_chart(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    seed(moto, PAGES)
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(tmp_path / "state"))
    code, out, err = cli(capsys, "cost", "report", "--start", "2026-09-01", "--end", "2026-12-01")
    assert (code, err) == (0, "")
    chart = tmp_path / "state" / "reports" / "cost-2026-09-01-2026-12-01.png"
    assert out.splitlines() == [
        "UnblendedCost of resources tagged Project=skyops, 2026-09-01 to 2026-12-01 (exclusive)",
        "period                  Environment       Component       USD",
        "2026-09-01              production        training        120.50",
        "2026-09-01              staging           training        10.00",
        "2026-10-01              production        endpoint        80.25",
        "2026-10-01              production        training        44.50",
        "2026-11-01 (estimated)  (no Environment)  (no Component)  3.20",
        "2026-11-01 (estimated)  production        endpoint        20.00",
        "total                   production        training        165.00",
        "total                   production        endpoint        100.25",
        "total                   staging           training        10.00",
        "total                   (no Environment)  (no Component)  3.20",
        "all                                                       278.45",
        f"chart   {chart}",
    ]
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.size[0] > 600 and image.size[1] > 400
    assert [p.name for p in chart.parent.iterdir()] == [chart.name]  # no temp file beside it


def test_cli_report_with_nothing_tagged_says_what_to_check(moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "cost", "report", "--start", "2026-09-01", "--end", "2026-12-01", "--chart", str(tmp_path / "c.png"))
    assert code == 0 and out.splitlines()[1] == (
        "no costs found: are resources tagged Project=skyops, and is the tag activated as a cost allocation tag?"
    )
    assert not (tmp_path / "c.png").exists()


def test_cli_report_with_a_wrong_profile_sends_nothing(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "other")  # the shell's profile is not skyops' (ab)
    code, out, err = cli(capsys, "cost", "report", "--no-chart")
    assert (code, out) == (2, "") and "refused before any request" in err
    assert moto.requests == []
