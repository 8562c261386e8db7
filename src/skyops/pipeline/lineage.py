"""Run records: which steps ran, on what inputs, producing what, by whom, how long.

One JSON file per run (`<state>/runs/<run_id>/run.json`), rewritten atomically as steps finish, so
any model can be traced back to the exact data, config and code that made it.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from skyops.errors import SkyopsError
from skyops.pipeline.hashing import write_json_atomic

RUN_FILE = "run.json"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    CACHED = "cached"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # an upstream step failed
    GATED = "gated"  # a quality gate before it did not pass

    @property
    def finished(self) -> bool:
        return self in (StepStatus.CACHED, StepStatus.DONE)


@dataclass
class StepRecord:
    """What one step did in one run."""

    name: str
    step_type: str
    status: StepStatus = StepStatus.PENDING
    cache_key: str = ""
    cache_reason: str = ""  # the should_run rule that decided
    miss_reasons: list[str] = field(default_factory=list)  # which key parts changed
    config: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)  # port -> {source, path, digest}
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # port -> {path, digest, files}
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    log: str = ""
    progress: str = ""  # the step's progress file: one JSON line per report_progress call, if it makes any
    error: str = ""  # why the framework failed the step (missing input, bad env), if it did
    command: str = ""  # the equivalent `python -m ...` line

    @property
    def seconds(self) -> float | None:
        return None if self.started is None or self.ended is None else self.ended - self.started


@dataclass
class RunRecord:
    """Lineage of one pipeline run."""

    run_id: str
    pipeline: str
    parameters: dict[str, Any]
    user: str
    host: str
    started: float
    steps: dict[str, StepRecord]
    status: str = "running"
    ended: float | None = None
    resume_command: str = ""
    source: str = ""
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {passed, details, message}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        steps = {k: StepRecord(**{**v, "status": StepStatus(v["status"])}) for k, v in data.pop("steps").items()}
        return cls(steps=steps, **data)


def current_user() -> str:
    """The acting user: SKYOPS_USER, else the OS login name."""
    return os.environ.get("SKYOPS_USER") or getpass.getuser()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + os.urandom(3).hex()


def new_record(run_id: str, pipeline: str, parameters: dict[str, Any], steps: dict[str, str], source: str) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        pipeline=pipeline,
        parameters=parameters,
        user=current_user(),
        host=socket.gethostname(),
        started=time.time(),
        steps={name: StepRecord(name=name, step_type=step_type) for name, step_type in steps.items()},
        source=source,
    )


def save_record(runs_dir: Path, record: RunRecord) -> Path:
    path = runs_dir / record.run_id / RUN_FILE
    write_json_atomic(path, record.to_json())
    return path


def list_records(runs_dir: Path) -> list[RunRecord]:
    """Every readable run record, newest first."""
    records = []
    if runs_dir.is_dir():
        for path in runs_dir.glob(f"*/{RUN_FILE}"):
            try:
                records.append(RunRecord.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # a foreign or damaged file is not a run; `runs show` on it says so
    return sorted(records, key=lambda r: r.started, reverse=True)


def load_record(runs_dir: Path, run_id: str) -> RunRecord:
    """A run by id, unique id prefix, or 'latest'."""
    records = list_records(runs_dir)
    if run_id == "latest" and records:
        return records[0]
    matches = [r for r in records if r.run_id.startswith(run_id)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise SkyopsError(f"no run {run_id!r} in {runs_dir}", hint="`skyops runs list` shows the runs")
    raise SkyopsError(
        f"run id prefix {run_id!r} matches {len(matches)} runs: {', '.join(r.run_id for r in matches[:5])}",
        hint="give more characters of the id",
    )
