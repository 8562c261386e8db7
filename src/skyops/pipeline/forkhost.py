"""A warm process that forks one child per step request (used by `ForkLauncher`).

Protocol, one JSON object per line: requests on stdin
`{"ticket", "module", "argv", "env", "log", "cwd"}`, replies on stdout `{"ticket", "code"}` when the
child exits (code < 0 means killed by that signal, like subprocess). Single-threaded on purpose:
forking a process with threads can copy a held lock into the child.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import select
import sys


def _child(request: dict) -> None:
    """Become the step: environment, cwd, output to the log, then run the module as __main__."""
    code = 1
    try:
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
    for name in preload:
        importlib.import_module(name)
    stdin = sys.stdin.buffer
    out = sys.stdout.buffer
    children: dict[int, tuple[int, int]] = {}  # pidfd -> (pid, ticket)
    buffer = b""
    open_input = True
    while open_input or children:
        readable, _, _ = select.select(([stdin.fileno()] if open_input else []) + list(children), [], [])
        for fd in readable:
            if fd == stdin.fileno():
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    open_input = False
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
                out.write((json.dumps({"ticket": ticket, "code": code}) + "\n").encode())
                out.flush()


if __name__ == "__main__":
    serve(sys.argv[1:])
