"""Run records: which steps ran, on what inputs, producing what, by whom, how long.

One JSON file per run (`<state>/runs/<run_id>/run.json`), rewritten atomically as steps change
status, so any model can be traced back to the exact data, config and code that made it.

A record names the engine process that writes it (host, pid and the pid's start time). An engine
that is stopped ends its record "killed" or "failed" itself; one that cannot (SIGKILL, power loss)
leaves it "running", and reading it later on the same host finds the process gone and marks it
"killed" (written back, so every reader agrees).

Statuses are enums (`RunStatus`, `StepStatus`) and gate verdicts `GateResult`s in memory; run.json
holds their plain JSON values, and records written before either was typed read back the same.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from skyops.errors import SkyopsError
from skyops.pipeline.gates import GateResult
from skyops.pipeline.hashing import write_json_atomic

RUN_FILE = "run.json"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every step done or cached, every gate passed
    FAILED = "failed"  # a step failed, or the engine stopped on an error
    GATED = "gated"  # no step failed, a gate did not pass
    KILLED = "killed"  # a signal stopped the engine, or it died without ending the record


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"  # for another run executing the same step (same cache key)
    CACHED = "cached"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # an upstream step failed
    GATED = "gated"  # a quality gate before it did not pass

    @property
    def finished(self) -> bool:
        """Produced its outputs (ran or reused them)."""
        return self in (StepStatus.CACHED, StepStatus.DONE)

    @property
    def final(self) -> bool:
        """Will not change again in this run."""
        return self not in (StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING)


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
    error: str = ""  # why the framework failed, skipped or gated the step, if it did
    command: str = ""  # the equivalent `python -m ...` line
    waited: float = 0.0  # seconds spent waiting for another run executing the same step

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
    steps: dict[str, StepRecord]  # in pipeline order, in memory and in run.json
    status: RunStatus = RunStatus.RUNNING
    ended: float | None = None
    resume_command: str = ""
    source: str = ""
    gates: dict[str, GateResult] = field(default_factory=dict)  # gate name -> its verdict, as each is decided
    pid: int = 0  # the engine process writing this record, on `host`
    pid_started: str = ""  # when that process started (boot id + clock ticks): tells a reused pid apart

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON data. Shallow (a deep `asdict` cost more than the file write):
        serialise it at once; the engine replaces nested values whole, never edits them in place."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["steps"] = {name: {f.name: getattr(step, f.name) for f in fields(step)} for name, step in self.steps.items()}
        data["gates"] = {name: gate.to_json() for name, gate in self.gates.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        steps = {k: StepRecord(**{**v, "status": StepStatus(v["status"])}) for k, v in data.pop("steps").items()}
        gates = {name: GateResult.from_json(gate) for name, gate in data.pop("gates", {}).items()}
        return cls(steps=steps, gates=gates, **{**data, "status": RunStatus(data.get("status", RunStatus.RUNNING))})


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
        host=host_name(),
        started=time.time(),
        steps={name: StepRecord(name=name, step_type=step_type) for name, step_type in steps.items()},
        source=source,
        pid=os.getpid(),
        pid_started=process_started(os.getpid()),
    )


def host_name() -> str:
    """This machine's name: what `socket.gethostname()` returns on POSIX, without importing `socket` at every start."""
    return os.uname().nodename


def process_started(pid: int) -> str:
    """When process `pid` started, as '<boot id>:<clock ticks since boot>'; '' where /proc cannot say.

    A pid alone is not an identity: after a restart (of a container, say) a new process may get it.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"  # field 22, counted after the parenthesised name


def engine_gone(record: RunRecord) -> bool:
    """True if the record says "running" but its engine process, on this host, no longer exists."""
    if record.status is not RunStatus.RUNNING or not record.pid or record.host != host_name():
        return False  # finished, or written elsewhere: another host's processes are not ours to judge
    if not pid_exists(record.pid):
        return True
    return bool(record.pid_started) and process_started(record.pid) not in ("", record.pid_started)


def pid_exists(pid: int) -> bool:
    """True if a process with this pid exists on this host (whoever owns it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def end_unfinished(record: RunRecord, status: RunStatus, why: str) -> None:
    """End a run that stopped early: steps that ran or waited failed, pending ones skipped, both saying why."""
    record.status = status
    for step in record.steps.values():
        if step.status in (StepStatus.RUNNING, StepStatus.WAITING):
            step.status, step.error = StepStatus.FAILED, step.error or why
        elif step.status is StepStatus.PENDING:
            step.status, step.error = StepStatus.SKIPPED, why


def save_record(runs_dir: Path, record: RunRecord) -> Path:
    path = runs_dir / record.run_id / RUN_FILE
    write_json_atomic(path, record.to_json(), sort_keys=False)  # steps stay in pipeline order
    return path


def list_records(runs_dir: Path) -> list[RunRecord]:
    """Every readable run record, newest first; a stale "running" one is marked "killed" first."""
    records = []
    if runs_dir.is_dir():
        for path in runs_dir.glob(f"*/{RUN_FILE}"):
            try:
                records.append(RunRecord.from_json(json.loads(path.read_text())))
            except (OSError, ValueError, TypeError, KeyError):
                continue  # a foreign or damaged file is not a run; `runs show` on it says so
    _end_stale(runs_dir, records)
    return sorted(records, key=lambda r: r.started, reverse=True)


def _end_stale(runs_dir: Path, records: Iterable[RunRecord]) -> None:
    for record in records:
        if engine_gone(record):
            end_unfinished(record, RunStatus.KILLED, f"the engine (pid {record.pid} on {record.host}) stopped without ending the run")
            with contextlib.suppress(OSError):  # a read-only state folder: this reader still says "killed"
                save_record(runs_dir, record)


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
