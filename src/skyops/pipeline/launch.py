"""How the local engine starts a step's process.

`SubprocessLauncher` runs `python -m <module>` exactly as a SageMaker container would.
`ForkLauncher` (Linux, the default) keeps one small host process that has already imported the
framework and forks a child per step, which then runs the module the same way (`runpy`, as
`python -m` does). It saves the interpreter start-up and framework imports on every step: the
whole framework cost of a trivial step drops below that of a bare `python -c`.

`terminate()` stops every running step (SIGTERM, then SIGKILL after `STOP_GRACE_SECONDS`) and makes
later launches fail at once: a stopped run leaves no step process behind. The fork host also stops
its steps when the engine's end of its pipe closes, so even a SIGKILLed engine leaves no orphans.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Protocol

STOP_GRACE_SECONDS = 5.0  # between SIGTERM and SIGKILL when a run stops its steps
STOPPED = -signal.SIGTERM  # the exit code of a launch refused because the run is stopping


class Launcher(Protocol):
    def launch(self, module: str, argv: tuple[str, ...], env: dict[str, str], log: IO[bytes], warm: str = "") -> int:
        """Run `python -m module argv` with exactly `env`, output to `log`; return its exit code.

        `warm` names the step's warm hook ("module:function", `StepDefinition.warm`): a launcher that
        keeps a process between steps may run it there once, so that later launches start warm."""
        ...

    def terminate(self) -> None:
        """Stop every running step and refuse new ones (their launch returns `STOPPED`)."""
        ...

    def close(self) -> None: ...


class SubprocessLauncher:
    """A fresh interpreter per step: portable, and what a container does."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._terminated = False

    def launch(self, module: str, argv: tuple[str, ...], env: dict[str, str], log: IO[bytes], warm: str = "") -> int:
        with self._lock:  # a fresh interpreter per step: nothing stays warm, `warm` is not used
            if self._terminated:
                return STOPPED
            proc = subprocess.Popen(
                [sys.executable, "-m", module, *argv], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
            self._running.add(proc)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._running.discard(proc)

    def terminate(self) -> None:
        with self._lock:
            self._terminated = True
            running = list(self._running)
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()

    def close(self) -> None:
        pass


class ForkLauncher:
    """Forks steps from a warm host process (see `skyops.pipeline.forkhost`).

    The host boots when the launcher is made (`start=True`: it boots while the engine prepares the
    run, ~40 ms of interpreter and imports off the first step's path) or at the first launch, so a
    run that is likely served from the cache does not start it at all.

    Args:
        preload: modules the host imports once, before any fork (the runtime, the steps' scripts).
        start: boot the host now rather than at the first launch.
        warm: run each step's warm hook in the host at its first launch (see `skyops.pipeline.forkhost`):
            for a launcher kept across many runs of the same steps (`LocalEngine(keep_warm=True)`).
    """

    def __init__(self, preload: tuple[str, ...] = ("skyops.pipeline.runtime",), *, start: bool = True, warm: bool = False) -> None:
        self.preload = preload
        self.warm = warm
        self._lock = threading.Lock()
        self._waiters: dict[int, threading.Event] = {}
        self._codes: dict[int, int] = {}
        self._warm_ups: set[int] = set()
        self._next = 0
        self._terminated = False
        self._proc: subprocess.Popen[bytes] | None = None
        if start:
            with self._lock:
                self._host()

    def _host(self) -> subprocess.Popen[bytes]:
        """The host process, started on first use (caller holds the lock)."""
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "skyops.pipeline.forkhost", *(("--warm",) if self.warm else ()), *self.preload],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            threading.Thread(target=self._read, args=(self._proc,), daemon=True).start()
        return self._proc

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            message = json.loads(line)
            ticket, code = message["ticket"], message["code"]
            with self._lock:
                if ticket in self._warm_ups:  # nobody waits for a warm-up; a failed one is noted in its step's log
                    self._warm_ups.discard(ticket)
                    continue
                self._codes[ticket] = code
                event = self._waiters.pop(ticket, None)
            if event:
                event.set()
        with self._lock:  # the host died: fail everything still waiting
            for ticket, event in self._waiters.items():
                self._codes[ticket] = 255
                event.set()
            self._waiters.clear()

    def launch(self, module: str, argv: tuple[str, ...], env: dict[str, str], log: IO[bytes], warm: str = "") -> int:
        event = threading.Event()
        with self._lock:
            if self._terminated:
                return STOPPED
            ticket = self._next
            self._next += 1
            self._waiters[ticket] = event
            request = {
                "ticket": ticket,
                "module": module,
                "argv": list(argv),
                "env": env,
                "log": log.name,
                "cwd": os.getcwd(),
                "warm": warm,
            }
            if not self._send(request):
                self._waiters.pop(ticket)
                return 255
        event.wait()
        with self._lock:
            return self._codes.pop(ticket)

    def warm_up(self, hook: str, env: dict[str, str]) -> None:
        """Have the host run a step's warm hook now, under `env`, without waiting: the step's first launch
        then finds it done (or waits in line behind it). Its output is dropped; a failure is noted in the
        log of the step's first launch."""
        with self._lock:
            if self._terminated or not self.warm:
                return
            ticket = self._next
            self._next += 1
            self._warm_ups.add(ticket)
            request = {"ticket": ticket, "module": "", "argv": [], "env": env, "log": os.devnull, "cwd": os.getcwd(), "warm": hook}
            if not self._send(request):
                self._warm_ups.discard(ticket)  # the host is gone: the step's launch reports it

    def _send(self, request: dict[str, object]) -> bool:
        """One request to the host, started if need be (the caller holds the lock); False when the host is gone."""
        host = self._host()
        assert host.stdin is not None
        try:
            host.stdin.write((json.dumps(request) + "\n").encode())
            host.stdin.flush()
        except BrokenPipeError:
            return False
        return True

    def terminate(self) -> None:
        with self._lock:
            self._terminated = True
            proc = self._proc
            if proc is not None and proc.stdin and not proc.stdin.closed:
                proc.stdin.close()  # the host stops its steps; their codes arrive as usual

    def close(self) -> None:
        with self._lock:
            proc = self._proc
            if proc is None:  # never started: nothing to stop
                return
            if not self._waiters:
                # No step running: nothing to wait for, even if the host is still booting or running a warm
                # hook (a study stopped during its warm-up returns at once, not ~15 s later).
                proc.kill()
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()  # the host finishes its children, then exits
        proc.wait()


def default_launcher(preload: tuple[str, ...] = (), *, start: bool = True, warm: bool = False) -> Launcher:
    """Fork where it is available (Linux, pidfd), a fresh interpreter elsewhere or when
    SKYOPS_LAUNCHER=subprocess. `start=False` defers the fork host's boot to the first launch; `warm`
    runs the steps' warm hooks in the host (`ForkLauncher`)."""
    if os.environ.get("SKYOPS_LAUNCHER") == "subprocess" or not hasattr(os, "pidfd_open"):
        return SubprocessLauncher()
    return ForkLauncher(("skyops.pipeline.runtime", *preload), start=start, warm=warm)
