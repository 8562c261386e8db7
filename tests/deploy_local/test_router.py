"""The router as a real process on 127.0.0.1, in front of small HTTP servers in this process.

It forwards method, path, query, headers and body as they came and streams the answer back, status
included, with the upstream's label; it says 503 with no upstream and 502 for one that does not answer;
a switch sends new requests to the new upstream while a request in flight finishes on the old one, and
drain waits for it; its control socket refuses what it does not know; SIGTERM ends it with exit 0.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from skyops.deploy_local import control, procs

from .conftest import free_port


class Upstream:
    """A tiny HTTP server: answers `name`, the request's method, path, body and one header as JSON; /slow waits for `release`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.release = threading.Event()
        self.entered = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path.startswith("/slow"):
                    outer.entered.set()
                    outer.release.wait(30)
                data = json.dumps(
                    {"name": outer.name, "method": self.command, "path": self.path, "body": body.decode(), "x": self.headers.get("x-test")}
                ).encode()
                self.send_response(404 if self.path.startswith("/missing") else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def router(tmp_path: Path) -> Iterator[tuple[str, Path, procs.Proc]]:
    """(address, control socket, process) of a router started as `skyops deploy apply` starts one."""
    socket_dir = Path(tempfile.mkdtemp(prefix="skyops-router-test-"))
    socket_path = socket_dir / "control.sock"
    port = free_port()
    argv = ["-m", "skyops.serving.router", "--name", "qa", "--port", str(port), "--control", str(socket_path), "--drain-seconds", "5"]
    proc = procs.spawn(argv, log=tmp_path / "router.log", marks={}, cwd=tmp_path)
    try:
        proc = procs.wait_listening(proc, 30)
        yield f"http://127.0.0.1:{port}", socket_path, proc
    finally:
        procs.stop(proc, 10)
        assert not socket_dir.exists()  # the router removed its socket and the private folder it was given


@pytest.fixture
def upstreams() -> Iterator[tuple[Upstream, Upstream]]:
    a, b = Upstream("a"), Upstream("b")
    yield a, b
    a.close()
    b.close()


def test_with_no_upstream_the_router_says_503_no_version(router: tuple[str, Path, procs.Proc]) -> None:
    address, _, _ = router
    answer = httpx.get(f"{address}/ping")
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "5")
    assert answer.json() == {
        "error": {
            "status": 503,
            "code": "no_version",
            "message": "environment qa serves no version: `skyops deploy apply --env qa` starts one",
        }
    }


def test_requests_are_forwarded_as_they_came_and_answers_come_back_as_they_went(
    router: tuple[str, Path, procs.Proc], upstreams: tuple[Upstream, Upstream]
) -> None:
    address, socket_path, _ = router
    a, _ = upstreams
    assert control.switch(socket_path, a.port, "model v1")["previous"] is None
    answer = httpx.post(f"{address}/invocations?conf=0.3&iou=0.5", content=b"body", headers={"X-Test": "yes"})
    assert answer.status_code == 200 and answer.headers["x-skyops-upstream"] == "model v1"
    assert answer.json() == {"name": "a", "method": "POST", "path": "/invocations?conf=0.3&iou=0.5", "body": "body", "x": "yes"}
    missing = httpx.get(f"{address}/missing")
    assert missing.status_code == 404 and missing.json()["path"] == "/missing"  # an upstream's own error passes through
    status = control.status(socket_path)
    assert status["upstream"]["forwarded"] == 2 and status["upstream"]["label"] == "model v1"


def test_an_upstream_that_does_not_answer_is_502(router: tuple[str, Path, procs.Proc]) -> None:
    address, socket_path, _ = router
    closed = free_port()
    control.switch(socket_path, closed, "model v9")
    answer = httpx.get(f"{address}/ping")
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_unavailable"
    assert answer.json()["error"]["message"] == (
        f"the server of qa (model v9, port {closed}) did not answer (ConnectError): see `skyops deploy status --env qa`"
    )
    assert control.status(socket_path)["upstream"]["failed"] == 1


def test_a_switch_sends_new_requests_on_while_the_one_in_flight_finishes_and_drain_waits_for_it(
    router: tuple[str, Path, procs.Proc], upstreams: tuple[Upstream, Upstream]
) -> None:
    address, socket_path, _ = router
    a, b = upstreams
    control.switch(socket_path, a.port, "v1")
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, f"{address}/slow", timeout=60)
        assert a.entered.wait(30)
        previous = control.switch(socket_path, b.port, "v2")["previous"]
        assert (previous["port"], previous["inflight"]) == (a.port, 1)
        assert httpx.get(f"{address}/ping").json()["name"] == "b"  # new requests: the new upstream
        assert control.drain(socket_path, a.port, 0.2) == {"ok": True, "drained": False, "inflight": 1, "known": True}
        a.release.set()
        assert control.drain(socket_path, a.port, 30) == {"ok": True, "drained": True, "inflight": 0, "known": True}
        answer = slow.result(60)
    assert answer.status_code == 200 and answer.json()["name"] == "a" and answer.headers["x-skyops-upstream"] == "v1"
    assert control.status(socket_path)["retired"] == []


def test_the_control_socket_refuses_what_it_does_not_know(router: tuple[str, Path, procs.Proc], tmp_path: Path) -> None:
    _, socket_path, _ = router
    with pytest.raises(
        control.ControlError, match=r"^the router refused nope: ValueError: unknown op 'nope'; expected status, switch or drain$"
    ):
        control.call(socket_path, {"op": "nope"})
    with pytest.raises(control.ControlError, match=r"^the router's control socket .*/nothing.sock did not answer \("):
        control.status(tmp_path / "nothing.sock")


def test_sigterm_stops_the_router_with_exit_0_and_removes_its_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "c.sock"
    port = free_port()
    argv = [sys.executable, "-m", "skyops.serving.router", "--name", "qa", "--port", str(port), "--control", str(socket_path)]
    with open(tmp_path / "router.log", "wb") as log:
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
    try:
        procs.wait_listening(procs.Proc(pid=child.pid, started="", log=str(tmp_path / "router.log")), 30)
        assert socket_path.exists()
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    assert not socket_path.exists()
    events = [json.loads(line).get("event") for line in (tmp_path / "router.log").read_text().splitlines()]
    assert events[0] == "listening" and events[-1] == "stopped"
