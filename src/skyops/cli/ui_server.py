"""`skyops ui`'s two servers: MLflow's, on a private Unix socket, behind the read-only proxy on the user's port (ADR 0012).

    serve_read_only(uri, port)

1. The user's port is bound first (one clear line when it is taken), so nothing else can take it
   while MLflow starts.
2. MLflow's server runs as a child on a Unix socket in a fresh folder only this user can enter
   (mode 0700), never on a TCP port: nothing but the proxy is there to talk to it. On the
   embedded sqlite store it opens the database read-only (SQLite `mode=ro`), so even a write the
   proxy let through would fail in SQLite.
3. `ReadOnlyProxy` (ui_proxy.py) serves the port with uvicorn, in this process.

Stopping: SIGTERM or Ctrl-C stops the proxy, then MLflow's whole process group (its server runs
uvicorn as a grandchild), and removes the folder. If this process is killed outright, the kernel
sends MLflow's server SIGTERM (PR_SET_PDEATHSIG), which passes it on to its uvicorn. If MLflow's
server ends by itself, the proxy stops too, with MLflow's last lines and one error.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from skyops.errors import SkyopsError

HOST = "127.0.0.1"
READY_TIMEOUT = 300.0  # seconds for MLflow's server to answer /health (about 10 s on a busy 2-core machine)
STOP_GRACE = 10.0  # seconds MLflow's server gets to stop after SIGTERM before SIGKILL
LOG_TAIL = 20  # lines of MLflow's log shown when it stops by itself
SOCKET, LOG = "mlflow.sock", "mlflow.log"  # in the private folder
ANNOUNCE = functools.partial(print, flush=True)  # the user waits for these lines: no buffering


class UiError(SkyopsError):
    """`skyops ui` could not serve: its port, or MLflow's server behind it."""

    exit_code = 1


def serve_read_only(uri: str, port: int, *, announce: Callable[[str], None] = ANNOUNCE) -> None:
    """Serve MLflow's UI for the tracking store `uri` on 127.0.0.1:`port`, read-only, until stopped.

    Raises:
        UiError: the port cannot be bound, or MLflow's server did not start or stopped by itself.
    """
    from skyops.training.signals import Terminated, signals_raise

    listener = listen(port)
    try:
        # The folder goes after MLflow's server has stopped (finally below), the signal handlers after that.
        with signals_raise(signal.SIGTERM, signal.SIGINT), tempfile.TemporaryDirectory(prefix="skyops-ui-") as private:
            folder = Path(private)  # mode 0700: only this user can reach the socket in it
            backend_uri = _read_only_store(uri)
            announce(f"starting MLflow's server on {uri} (read-only) ...")
            mlflow = _start_mlflow(backend_uri, folder)
            try:
                _wait_ready(mlflow, folder)
                announce(f"MLflow UI (read-only) for {uri} at http://{HOST}:{port}")
                announce("changes go through skyops: skyops models approve|reject|promote|rollback|delete (role checked, audited)")
                _run_proxy(listener, folder / SOCKET, mlflow)
                if mlflow.poll() is not None:  # the proxy stopped because MLflow's server ended
                    raise _failure(mlflow, folder, f"MLflow's server stopped (exit code {mlflow.returncode})")
            finally:
                _stop(mlflow)
    except Terminated as stop:
        stop.die()  # ends this process by the same signal, as it would have without the handler
    finally:
        listener.close()


def listen(port: int, host: str = HOST) -> socket.socket:
    """The bound listening socket of the user's port, or one clear error.

    Bound before MLflow starts (not probed and released), so no other process can take the port
    in between, and the proxy is the one listening on it.
    """
    import errno

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closing socket (TIME_WAIT) is no obstacle
    # Inherited by each accepted connection. The proxy writes a response's head and body apart; with
    # Nagle's algorithm the body waits for the client's delayed ACK: ~50 ms per request, measured.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # browsers connecting while MLflow starts wait in the backlog
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            problem, hint = "the port is in use", f"stop what listens there or pick another port, e.g. --port {port % 65535 + 1}"
        else:
            problem, hint = e.strerror or str(e), "pick another port, e.g. --port 5000 (ports below 1024 need root)"
        raise UiError(f"cannot serve on {host}:{port}: {problem}", hint=hint) from None
    return sock


def _read_only_store(uri: str) -> str:
    """The URI MLflow's server opens: the sqlite file read-only, once it exists at the current schema.

    Creating or migrating the store writes, so it happens here, through skyops' own client (which
    serialises it with other skyops processes); another kind of store is passed on as it is.
    """
    from skyops.training.tracking import TrackingStore
    from skyops.training.uris import read_only_sqlite_uri, sqlite_path

    database = sqlite_path(uri)
    if database is None:
        return uri
    TrackingStore(uri).client  # noqa: B018 -- opening the client creates or migrates the store
    return read_only_sqlite_uri(database)


def _start_mlflow(backend_uri: str, folder: Path) -> subprocess.Popen[bytes]:
    from skyops.training.tracking import MLFLOW_ENV

    mlflow_server = [
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_uri,
        "--registry-store-uri",
        backend_uri,
        "--workers",
        "1",  # one web worker serves one person
        # uvicorn binds the socket instead of MLflow's --host/--port: no TCP port at all.
        "--uvicorn-opts",
        f"--uds {shlex.quote(str(folder / SOCKET))} --log-level warning",
    ]
    # No job runner: MLflow's starts queue consumers the UI never uses.
    env = {**os.environ, **MLFLOW_ENV, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (folder / LOG).open("wb")
    try:
        # cwd is the private folder: MLflow makes folders beside relative paths it is given (a `file:` sqlite URI).
        # Its own session: Ctrl-C reaches this process only, which stops MLflow's group after the proxy.
        return subprocess.Popen(
            [sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()), *mlflow_server],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


# Run as `python -c DIE_WITH_PARENT <parent pid> <python args>`: asks the kernel for SIGTERM when the
# parent dies (PR_SET_PDEATHSIG, Linux; kept across exec), then becomes `python <python args>`. Done in
# the child's own interpreter, not in a preexec_fn: this process has threads (MLflow's client), and
# code between fork and exec in a threaded process can deadlock.
DIE_WITH_PARENT = """\
import ctypes, os, signal, sys
if sys.platform == "linux":
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    if os.getppid() != int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGTERM)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


def _wait_ready(mlflow: subprocess.Popen[bytes], folder: Path) -> None:
    """Until MLflow's server answers GET /health on its socket; an error if it ends first or takes too long."""
    import httpx

    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(folder / SOCKET)), timeout=5) as client:
        while mlflow.poll() is None:
            if time.monotonic() > deadline:
                raise _failure(mlflow, folder, f"MLflow's server did not answer within {READY_TIMEOUT:.0f} s")
            try:
                if client.get(f"http://{HOST}/health").status_code == 200:
                    return
            except httpx.TransportError:  # not listening yet
                pass
            time.sleep(0.2)
    raise _failure(mlflow, folder, f"MLflow's server ended before it was ready (exit code {mlflow.returncode})")


def _run_proxy(listener: socket.socket, mlflow_socket: Path, mlflow: subprocess.Popen[bytes]) -> None:
    """Serve `ReadOnlyProxy` on `listener` until a signal arrives or MLflow's server ends."""
    import uvicorn

    from skyops.cli.ui_proxy import ReadOnlyProxy

    config = uvicorn.Config(
        ReadOnlyProxy(str(mlflow_socket)),
        lifespan="on",
        ws="none",  # MLflow's UI opens no websocket; an upgrade request is passed on as a plain request
        log_level="warning",
        access_log=False,
        server_header=False,  # MLflow's own Server and Date headers pass through
        date_header=False,
        timeout_graceful_shutdown=3,  # seconds for open requests when stopping
    )
    server = uvicorn.Server(config)

    def stop_when_mlflow_ends() -> None:
        mlflow.wait()
        server.should_exit = True  # uvicorn's main loop looks at it ten times a second

    threading.Thread(target=stop_when_mlflow_ends, name="skyops-ui-watch", daemon=True).start()
    # uvicorn handles SIGINT/SIGTERM while it serves (a graceful stop), then raises the signal again
    # for the handlers it found: `signals_raise`'s, so the stop continues as a `Terminated`.
    server.run(sockets=[listener])


def _stop(mlflow: subprocess.Popen[bytes]) -> None:
    """Stop MLflow's process group: SIGTERM, SIGKILL after `STOP_GRACE`; any straggler of the group too."""
    if mlflow.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(mlflow.pid, signal.SIGTERM)  # its session's group: the server and its uvicorn
        with contextlib.suppress(subprocess.TimeoutExpired):
            mlflow.wait(STOP_GRACE)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(mlflow.pid, signal.SIGKILL)
    mlflow.wait()


def _failure(mlflow: subprocess.Popen[bytes], folder: Path, what: str) -> UiError:
    """`what` as an error, after printing the last lines of MLflow's log (its folder goes when skyops ui ends)."""
    log = folder / LOG
    lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL:] if log.is_file() else []
    for line in lines:
        print(f"  mlflow | {line}", file=sys.stderr)
    return UiError(what, hint="MLflow's last lines are above" if lines else "MLflow's server wrote nothing")
