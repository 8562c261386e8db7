"""The processes a local deployment starts: detached, marked, logged to a file, found again, stopped.

A router or a server outlives the `skyops deploy apply` that started it, so each runs in its own
session (no terminal's Ctrl-C reaches it) with its output in a log file under the state folder. Its
environment carries marks: the state folder, the environment and its role. A process is known by
its pid *and* its start time (a pid alone may be reused after it ends), and `marked()` finds every
live process of an environment by its marks, so one that a killed deploy never got to write down is
still found and stopped by the next apply: nothing a deployment starts is ever lost track of.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from skyops.pipeline.lineage import pid_exists, process_started

MARK_STATE, MARK_ENV, MARK_ROLE, MARK_VERSION = "SKYOPS_DEPLOY_STATE", "SKYOPS_DEPLOY_ENV", "SKYOPS_DEPLOY_ROLE", "SKYOPS_DEPLOY_VERSION"
ROUTER, SERVER = "router", "server"
POLL_S = 0.05


@dataclass(frozen=True, kw_only=True)
class Proc:
    """A process a deployment started: its pid, start time (lineage.process_started), port and log file."""

    pid: int
    started: str
    log: str
    port: int = 0  # 0 until its "listening" line says

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Proc:
        return cls(pid=int(value["pid"]), started=str(value["started"]), log=str(value["log"]), port=int(value.get("port", 0)))


@dataclass(frozen=True)
class Marked:
    """A live process found by its marks."""

    pid: int
    role: str
    version: str


class StartFailed(Exception):
    """A process ended, or did not say it listens, in time; `tail` holds its last log lines."""

    def __init__(self, message: str, tail: Sequence[str]) -> None:
        super().__init__(message)
        self.tail = list(tail)

    def reason(self) -> str:
        """The last error the process logged (its own one-line message), else the last line of its log."""
        for line in reversed(self.tail):
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(line)
                if record.get("level") == "error" or record.get("event") == "error":
                    return str(record.get("error") or record.get("message"))
            if line.startswith("error:"):
                return line.removeprefix("error:").strip()
        return self.tail[-1].strip() if self.tail else str(self)


def spawn(argv: Sequence[str], *, log: Path, marks: Mapping[str, str], cwd: Path) -> Proc:
    """Start `python ARGV` detached (its own session, stdin closed, stdout and stderr to `log`), with `marks` in its environment."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **marks},
            start_new_session=True,
        )
    child.returncode = 0  # the deployer never waits for it: keep Popen's finaliser from warning that it still runs
    return Proc(pid=child.pid, started=process_started(child.pid), log=str(log))


def marks(state_dir: Path, environment: str, role: str, version: str = "") -> dict[str, str]:
    return {MARK_STATE: str(state_dir.resolve()), MARK_ENV: environment, MARK_ROLE: role, MARK_VERSION: version}


def alive(proc: Proc) -> bool:
    """Whether `proc` still runs: the same pid with the same start time, and not a zombie."""
    _reap(proc.pid)
    if not pid_exists(proc.pid):
        return False
    now = process_started(proc.pid)
    if proc.started and now and now != proc.started:
        return False  # the pid was reused by another process
    try:
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return pid_exists(proc.pid)
    return state not in ("Z", "X")


def wait_listening(proc: Proc, timeout: float) -> Proc:
    """`proc` with the port of its first "listening" log line (JSON, as skyops' servers and the router log).

    Raises:
        StartFailed: the process ended first, or `timeout` seconds passed.
    """
    deadline = time.monotonic() + timeout
    offset = 0
    while True:
        with open(proc.log, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        offset += len(complete)
        for line in complete.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == "listening" and record.get("port"):
                    return Proc(pid=proc.pid, started=proc.started, log=proc.log, port=int(record["port"]))
        if not alive(proc):
            raise StartFailed(f"process {proc.pid} ended before it listened", tail(proc))
        if time.monotonic() > deadline:
            raise StartFailed(f"process {proc.pid} did not listen within {timeout:g} s", tail(proc))
        time.sleep(POLL_S)


def stop(proc: Proc, grace: float) -> bool:
    """SIGTERM `proc` (a graceful stop: requests in flight finish), SIGKILL after `grace` seconds; True when it was running."""
    if not alive(proc):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(proc):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10  # SIGKILL is not refused; this only bounds a wait for the kernel
        time.sleep(POLL_S)
    return True


def stop_pid(pid: int, grace: float) -> bool:
    """`stop` for a process found by its marks (its start time read now)."""
    return stop(Proc(pid=pid, started=process_started(pid), log=""), grace)


def marked(state_dir: Path, environment: str) -> list[Marked]:
    """Every live process of this user whose marks name `state_dir` and `environment`."""
    want = (str(state_dir.resolve()).encode(), environment.encode())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        values = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        if (values.get(MARK_STATE.encode()), values.get(MARK_ENV.encode())) != want:
            continue
        pid = int(entry.name)
        if alive(Proc(pid=pid, started="", log="")):
            found.append(Marked(pid, values.get(MARK_ROLE.encode(), b"").decode(), values.get(MARK_VERSION.encode(), b"").decode()))
    return sorted(found, key=lambda m: m.pid)


def tail(proc: Proc, lines: int = 20) -> list[str]:
    try:
        with open(proc.log, "rb") as f:
            f.seek(max(0, os.path.getsize(proc.log) - 16384))
            return f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return []


def _reap(pid: int) -> None:
    """Collect `pid`'s exit status if it is this process's child (a test runs the deployer in-process), so it is not a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
