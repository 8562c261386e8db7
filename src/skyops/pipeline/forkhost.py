"""A warm process that forks one child per step request (used by `ForkLauncher`).

Protocol, one JSON object per line: requests on stdin
`{"ticket", "module", "argv", "env", "log", "cwd"}`, replies on stdout `{"ticket", "code"}` when the
child exits (code < 0 means killed by that signal, like subprocess). Single-threaded on purpose:
forking a process with threads can copy a held lock into the child.

When stdin closes (the engine is done, is stopping its run, or died), the host stops every child
still running: SIGTERM, then SIGKILL after the grace period, so no step outlives its engine. It
ignores SIGINT itself (Ctrl-C reaches the whole terminal group; the engine decides what stops).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import select
import signal
import sys
import time

STOP_GRACE_SECONDS = 5.0  # the same as launch.STOP_GRACE_SECONDS; not imported, to keep the host small


def _child(request: dict) -> None:
    """Become the step: environment, cwd, output to the log, then run the module as __main__."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a step reacts to Ctrl-C as under `python -m`
        fd = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [request["module"], *request["argv"]]
        sys.stdout = os.fdopen(1, "w", buffering=1)
        sys.stderr = os.fdopen(2, "w", buffering=1)
        try:
            runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve(preload: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in preload:
        importlib.import_module(name)
    stdin = sys.stdin.buffer
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (pid, ticket)
    buffer = b""
    open_input = True
    kill_at: float | None = None  # once stopping: when the SIGTERMed children get SIGKILL
    while open_input or children:
        timeout = None if kill_at is None else max(0.0, kill_at - time.monotonic())
        readable, _, _ = select.select(([stdin.fileno()] if open_input else []) + list(children), [], [], timeout)
        if kill_at is not None and time.monotonic() >= kill_at:
            _signal_all(children, signal.SIGKILL)
            kill_at = None
        for fd in readable:
            if fd == stdin.fileno():
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    open_input = False
                    if children:  # the engine is stopping (or gone) while steps run: stop them
                        _signal_all(children, signal.SIGTERM)
                        kill_at = time.monotonic() + STOP_GRACE_SECONDS
                    continue
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    request = json.loads(line)
                    pid = os.fork()
                    if pid == 0:
                        _child(request)
                    children[os.pidfd_open(pid)] = (pid, request["ticket"])
            else:
                pid, ticket = children.pop(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                code = os.waitstatus_to_exitcode(status)
                with contextlib.suppress(BrokenPipeError):  # the engine is gone: nobody to tell
                    os.write(sys.stdout.fileno(), (json.dumps({"ticket": ticket, "code": code}) + "\n").encode())


def _signal_all(children: dict[int, tuple[int, int]], sig: signal.Signals) -> None:
    for pidfd in children:
        try:
            signal.pidfd_send_signal(pidfd, sig)  # by pidfd: never a recycled pid
        except ProcessLookupError:
            continue  # exited already; its exit is read from the pidfd as usual


if __name__ == "__main__":
    serve(sys.argv[1:])
