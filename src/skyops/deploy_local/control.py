"""Talking to a router over its control socket (the protocol: skyops.serving.router): status, switch, drain."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

TIMEOUT_S = 5.0  # a router answers status and switch at once; drain waits up to its own timeout on top


class ControlError(Exception):
    """The router did not answer, or refused the request."""


def call(path: Path | str, request: dict[str, Any], *, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """Send one request to the router's control socket at `path`; its answer.

    Raises:
        ControlError: no router listens there, it did not answer in time, or it refused the request.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps(request).encode() + b"\n")
            with sock.makefile("rb") as answer:
                line = answer.readline()
    except OSError as e:
        raise ControlError(f"the router's control socket {path} did not answer ({e.strerror or type(e).__name__})") from None
    try:
        reply = json.loads(line)
    except ValueError:
        raise ControlError(f"the router's control socket {path} answered {line[:80]!r}") from None
    if not isinstance(reply, dict) or not reply.get("ok"):
        raise ControlError(f"the router refused {request.get('op')}: {reply.get('error') if isinstance(reply, dict) else reply}")
    return reply


def status(path: Path | str) -> dict[str, Any]:
    return call(path, {"op": "status"})


def switch(path: Path | str, port: int | None, label: str) -> dict[str, Any]:
    return call(path, {"op": "switch", "port": port, "label": label})


def drain(path: Path | str, port: int, timeout: float) -> dict[str, Any]:
    return call(path, {"op": "drain", "port": port, "timeout": timeout}, timeout=timeout + TIMEOUT_S)
