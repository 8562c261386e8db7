"""The router: one long-lived process per environment that owns its stable address and forwards to the live server.

    python -m skyops.serving.router --name staging --port 8081 --control /tmp/skyops-router-x/control.sock

`skyops deploy apply` starts it (skyops.deploy_local) and tells it where the live `skyops serve`
listens; clients only ever see the router's address, so a new version takes over without any client
noticing (docs/adr/0016-local-blue-green-router.md).

Public side, 127.0.0.1:<port>: each request is read whole (at most MAX_BODY bytes, 413 beyond), sent
to the current upstream, and its answer streamed back with `X-Skyops-Upstream: <label>` added. With
no upstream yet the answer is 503 `no_version`; an upstream that does not answer gives 502
`upstream_unavailable` (the same JSON error shape as the server's own, skyops.serving.problems).

Control side, a Unix socket in a private folder (only its owner can reach it): one JSON request line,
one JSON answer line per connection.

    {"op": "status"}                               the upstream, the retired ones, requests in flight and forwarded
    {"op": "switch", "port": 40123, "label": "drone-detector v2"}   new requests go there from now on (port null: nowhere)
    {"op": "drain", "port": 40111, "timeout": 30}  wait until nothing forwarded to that retired port is in flight

Switching is atomic: a request takes the current upstream and counts itself in flight on it in one step
of the event loop (no await in between), and a switch replaces that one reference; so once a switch has
answered, no request can reach the old upstream any more, and once its in-flight count is zero, none
is waiting on it. Requests already on the old one finish there: the caller drains before it stops it.

SIGTERM stops accepting, lets requests in flight finish (at most --drain-seconds), and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from skyops.serving.logs import configure_logging

log = logging.getLogger("skyops.serving.router")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOST = "127.0.0.1"
MAX_BODY = 64 * 1024 * 1024  # bytes the router holds for one request; the server's own limit is lower (6 MB by default)
UPSTREAM_HEADER = b"x-skyops-upstream"
RETRY_NO_VERSION_S = 5
PRIVATE_PREFIX = "skyops-router-"  # the control socket's private folder, made by whoever starts the router
# Headers that describe one connection, not the message (RFC 9110 7.6.1), and the length httpx sets itself.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)


@dataclass(eq=False)
class Upstream:
    """One `skyops serve` the router forwards to, with its own connection pool and counts."""

    port: int
    label: str
    client: Any  # httpx.AsyncClient
    since: float = field(default_factory=time.time)
    inflight: int = 0
    forwarded: int = 0
    failed: int = 0  # requests it did not answer (502)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def enter(self) -> None:
        self.inflight += 1
        self.forwarded += 1
        self.idle.clear()

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()

    def view(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "label": self.label,
            "since": self.since,
            "inflight": self.inflight,
            "forwarded": self.forwarded,
            "failed": self.failed,
        }


class Router:
    """The ASGI app of the public side, and the control operations (see the module docstring)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.current: Upstream | None = None
        self.retired: dict[int, Upstream] = {}
        self.started = time.time()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._forward(scope, receive, send)

    async def control(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return self.status()
        if op == "switch":
            return self.switch(request.get("port"), str(request.get("label") or ""))
        if op == "drain":
            return await self.drain(int(request["port"]), float(request.get("timeout", 30)))
        raise ValueError(f"unknown op {op!r}; expected status, switch or drain")

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": os.getpid(),
            "started": self.started,
            "upstream": None if self.current is None else self.current.view(),
            "retired": [u.view() for u in self.retired.values()],
        }

    def switch(self, port: int | None, label: str) -> dict[str, Any]:
        """New requests go to `port` from now on (None: nowhere); the old upstream is retired, still finishing its requests."""
        import httpx

        old = self.current
        if old is not None and old.port == port:
            old.label = label or old.label
            return {"previous": old.view()}
        if port is not None:
            timeout = httpx.Timeout(None, connect=5)  # inference may queue; connecting may not take long
            client = httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=timeout)
            self.current = Upstream(port=int(port), label=label, client=client)
        else:
            self.current = None
        if old is not None:
            self.retired[old.port] = old
        log.info(
            "switched",
            extra={"fields": {"event": "switch", "from": None if old is None else old.view(), "to": port, "label": label}},
        )
        return {"previous": None if old is None else old.view()}

    async def drain(self, port: int, timeout: float) -> dict[str, Any]:
        """Wait until nothing is in flight on the retired upstream `port`, then close its connections."""
        upstream = self.retired.get(port)
        if upstream is None:
            return {"drained": True, "inflight": 0, "known": False}
        try:
            await asyncio.wait_for(upstream.idle.wait(), timeout)
        except TimeoutError:
            return {"drained": False, "inflight": upstream.inflight, "known": True}
        del self.retired[port]
        await upstream.client.aclose()
        log.info("drained", extra={"fields": {"event": "drained", "upstream": upstream.view()}})
        return {"drained": True, "inflight": 0, "known": True}

    async def close(self) -> None:
        for upstream in [*self.retired.values(), *([self.current] if self.current else [])]:
            await upstream.client.aclose()

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        import httpx

        body = await _read_body(receive, MAX_BODY)
        if body is None:
            await _send_error(send, 413, "body_too_large", f"the body is over the router's limit of {MAX_BODY} bytes", limit=MAX_BODY)
            return
        upstream = self.current  # taken and counted in one step: see the module docstring
        if upstream is None:
            message = f"environment {self.name} serves no version: `skyops deploy apply --env {self.name}` starts one"
            await _send_error(send, 503, "no_version", message, headers=[(b"retry-after", str(RETRY_NO_VERSION_S).encode())])
            return
        upstream.enter()
        try:
            raw_path = scope.get("raw_path") or scope["path"].encode()
            query = scope.get("query_string", b"")
            url = httpx.URL(scheme="http", host=HOST, port=upstream.port, raw_path=raw_path + (b"?" + query if query else b""))
            headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP and k.lower() != b"content-length"]
            request = httpx.Request(scope["method"], url, headers=headers, content=body)
            try:
                response = await upstream.client.send(request, stream=True)
            except httpx.TransportError as e:
                upstream.failed += 1
                message = (
                    f"the server of {self.name} ({upstream.label}, port {upstream.port}) did not answer ({type(e).__name__}): "
                    f"see `skyops deploy status --env {self.name}`"
                )
                log.error("upstream failed", extra={"fields": {"event": "upstream_failed", "port": upstream.port, "error": repr(e)}})
                await _send_error(send, 502, "upstream_unavailable", message)
                return
            try:
                out = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
                out.append((UPSTREAM_HEADER, upstream.label.encode()))
                await send({"type": "http.response.start", "status": response.status_code, "headers": out})
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                await response.aclose()
        finally:
            upstream.leave()


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_error(
    send: Send, status: int, code: str, message: str, *, limit: int | None = None, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    error: dict[str, Any] = {"status": status, "code": code, "message": message}
    if limit is not None:
        error["limit"] = limit
    data = json.dumps({"error": error}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": data, "more_body": False})


async def _serve_control(router: Router, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One control request: a JSON line in, a JSON line out ({"ok": false, "error": ...} when it fails)."""
    try:
        request = json.loads(await reader.readline())
        answer = {"ok": True, **await router.control(request)}
    except Exception as e:  # a bad control request is the caller's bug: it gets the reason, the router goes on
        answer = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    writer.write(json.dumps(answer).encode() + b"\n")
    try:
        await writer.drain()
    finally:
        writer.close()


def listen(host: str, port: int) -> socket.socket:
    """The bound public socket; OSError with a readable strerror when it cannot be bound."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # The router writes an answer's head and body apart; with Nagle's algorithm the body would wait for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def run(name: str, public: socket.socket, control: Path, drain_seconds: float) -> None:
    """Serve on the bound socket `public` until SIGTERM (see the module docstring).

    Raises:
        OSError: the control socket cannot be made.
    """
    import uvicorn

    port = public.getsockname()[1]
    router = Router(name)
    config = uvicorn.Config(
        router,
        log_config=None,
        access_log=False,  # the servers behind log every request, with its id
        server_header=False,  # the server's own Date and Server headers pass through
        date_header=False,
        http="h11",
        loop="asyncio",
        lifespan="off",
        timeout_graceful_shutdown=math.ceil(drain_seconds),
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        control.unlink(missing_ok=True)
        side = await asyncio.start_unix_server(lambda r, w: _serve_control(router, r, w), path=str(control))
        os.chmod(control, 0o600)
        fields = {"event": "listening", "name": name, "host": HOST, "port": port, "control": str(control), "pid": os.getpid()}
        log.info("listening", extra={"fields": fields})
        try:
            await server.serve(sockets=[public])
        finally:
            side.close()
            await side.wait_closed()
            await router.close()
            control.unlink(missing_ok=True)
            if control.parent.name.startswith(PRIVATE_PREFIX):  # the private folder skyops.deploy_local made for it
                with contextlib.suppress(OSError):
                    control.parent.rmdir()

    previous = signal.signal(signal.SIGTERM, _drained)  # uvicorn re-raises SIGTERM into this after its graceful shutdown
    try:
        asyncio.run(main())
    finally:
        signal.signal(signal.SIGTERM, previous)
    log.info("stopped", extra={"fields": {"event": "stopped"}})


def _drained(signum: int, frame: FrameType | None) -> None:
    """The shutdown is done: the exit is a clean 0."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skyops.serving.router", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the environment, for messages")
    parser.add_argument("--port", type=int, required=True, help="the public port on 127.0.0.1")
    parser.add_argument("--control", type=Path, required=True, help="the control socket's path")
    parser.add_argument("--drain-seconds", type=float, default=30.0, help="on SIGTERM, how long requests in flight may take")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        public = listen(HOST, args.port)
    except OSError as e:
        reason = {errno.EADDRINUSE: "the port is in use", errno.EACCES: "the port needs privileges"}.get(e.errno or 0, e.strerror or str(e))
        return _fail(f"cannot listen on {HOST}:{args.port}: {reason}")
    try:
        run(args.name, public, args.control, args.drain_seconds)
    except OSError as e:
        return _fail(f"cannot make the control socket {args.control}: {e.strerror or e}")
    return 0


def _fail(message: str) -> int:
    """Log the one line the deployer reads back from the log, and the exit code 2."""
    log.error(message, extra={"fields": {"event": "error", "error": message}})
    return 2


if __name__ == "__main__":
    sys.exit(main())
