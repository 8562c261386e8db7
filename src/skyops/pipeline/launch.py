"""How the local engine starts a step's process.

`SubprocessLauncher` runs `python -m <module>` exactly as a SageMaker container would.
`ForkLauncher` (Linux, the default) keeps one small host process that has already imported the
framework and forks a child per step, which then runs the module the same way (`runpy`, as
`python -m` does). It saves the interpreter start-up and framework imports on every step: the
whole framework cost of a trivial step drops below that of a bare `python -c`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import IO, Protocol


class Launcher(Protocol):
    def launch(self, module: str, argv: tuple[str, ...], env: dict[str, str], log: IO[bytes]) -> int:
        """Run `python -m module argv` with exactly `env`, output to `log`; return its exit code."""
        ...

    def close(self) -> None: ...


class SubprocessLauncher:
    """A fresh interpreter per step: portable, and what a container does."""

    def launch(self, module: str, argv: tuple[str, ...], env: dict[str, str], log: IO[bytes]) -> int:
        proc = subprocess.run(
            [sys.executable, "-m", module, *argv], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
        )
        return proc.returncode

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
    """

    def __init__(self, preload: tuple[str, ...] = ("skyops.pipeline.runtime",), *, start: bool = True) -> None:
        self.preload = preload
        self._lock = threading.Lock()
        self._waiters: dict[int, threading.Event] = {}
        self._codes: dict[int, int] = {}
        self._next = 0
        self._proc: subprocess.Popen[bytes] | None = None
        if start:
            with self._lock:
                self._host()

    def _host(self) -> subprocess.Popen[bytes]:
        """The host process, started on first use (caller holds the lock)."""
        if self._proc is None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "skyops.pipeline.forkhost", *self.preload], stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            threading.Thread(target=self._read, args=(self._proc,), daemon=True).start()
        return self._proc

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            message = json.loads(line)
            ticket, code = message["ticket"], message["code"]
            with self._lock:
                self._codes[ticket] = code
                event = self._waiters.pop(ticket, None)
            if event:
                event.set()
        with self._lock:  # the host died: fail everything still waiting
            for ticket, event in self._waiters.items():
                self._codes[ticket] = 255
                event.set()
            self._waiters.clear()

    def launch(self, module: str, argv: tuple[str, ...], env: dict[str, str], log: IO[bytes]) -> int:
        event = threading.Event()
        with self._lock:
            ticket = self._next
            self._next += 1
            self._waiters[ticket] = event
            request = {"ticket": ticket, "module": module, "argv": list(argv), "env": env, "log": log.name, "cwd": os.getcwd()}
            host = self._host()
            assert host.stdin is not None
            try:
                host.stdin.write((json.dumps(request) + "\n").encode())
                host.stdin.flush()
            except BrokenPipeError:
                self._waiters.pop(ticket)
                return 255
        event.wait()
        with self._lock:
            return self._codes.pop(ticket)

    def close(self) -> None:
        with self._lock:
            proc, used = self._proc, self._next > 0
        if proc is None:  # never started: nothing to stop
            return
        if not used:
            proc.kill()  # booted for nothing: no need to wait for it to finish booting
        if proc.stdin:
            proc.stdin.close()  # the host finishes its children, then exits
        proc.wait()


def default_launcher(preload: tuple[str, ...] = (), *, start: bool = True) -> Launcher:
    """Fork where it is available (Linux, pidfd), a fresh interpreter elsewhere or when
    SKYOPS_LAUNCHER=subprocess. `start=False` defers the fork host's boot to the first launch."""
    if os.environ.get("SKYOPS_LAUNCHER") == "subprocess" or not hasattr(os, "pidfd_open"):
        return SubprocessLauncher()
    return ForkLauncher(("skyops.pipeline.runtime", *preload), start=start)
