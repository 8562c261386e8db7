"""The cost estimate of one SageMaker execution: instance-hours × the offline price table, read from the pipeline
definition (the golden drone-detection definition here), and `skyops cost estimate` as a user meets it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from skyops.aws import prices
from skyops.aws.estimate import estimate, parse_hours
from skyops.aws.prices import PriceTable
from skyops.cli import main as skyops_main
from skyops.errors import ConfigError
from skyops.pipeline.definition import load_pipeline
from skyops.pipeline.sagemaker import compile_pipeline
from skyops.pipeline.sagemaker.settings import SageMakerSettings

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((ROOT / "tests" / "sagemaker" / "golden" / "drone-detection.json").read_text())
# Round numbers, so every sum below can be checked by hand.
TABLE = PriceTable(
    region="eu-west-1",
    source="test",
    fetched="2026-11-30",
    prices={"Processing": {"ml.m5.xlarge": 0.25}, "Training": {"ml.g4dn.xlarge": 1.0, "ml.g5.xlarge": 2.0}},
)
PROCESSING = ["ingest", "validate", "profile", "split", "evaluate", "export", "register"]


def test_every_job_at_its_cap_when_no_hours_are_given() -> None:
    found = estimate("drone-detection", GOLDEN, {}, TABLE)
    assert [(j.step, j.component, j.instance_type, j.count, j.hours, j.capped) for j in found.jobs] == [
        *[(step, "Processing", "ml.m5.xlarge", 1, 4.0, True) for step in PROCESSING[:4]],
        ("train", "Training", "ml.g4dn.xlarge", 1, 24.0, True),
        # export and register: inside the gate's Condition
        *[(step, "Processing", "ml.m5.xlarge", 1, 4.0, True) for step in PROCESSING[4:]],
    ]
    assert found.total == pytest.approx(7 * 4 * 0.25 + 24 * 1.0)
    assert found.summary() == "at most $31.00 for one execution of drone-detection in eu-west-1"
    assert found.provenance() == "prices: test, read 2026-11-30"


def test_hours_and_the_executions_values_replace_the_caps_and_defaults() -> None:
    values = {"TrainingInstanceType": "ml.g5.xlarge"}
    found = estimate("drone-detection", GOLDEN, values, TABLE, hours={"train": 1.5, **dict.fromkeys(PROCESSING, 0.1)})
    assert not found.capped and {j.instance_type for j in found.jobs if j.step == "train"} == {"ml.g5.xlarge"}
    assert found.total == pytest.approx(1.5 * 2.0 + 7 * 0.1 * 0.25)
    assert found.summary() == "about $3.17 for one execution of drone-detection in eu-west-1"


def test_an_instance_type_without_a_price_is_named_not_guessed() -> None:
    found = estimate("drone-detection", GOLDEN, {"ProcessingInstanceType": "ml.r7i.large"}, TABLE)
    assert [j.step for j in found.unpriced] == PROCESSING and found.total == pytest.approx(24.0)
    assert found.summary() == "at most $24.00 for one execution of drone-detection in eu-west-1 + 7 job(s) without a price (ml.r7i.large)"


def test_spot_training_is_marked_and_priced_on_demand() -> None:
    drone = load_pipeline("drone-detection", search=[ROOT / "pipelines"])
    settings = SageMakerSettings(
        bucket="skyops-artifacts",
        role_arn="arn:aws:iam::123456789012:role/skyops",
        region="eu-west-1",
        image_uris={"eu-west-1": "image"},
        code_key="code/x.tar.gz",
        spot=True,
    )
    found = estimate("drone-detection", compile_pipeline(drone, settings), {}, TABLE)
    assert [j.step for j in found.jobs if j.spot] == ["train"]
    assert found.total == pytest.approx(7 * 4 * 0.25 + 24 * 1.0)


def test_hours_for_no_job_step_and_bad_hours_are_refused_all_at_once() -> None:
    with pytest.raises(ConfigError, match=r"^2 problems in the cost estimate of 'drone-detection'") as info:
        estimate("drone-detection", GOLDEN, {}, TABLE, hours={"trian": 1.0, "quality-gate": 1.0})
    assert info.value.problems == [
        "--hours quality-gate=1.0: no Processing or Training step is named 'quality-gate'",
        "--hours trian=1.0: no Processing or Training step is named 'trian'",
    ]
    assert info.value.hint == "job steps: ingest, validate, profile, split, train, evaluate, export, register"
    with pytest.raises(ConfigError) as bad:
        parse_hours({"train": "two", "ingest": "-1", "split": "inf", "evaluate": "0.5"})
    assert bad.value.problems == [
        "--hours ingest=-1: expected a positive number of hours, e.g. --hours ingest=1.5",
        "--hours split=inf: expected a positive number of hours, e.g. --hours split=1.5",
        "--hours train=two: expected a positive number of hours, e.g. --hours train=1.5",
    ]


def test_an_instance_type_no_value_resolves_is_refused() -> None:
    broken: dict[str, Any] = json.loads(json.dumps(GOLDEN))
    train = next(s for s in broken["Steps"] if s["Name"] == "train")
    train["Arguments"]["ResourceConfig"]["InstanceType"] = {"Std:Join": {"On": "", "Values": ["ml.", "g5.xlarge"]}}
    with pytest.raises(ConfigError) as info:
        estimate("drone-detection", broken, {}, TABLE)
    assert info.value.problems == ["step 'train': instance type None and count 1 are not both known"]


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI in this process: this repository's pipelines, no SKYOPS_SAGEMAKER_* from the shell, the test price table."""
    import os

    for name in [n for n in os.environ if n.startswith("SKYOPS_SAGEMAKER_")] + ["AWS_REGION", "AWS_DEFAULT_REGION"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(ROOT))
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "eu-west-1.json").write_text(json.dumps(dataclasses.replace(TABLE, fetched=None).as_json()))
    monkeypatch.setattr(prices, "price_dir", lambda: tmp_path / "prices")
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = 0
    try:
        skyops_main(list(args))
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_estimate_prints_each_job_the_total_and_where_the_prices_came_from(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(
        capsys, "cost", "estimate", "--region", "eu-west-1", "--hours", "train=2", "-p", "TrainingInstanceType=ml.g5.xlarge"
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "step      instance      count  USD/hour  hours    USD",
        "ingest    ml.m5.xlarge  1      0.250     4 (cap)  1.00",
        "validate  ml.m5.xlarge  1      0.250     4 (cap)  1.00",
        "profile   ml.m5.xlarge  1      0.250     4 (cap)  1.00",
        "split     ml.m5.xlarge  1      0.250     4 (cap)  1.00",
        "train     ml.g5.xlarge  1      2.000     2        4.00",
        "evaluate  ml.m5.xlarge  1      0.250     4 (cap)  1.00",
        "export    ml.m5.xlarge  1      0.250     4 (cap)  1.00",
        "register  ml.m5.xlarge  1      0.250     4 (cap)  1.00",
        "estimate at most $11.00 for one execution of drone-detection in eu-west-1 (steps without --hours at their MaxRuntime)",
        "prices: a seed table typed by hand, not read from the Price List API; refresh: python tools/refresh_prices.py --region eu-west-1",
    ]


def test_cli_estimate_without_a_region_or_a_table_says_how_to_get_one(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "cost", "estimate") == (
        2,
        "",
        "error: no region to price in\nhint: give --region (price tables shipped: eu-west-1) or set SKYOPS_SAGEMAKER_REGION\n",
    )
    code, out, err = cli(capsys, "cost", "estimate", "--region", "us-west-2")
    assert (code, out) == (2, "") and err.startswith("error: no offline SageMaker prices for region 'us-west-2' (shipped: eu-west-1)\n")
