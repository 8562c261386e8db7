"""Running the story: each step printed as the command a person would type, run, timed and summed up in a line.

A `Stage` runs `skyops ...` as a real process in the demo project (as the shell would), with the project's
own state folder and the acting person in SKYOPS_USER; a step that fails raises `DemoFailed` naming the step
and why. Whatever the demo started (its own processes, and the routers and servers a deploy started, found by
their marks) is stopped by `stop_everything`, also after Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from skyops.errors import SkyopsError

STOP_GRACE_S = 15.0  # how long a stopped process may take to exit before it is killed


class DemoFailed(SkyopsError):
    """A step of the demo did not do what the story needs; the message names the step."""

    exit_code = 1


class Interrupted(Exception):
    """SIGTERM, raised like Ctrl-C's KeyboardInterrupt so that the same cleanup runs."""


@dataclass(frozen=True)
class Row:
    """One line of the summary table."""

    step: str
    command: str
    result: str
    seconds: float


@dataclass
class Stage:
    """The demo project and what the story has done in it so far."""

    project: Path
    echo: bool = True
    rows: list[Row] = field(default_factory=list)
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.project / ".skyops"

    def env(self, user: str) -> dict[str, str]:
        """The environment of a command: the caller's, without its skyops settings, pointed at the demo project."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKYOPS_")}
        env.update(SKYOPS_PROJECT_DIR=str(self.project), SKYOPS_STATE_DIR=str(self.state_dir), SKYOPS_USER=user)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def say(self, text: str) -> None:
        if self.echo:
            print(text, flush=True)

    def announce(self, step: str, command: str) -> None:
        self.say(f"\n[{step}]\n$ {command}")

    def record(self, step: str, command: str, result: str, seconds: float) -> None:
        self.rows.append(Row(step, command, result, seconds))
        for line in result.splitlines():
            self.say(f"  {line}")

    def skyops(self, step: str, args: Sequence[str], *, user: str, shown: str = "") -> str:
        """Run `skyops ARGS` as `user`; its stdout. Exit non-zero: DemoFailed with the command's error line."""
        command = shown or f"skyops {shlex.join(args)}"
        self.announce(step, command)
        out, err, code = self.run([sys.executable, "-m", "skyops", *args], user=user)
        if code != 0:
            raise DemoFailed(f"step {step}: `{command}` exited {code}: {_last_error(err, out)}", hint=self.log_hint())
        return out

    def git(self, step: str, args: Sequence[str]) -> str:
        """Run `git ARGS` in the project; its stdout."""
        command = f"git {shlex.join(args)}"
        self.announce(step, command)
        out, err, code = self.run(["git", *args], user="")
        if code != 0:
            raise DemoFailed(f"step {step}: `{command}` exited {code}: {_last_error(err, out)}")
        return out

    def run(self, argv: Sequence[str], *, user: str) -> tuple[str, str, int]:
        """Run a command to its end in the project; (stdout, stderr, exit code). Interrupted: it is stopped first."""
        proc = subprocess.Popen(
            list(argv), cwd=self.project, env=self.env(user), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        self.started.append(proc)
        try:
            out, err = proc.communicate()
        finally:
            _stop(proc)
            self.started.remove(proc)
        return out.decode(errors="replace"), err.decode(errors="replace"), proc.returncode

    def spawn(self, argv: Sequence[str], *, user: str, log: Path) -> subprocess.Popen[bytes]:
        """Start a long-lived process of the demo (stopped by stop_everything)."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as sink:
            proc = subprocess.Popen(list(argv), cwd=self.project, env=self.env(user), stdout=sink, stderr=subprocess.STDOUT)
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> int:
        """Stop a long-lived process the way its service manager would (SIGTERM: a server drains and publishes
        its open capture file); SIGKILL after the grace period. Its exit code."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.started:
            self.started.remove(proc)
        return proc.returncode

    def log_hint(self) -> str:
        return f"the project is kept at {self.project} (its step logs: {self.state_dir / 'runs'})"

    def stop_everything(self) -> list[str]:
        """Stop every process the demo started, and every router and server of the project's deployments."""
        from skyops.deploy_local import procs

        stopped = []
        for proc in list(self.started):
            _stop(proc)
            stopped.append(f"pid {proc.pid}")
        self.started.clear()
        serving = self.state_dir / "serving"
        for environment in sorted(p.name for p in serving.glob("*") if p.is_dir()):
            for found in procs.marked(self.state_dir, environment):
                procs.stop_pid(found.pid, STOP_GRACE_S)
                stopped.append(f"{environment} pid {found.pid}")
        return stopped

    def table(self) -> list[str]:
        """The summary: step, command, result (its first line), seconds."""
        header = ("step", "command", "result", "seconds")
        cells = [
            (r.step, _clip(r.command, 64), _clip(r.result.splitlines()[0] if r.result else "", 72), f"{r.seconds:.1f}") for r in self.rows
        ]
        widths = [max(len(c[i]) for c in [header, *cells]) for i in range(4)]
        return ["  ".join(c[i].ljust(widths[i]) for i in range(4)).rstrip() for c in [header, *cells]]


@contextmanager
def timed() -> Iterator[list[float]]:
    """Yields a list that holds the elapsed seconds once the block ends."""
    box: list[float] = []
    start = time.monotonic()
    try:
        yield box
    finally:
        box.append(time.monotonic() - start)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises Interrupted (like Ctrl-C's KeyboardInterrupt) inside the block, so the cleanup runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (a Ctrl-C: skyops run stops its steps and ends its record), then SIGKILL after the grace period."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _last_error(err: str, out: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")] or err.strip().splitlines() or out.strip().splitlines()
    return lines[-1] if lines else "no output"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
