"""The retraining policy: its rules one by one, the labels counted since the last run's dataset, every decision
logged with its reason, a real `skyops run` started, and two alerts at once starting one run only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from skyops.errors import ConfigError, StateFileError
from skyops.monitoring.datasets import DatasetStore, DatasetVersion, external
from skyops.monitoring.retrain import RetrainPolicy, RetrainTrigger, Rule, RunRequest, Start, decide
from skyops.monitoring.sinks import Publisher
from skyops.pipeline.lineage import list_records
from skyops.settings import Settings

from .conftest import TINY_PIPELINE, labelled_dataset, logged_events, python_env

NOW = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def started(*hours_ago: float, fingerprint: str = "f0") -> list[Start]:
    return [Start(NOW - timedelta(hours=h), f"d{i}", {"fingerprint": fingerprint}) for i, h in enumerate(sorted(hours_ago, reverse=True))]


@pytest.mark.parametrize(
    ("starts", "new_labels", "expected"),
    [
        ([], 50, []),
        ([], 49, [Rule.TOO_LITTLE_DATA]),
        ([], None, [Rule.NO_DATASET]),
        (started(25), 50, []),
        (started(23.5), 50, [Rule.COOLDOWN]),
        (started(30, 26), 50, []),  # two starts, but both more than 24 h ago
        (started(23.9, 23.8), 0, [Rule.COOLDOWN, Rule.DAILY_CAP, Rule.TOO_LITTLE_DATA]),
    ],
)
def test_each_rule_refuses_on_its_own_and_every_refusal_is_listed_in_order(
    starts: list[Start], new_labels: int | None, expected: list[Rule]
) -> None:
    policy = RetrainPolicy(cooldown_hours=24, max_per_day=2, min_new_labels=50)
    assert [rule for rule, _ in decide(policy, starts, NOW, new_labels)] == expected


def test_the_daily_cap_is_a_rolling_24_hours_and_reasons_say_the_numbers() -> None:
    policy = RetrainPolicy(cooldown_hours=1, max_per_day=2, min_new_labels=0)
    assert decide(policy, started(20, 2), NOW, 5) == [(Rule.DAILY_CAP, "2 run(s) started in the last 24 h, the most allowed is 2")]
    assert decide(policy, started(25, 2), NOW, 5) == []
    [(rule, reason)] = decide(policy, started(0.5), NOW, 5)
    assert (rule, reason) == (Rule.COOLDOWN, "the last run started 0.50 h ago, within the cooldown of 1 h (0.50 h left)")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cooldown_hours": -1.0}, "cooldown of -1.0 hours is not a finite number >= 0"),
        ({"cooldown_hours": float("inf")}, "cooldown of inf hours"),
        ({"max_per_day": 0}, "at most 0 runs a day would never start one"),
        ({"min_new_labels": -3}, "--min-new-labels -3 is negative"),
    ],
)
def test_a_policy_that_cannot_work_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetrainPolicy(**kwargs)


class Recorder:
    """A launcher that records the requests and starts `true` (a real process that ends at once)."""

    def __init__(self) -> None:
        self.requests: list[RunRequest] = []

    def __call__(self, request: RunRequest) -> Any:
        self.requests.append(request)
        return subprocess.Popen(["true"])


@pytest.fixture
def grown(project: Settings, scenes: Path, tmp_path: Path) -> tuple[DatasetStore, DatasetVersion, DatasetVersion]:
    """Two versions: v1 = the scenes + 3 labelled images, v2 = v1 + 2 more."""
    store = DatasetStore(project.state_dir)
    images = sorted((scenes / "images").glob("*.jpg"))
    first = store.grow(external(scenes), labelled_dataset(tmp_path, images[:3], "a"), labels_manifest=scenes / "manifest.json", job="a")
    second = store.grow(first, labelled_dataset(tmp_path, images[3:5], "b"), labels_manifest=scenes / "manifest.json", job="b")
    return store, first, second


def test_new_labels_are_counted_since_the_dataset_of_the_last_start(
    project: Settings, grown: tuple[DatasetStore, DatasetVersion, DatasetVersion]
) -> None:
    store, first, second = grown
    launcher = Recorder()
    trigger = RetrainTrigger(
        project, RetrainPolicy(cooldown_hours=0, min_new_labels=3), Publisher(project.state_dir / "events"), launcher=launcher
    )
    decision, _ = trigger.consider({"kind": "manual"}, second, store, now=NOW)
    assert (decision.rule, decision.dataset["new_labels"]) == (Rule.START, 5)  # type: ignore[index]
    decision, _ = trigger.consider({"kind": "manual"}, second, store, now=NOW + timedelta(hours=1))
    assert (decision.rule, decision.reason) == (
        Rule.TOO_LITTLE_DATA,
        "0 new labelled image(s) since the dataset of the last run, fewer than the 3 required",
    )
    trigger.policy = RetrainPolicy(cooldown_hours=0, min_new_labels=2)
    trigger._save([Start(NOW, "d", first.to_json())])  # as if the last run had trained on v1
    decision, _ = trigger.consider({"kind": "manual"}, second, store, now=NOW + timedelta(hours=2))
    assert (decision.rule, decision.dataset["new_labels"]) == (Rule.START, 2)  # type: ignore[index]
    [request, _] = launcher.requests
    assert request.command[1:] == ["-m", "skyops", "run", "drone-detection", "-p", f"dataset={second.path}", "-p", "format=yolo"]
    assert (request.cwd, request.env["SKYOPS_STATE_DIR"], request.wait) == (project.project_dir, str(project.state_dir), False)


def test_every_decision_is_logged_with_its_reason_and_published(
    project: Settings, grown: tuple[DatasetStore, DatasetVersion, DatasetVersion]
) -> None:
    store, _, second = grown
    trigger = RetrainTrigger(
        project, RetrainPolicy(cooldown_hours=6, min_new_labels=1), Publisher(project.state_dir / "events"), launcher=Recorder()
    )
    outcomes = [
        trigger.consider({"kind": "drift.detected", "event_id": f"e{n}"}, second, store, now=NOW + timedelta(hours=n))[0] for n in (0, 1, 7)
    ]
    assert [d.rule for d in outcomes] == [Rule.START, Rule.COOLDOWN, Rule.TOO_LITTLE_DATA]
    logged = trigger.decisions()
    assert [(d["decision"], d["rule"], d["trigger"]["event_id"]) for d in logged] == [
        ("start", "start", "e0"),
        ("refused", "cooldown", "e1"),
        ("refused", "too-little-data", "e7"),
    ]
    assert logged[0]["reason"] == f"policy allows it: training 'drone-detection' on v0002 ({second.images} images)"
    assert logged[0]["run"]["log"].endswith(f"retrain/runs/{logged[0]['id']}.log")
    assert logged[0]["policy"] == {"cooldown_hours": 6, "max_per_day": 2, "min_new_labels": 1}
    events = [e for e in logged_events(project) if e["type"] == "retrain.decided"]
    assert [(e["detail"]["decision"], e["detail"]["rule"], e["detail"]["decision_id"]) for e in events] == [
        (d["decision"], d["rule"], d["id"]) for d in logged
    ]


def test_no_dataset_is_a_logged_refusal_and_a_run_that_cannot_start_is_not_counted(project: Settings, scenes: Path, tmp_path: Path) -> None:
    trigger = RetrainTrigger(project, RetrainPolicy(min_new_labels=0), Publisher(project.state_dir / "events"))
    decision, _ = trigger.consider({"kind": "manual"}, None, now=NOW)
    assert (decision.rule, decision.reason) == (Rule.NO_DATASET, "there is no dataset to train on")
    without = tmp_path / "no-yaml"
    shutil.copytree(scenes, without, ignore=shutil.ignore_patterns("data.yaml"))
    decision, _ = trigger.consider({"kind": "manual"}, external(without), now=NOW)
    assert (decision.rule, decision.reason) == (
        Rule.NO_DATASET,
        f"{without} has no data.yaml naming its classes: the pipeline cannot ingest it as YOLO",
    )
    elsewhere = replace(project, project_dir=project.project_dir / "missing")  # Popen's cwd does not exist
    trigger = RetrainTrigger(elsewhere, RetrainPolicy(min_new_labels=0), Publisher(project.state_dir / "events"))
    decision, _ = trigger.consider({"kind": "manual"}, external(scenes), now=NOW)
    assert decision.rule is Rule.LAUNCH_FAILED and decision.reason.startswith("the run could not be started: No such file or directory")
    assert trigger.starts() == []  # a start that never happened blocks nothing


def test_a_damaged_state_file_is_one_clear_error(project: Settings, scenes: Path) -> None:
    trigger = RetrainTrigger(project, RetrainPolicy(), Publisher(project.state_dir / "events"))
    (trigger.root).mkdir(parents=True)
    (trigger.root / "state.json").write_text('{"format": 1, "starts": [{"time": "yesterday", "decision": "d1"}]}')
    with pytest.raises(StateFileError, match=r"'starts\[0\]\.time' is a string, not an ISO 8601 time with its zone"):
        trigger.consider({"kind": "manual"}, external(scenes), now=NOW)
    (trigger.root / "state.json").write_text('{"format": 1, "starts": [{"time": 5}]}')
    with pytest.raises(
        StateFileError,
        match=r"retraining state .*state\.json has the wrong shape: 'starts\[0\]\.time' is a number, not an ISO 8601 time with its zone; 'starts\[0\]\.decision' is missing",
    ):
        trigger.consider({"kind": "manual"}, external(scenes), now=NOW)


def test_a_start_runs_the_pipeline_on_the_version_and_the_run_ingests_that_very_dataset(
    project: Settings, grown: tuple[DatasetStore, DatasetVersion, DatasetVersion]
) -> None:
    store, _, second = grown
    trigger = RetrainTrigger(project, RetrainPolicy(min_new_labels=1), Publisher(project.state_dir / "events"), pipeline=str(TINY_PIPELINE))
    decision, _ = trigger.consider({"kind": "manual"}, second, store, wait=True)
    assert decision.run is not None and decision.run.exit_code == 0, Path(decision.run.log).read_text()[-2000:] if decision.run else ""
    [record] = list_records(project.state_dir / "runs")
    assert (record.pipeline, record.parameters["dataset"], str(record.status)) == ("retrain-tiny", str(second.path), "succeeded")
    ingested = json.loads((Path(record.steps["ingest"].outputs["raw"]["path"]) / "ingest.json").read_text())
    assert (ingested["images"], ingested["fingerprint"]) == (second.images, second.fingerprint)


def _wait_gone(pid: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still runs after {seconds} s")


def test_two_alerts_at_once_start_one_run(
    project: Settings, grown: tuple[DatasetStore, DatasetVersion, DatasetVersion], write_drift: Callable[..., Path]
) -> None:
    drift = write_drift()
    command = [
        sys.executable,
        "-m",
        "skyops",
        "monitor",
        "alert",
        str(drift),
        "--retrain",
        "--min-new-labels",
        "1",
        "--pipeline",
        str(TINY_PIPELINE),
    ]
    env = python_env(SKYOPS_STATE_DIR=str(project.state_dir), SKYOPS_PROJECT_DIR=str(project.project_dir))
    procs = [
        subprocess.Popen(command, env=env, cwd=project.project_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    said = sorted(line for out, _ in outputs for line in out.splitlines() if line.startswith("retraining: "))
    assert len(said) == 2
    assert said[0].startswith("retraining: refused (cooldown): the last run started 0.00 h ago")
    assert said[1].startswith(f"retraining: start: policy allows it: training '{TINY_PIPELINE}' on v0002")
    trigger = RetrainTrigger(project, RetrainPolicy(), Publisher(project.state_dir / "events"))
    [start] = [d for d in trigger.decisions() if d["decision"] == "start"]
    assert len(trigger.starts()) == 1
    _wait_gone(start["run"]["pid"])  # the detached run: let it finish before the test's folder goes
    assert "run " in Path(start["run"]["log"]).read_text()
