"""The retraining trigger: an alert (or a person) asks, a policy decides, a training run starts or a refusal is logged.

    trigger = RetrainTrigger(settings, RetrainPolicy(cooldown_hours=24, max_per_day=2, min_new_labels=50), publisher)
    decision = trigger.consider({"kind": "drift.detected", "event_id": ...}, store.latest(), store)

`decide` holds the policy, numbered (every rule is checked; each one that refuses is recorded, and
the first names the decision):
    1. cooldown:        the last start was less than `cooldown_hours` ago;
    2. daily-cap:       `max_per_day` runs were started in the 24 hours before now (a rolling day);
    3. too-little-data: fewer than `min_new_labels` labelled images were added to the dataset since the
                        dataset the last run started on (all the labels it holds, before any start);
    4. no-dataset:      there is no dataset to train on, or one without a data.yaml naming its classes
                        (the pipeline ingests it as YOLO; every version `label import` makes has one).
None refusing: start. A start runs `python -m skyops run <pipeline> -p dataset=<version> -p format=yolo
[-p k=v ...]` in the project folder, detached (its output in `<state>/retrain/runs/<decision id>.log`),
or waits for it with `wait=True`.

State, under `<state>/retrain/`: `state.json` (the starts: time, decision, dataset), `decisions.jsonl`
(every decision with its reasons; jsonl.py), `.lock`. The lock is held from reading the state to
recording a start, so two alerts at once never both start a run: the second sees the first's start
(and is refused by the cooldown or the daily cap). Each decision is also published as a
`retrain.decided` event.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from skyops.errors import ConfigError
from skyops.monitoring.datasets import DATA_YAML, DatasetStore, DatasetVersion
from skyops.monitoring.events import EventType, format_time, new_event, parse_time
from skyops.monitoring.jsonl import JsonlLog, locked
from skyops.monitoring.sinks import Publisher, PublishReport
from skyops.pipeline.hashing import write_json_atomic
from skyops.settings import DEFAULT_PIPELINE, Settings
from skyops.statefile import read_json_state, shape_problems

RETRAIN_DIR = "retrain"
STATE_FILE = "state.json"
DECISIONS = "decisions.jsonl"
KEEP_STARTS = 200  # starts kept in state.json: far more than any cap needs


class Rule(StrEnum):
    START = "start"
    COOLDOWN = "cooldown"
    DAILY_CAP = "daily-cap"
    TOO_LITTLE_DATA = "too-little-data"
    NO_DATASET = "no-dataset"
    LAUNCH_FAILED = "launch-failed"


@dataclass(frozen=True, kw_only=True)
class RetrainPolicy:
    cooldown_hours: float = 24.0
    max_per_day: int = 2
    min_new_labels: int = 50

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cooldown_hours) and self.cooldown_hours >= 0):
            raise ConfigError(f"cooldown of {self.cooldown_hours} hours is not a finite number >= 0", hint="e.g. --cooldown-hours 24")
        if self.max_per_day < 1:
            raise ConfigError(f"at most {self.max_per_day} runs a day would never start one", hint="e.g. --max-per-day 2")
        if self.min_new_labels < 0:
            raise ConfigError(f"--min-new-labels {self.min_new_labels} is negative", hint="e.g. --min-new-labels 50")


@dataclass(frozen=True)
class Start:
    time: datetime
    decision: str
    dataset: Mapping[str, Any]  # DatasetVersion.to_json()


def decide(
    policy: RetrainPolicy,
    starts: Sequence[Start],
    now: datetime,
    new_labels: int | None,
    *,
    no_dataset: str = "there is no dataset to train on",
) -> list[tuple[Rule, str]]:
    """Every rule (module docstring) that refuses, in order, each with its reason; empty: start.

    Args:
        new_labels: labelled images added since the last start's dataset; None: no dataset (rule 4, saying `no_dataset`).
    """
    refusals = []
    if starts:
        since = now - starts[-1].time
        if since < timedelta(hours=policy.cooldown_hours):
            left = timedelta(hours=policy.cooldown_hours) - since
            refusals.append(
                (
                    Rule.COOLDOWN,
                    f"the last run started {_hours(since)} ago, within the cooldown of {policy.cooldown_hours:g} h ({_hours(left)} left)",
                )
            )
        recent = [s for s in starts if now - s.time < timedelta(days=1)]
        if len(recent) >= policy.max_per_day:
            refusals.append((Rule.DAILY_CAP, f"{len(recent)} run(s) started in the last 24 h, the most allowed is {policy.max_per_day}"))
    if new_labels is None:
        refusals.append((Rule.NO_DATASET, no_dataset))
    elif new_labels < policy.min_new_labels:
        where = "since the dataset of the last run" if starts else "in the dataset"
        refusals.append(
            (Rule.TOO_LITTLE_DATA, f"{new_labels} new labelled image(s) {where}, fewer than the {policy.min_new_labels} required")
        )
    return refusals


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.2f} h"


@dataclass(frozen=True)
class RunRequest:
    command: list[str]
    cwd: Path
    log: Path
    env: Mapping[str, str] = field(repr=False)
    wait: bool = False  # the caller will wait for it (so it stays in the caller's session)


class Started(Protocol):
    """A started run: subprocess.Popen has this shape."""

    pid: int

    def wait(self) -> int: ...


@dataclass(frozen=True)
class Launched:
    command: list[str]
    pid: int
    log: str
    exit_code: int | None = None  # when waited for


Launcher = Callable[[RunRequest], Started]


def launch(request: RunRequest) -> Started:
    """Start the run, its output appended to its log; in a session of its own (it outlives the caller) unless waited for."""
    request.log.parent.mkdir(parents=True, exist_ok=True)
    with request.log.open("ab") as out:
        return subprocess.Popen(
            request.command,
            cwd=request.cwd,
            env=dict(request.env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=not request.wait,
        )


@dataclass(frozen=True)
class Decision:
    id: str
    time: datetime
    rule: Rule
    reason: str
    trigger: Mapping[str, Any]
    dataset: Mapping[str, Any] | None
    policy: RetrainPolicy
    refusals: list[tuple[Rule, str]] = field(default_factory=list)
    run: Launched | None = None

    @property
    def started(self) -> bool:
        return self.rule is Rule.START

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": format_time(self.time),
            "decision": "start" if self.started else "refused",
            "rule": str(self.rule),
            "reason": self.reason,
            "reasons": [{"rule": str(r), "reason": why} for r, why in self.refusals],
            "trigger": dict(self.trigger),
            "dataset": dict(self.dataset) if self.dataset is not None else None,
            "policy": asdict(self.policy),
            "run": asdict(self.run) if self.run else None,
        }


class RetrainTrigger:
    """Decides under `policy` and starts `pipeline` on a dataset; see the module docstring.

    Args:
        publisher: where `retrain.decided` events go (the event log, webhook, EventBridge).
        params: extra pipeline parameters (`-p k=v`), e.g. epochs.
        launcher: how a run starts (`launch`; tests may record instead).
    """

    def __init__(
        self,
        settings: Settings,
        policy: RetrainPolicy,
        publisher: Publisher,
        *,
        pipeline: str = DEFAULT_PIPELINE,
        params: Mapping[str, str] | None = None,
        launcher: Launcher = launch,
    ) -> None:
        self.settings, self.policy, self.publisher = settings, policy, publisher
        self.pipeline = pipeline
        self.params = dict(params or {})
        self.launcher = launcher
        self.root = settings.state_dir / RETRAIN_DIR
        self.log = JsonlLog(self.root / DECISIONS)

    def starts(self) -> list[Start]:
        path = self.root / STATE_FILE
        if not path.exists():
            return []

        def problems(value: Any) -> list[str]:
            found = shape_problems(value, [("starts", lambda v: isinstance(v, list), "a list")])
            if not found:
                for i, s in enumerate(value["starts"]):
                    found += shape_problems(
                        s,
                        [("time", _is_time, "an ISO 8601 time with its zone"), ("decision", lambda v: isinstance(v, str), "an id")],
                        at=f"starts[{i}].",
                    )
            return found

        data = read_json_state(
            path,
            what="retraining state",
            expected='{"format": 1, "starts": [{"time", "decision", "dataset"}]}',
            hint=f"the decisions are in {self.root / DECISIONS}; move {path} aside to start the policy afresh",
            problems=problems,
        )
        return [Start(parse_time(s["time"]), s["decision"], s.get("dataset") or {}) for s in data["starts"]]

    def consider(
        self,
        trigger: Mapping[str, Any],
        dataset: DatasetVersion | None,
        store: DatasetStore | None = None,
        *,
        wait: bool = False,
        now: datetime | None = None,
    ) -> tuple[Decision, PublishReport]:
        """Decide (and maybe start a run) under the lock; log the decision; publish it as a retrain.decided event.

        Args:
            trigger: why this was asked: {"kind": "drift.detected", "event_id": ...} or {"kind": "manual", ...}.
            dataset: what a run would train on (None: nothing to train on).
            store: the dataset's store, to count the labels added since the last run's dataset.
            wait: start the run in the foreground and wait for it (its exit code in `decision.run`).
        """
        started: Started | None = None
        with locked(self.root / ".lock"):  # held until a start is recorded, never while a run runs
            when = (now or datetime.now(UTC)).astimezone(UTC)
            starts = self.starts()
            unusable = dataset is not None and not (dataset.path / DATA_YAML).is_file()
            new_labels = None if unusable else self._new_labels(dataset, store, starts)
            why = f"{dataset.path if dataset else ''} has no {DATA_YAML} naming its classes: the pipeline cannot ingest it as YOLO"
            refusals = decide(self.policy, starts, when, new_labels, **({"no_dataset": why} if unusable else {}))
            decision_id = f"{when:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
            about = None if dataset is None else {**dataset.to_json(), "new_labels": new_labels}
            decision = Decision(decision_id, when, Rule.START, "", trigger, about, self.policy, refusals)
            if refusals:
                decision = replace(decision, rule=refusals[0][0], reason=refusals[0][1])
            else:
                assert dataset is not None  # rule 4
                decision, started = self._start(decision, dataset, starts, wait)
            self.log.append(decision.to_json())
        report = self.publisher.publish([new_event(EventType.RETRAIN_DECIDED, _event_detail(decision))])
        if started is not None and wait and decision.run is not None:
            decision = replace(decision, run=replace(decision.run, exit_code=started.wait()))
        return decision, report

    def _new_labels(self, dataset: DatasetVersion | None, store: DatasetStore | None, starts: Sequence[Start]) -> int | None:
        if dataset is None:
            return None
        last = str(starts[-1].dataset.get("fingerprint", "")) if starts else None
        if last == dataset.fingerprint:
            return 0
        return store.added_since(dataset, last) if store is not None and dataset.number is not None else dataset.added

    def _start(self, decision: Decision, dataset: DatasetVersion, starts: list[Start], wait: bool) -> tuple[Decision, Started | None]:
        params = {"dataset": str(dataset.path), "format": "yolo", **self.params}
        command = [sys.executable, "-m", "skyops", "run", self.pipeline, *(arg for k, v in params.items() for arg in ("-p", f"{k}={v}"))]
        log = self.root / "runs" / f"{decision.id}.log"
        reason = f"policy allows it: training {self.pipeline!r} on {dataset.label} ({dataset.images} images)"
        try:
            # Record the start before the run can begin: a crash after Popen must not let the next alert start another.
            self._save([*starts, Start(decision.time, decision.id, decision.dataset or {})])
            started = self.launcher(RunRequest(command, self.settings.project_dir, log, environment_for_runs(self.settings), wait))
        except OSError as e:
            self._save(starts)
            why = f"the run could not be started: {e.strerror or e}"
            return replace(decision, rule=Rule.LAUNCH_FAILED, reason=why, refusals=[(Rule.LAUNCH_FAILED, why)]), None
        return replace(decision, reason=reason, run=Launched(command, started.pid, str(log))), started

    def _save(self, starts: Sequence[Start]) -> None:
        kept = [{"time": format_time(s.time), "decision": s.decision, "dataset": dict(s.dataset)} for s in starts[-KEEP_STARTS:]]
        write_json_atomic(self.root / STATE_FILE, {"format": 1, "starts": kept}, sort_keys=False)

    def decisions(self) -> list[dict[str, Any]]:
        """Every logged decision, oldest first."""
        return [data for _, data in self.log.read()]


def _is_time(value: Any) -> bool:
    try:
        parse_time(value)
    except (TypeError, ValueError):
        return False
    return True


def _event_detail(decision: Decision) -> dict[str, Any]:
    data = decision.to_json()
    return {k: data[k] for k in ("decision", "rule", "reason", "reasons", "trigger", "dataset", "run")} | {"decision_id": decision.id}


def environment_for_runs(settings: Settings) -> dict[str, str]:
    """The environment a started run gets: this one, with the state and project folders pinned."""
    return {**os.environ, "SKYOPS_STATE_DIR": str(settings.state_dir), "SKYOPS_PROJECT_DIR": str(settings.project_dir)}
