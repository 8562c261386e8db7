"""A warm process that forks one child per step request (used by `ForkLauncher`).

Protocol, one JSON object per line: requests on stdin
`{"ticket", "module", "argv", "env", "log", "cwd", "warm"}`, replies on stdout `{"ticket", "code"}` when
the child exits (code < 0 means killed by that signal, like subprocess). Single-threaded on purpose:
forking a process with threads can copy a held lock into the child.

Warming (`--warm`, for callers that run the same steps again and again, like `skyops tune`): a
request's `warm` names the step's hook ("module:function", see `StepDefinition.warm`). The first
request of each hook runs it in the host, under that step's environment and folder with its output to
the step's log, so every later fork of the step starts with its heavy imports done. A request with no
`module` only warms (sent ahead of the first run, so the warm-up overlaps the caller's own start-up). A hook that fails
is noted in the step's log and the step starts cold; a hook that leaves a thread running makes the
host unsafe to fork: it refuses that step and every later one (exit code `UNSAFE`) and says why in the log.

When stdin closes (the engine is done, is stopping its run, or died), the host stops every child
still running: SIGTERM, then SIGKILL after the grace period, so no step outlives its engine. It
ignores SIGINT itself (Ctrl-C reaches the whole terminal group; the engine decides what stops).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import runpy
import select
import signal
import sys
import threading
import time

STOP_GRACE_SECONDS = 5.0  # the same as launch.STOP_GRACE_SECONDS; not imported, to keep the host small
UNSAFE = 70  # the exit code of a step refused because a warm hook left the host with threads


def _child(request: dict, note: str) -> None:
    """Become the step: environment, cwd, output to the log, then run the module as __main__."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a step reacts to Ctrl-C as under `python -m`
        _output_to(request["log"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [request["module"], *request["argv"]]
        # The same stream objects, line-buffered: a handler made while warming (a library's logger) keeps
        # writing through them, now to this step's log, in order with everything else.
        for stream in (sys.stdout, sys.stderr):
            assert isinstance(stream, io.TextIOWrapper)
            stream.reconfigure(line_buffering=True)
        if note:
            print(note, file=sys.stderr)
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


def _output_to(log: str) -> None:
    """Point this process's stdout and stderr (fds 1 and 2) at a step's log."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _warm(request: dict) -> tuple[str, bool]:
    """Run the step's warm hook here, as the step would see the world; (a note for its log, whether forking is still safe)."""
    module, _, function = request["warm"].partition(":")
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_out, saved_err = os.dup(1), os.dup(2)
    note = ""
    try:
        _output_to(request["log"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        getattr(importlib.import_module(module), function)()
    except (Exception, SystemExit) as e:  # the step imports cold and meets the same problem, reported there as usual
        note = f"step host: warming {request['warm']} failed ({type(e).__name__}: {e}); the step starts cold"
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if threads:
        return f"step host: warming {request['warm']} left threads running ({', '.join(threads)}); forking is unsafe", False
    return note, True


def serve(preload: list[str], *, warm: bool = False) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in preload:
        importlib.import_module(name)
    replies = os.dup(1)  # the protocol's channel: a warm hook's output goes to the step's log, never in here
    notes: dict[str, str] = {}  # warm hook -> its note ("" when it went well)
    unsafe = ""
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
                    hook = request.get("warm", "") if warm else ""
                    if hook and hook not in notes and not unsafe:
                        notes[hook], safe = _warm(request)
                        unsafe = "" if safe else notes[hook]
                    if unsafe:
                        with open(request["log"], "a") as log:
                            print(unsafe, file=log)
                        _reply(replies, request["ticket"], UNSAFE)
                        continue
                    if not request["module"]:  # a warm-up ahead of the step's first launch: nothing to fork
                        _reply(replies, request["ticket"], 0)
                        continue
                    pid = os.fork()
                    if pid == 0:
                        os.close(replies)
                        _child(request, notes.get(hook, ""))
                    children[os.pidfd_open(pid)] = (pid, request["ticket"])
            else:
                pid, ticket = children.pop(fd)
                os.close(fd)
                _, status = os.waitpid(pid, 0)
                _reply(replies, ticket, os.waitstatus_to_exitcode(status))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # every child is reaped and told: skip tearing down what was preloaded (~2 s after a warm-up)


def _reply(fd: int, ticket: int, code: int) -> None:
    with contextlib.suppress(BrokenPipeError):  # the engine is gone: nobody to tell
        os.write(fd, (json.dumps({"ticket": ticket, "code": code}) + "\n").encode())


def _signal_all(children: dict[int, tuple[int, int]], sig: signal.Signals) -> None:
    for pidfd in children:
        try:
            signal.pidfd_send_signal(pidfd, sig)  # by pidfd: never a recycled pid
        except ProcessLookupError:
            continue  # exited already; its exit is read from the pidfd as usual


if __name__ == "__main__":
    _args = sys.argv[1:]
    serve([a for a in _args if a != "--warm"], warm="--warm" in _args)
