"""The read-only front of `skyops ui`: what may reach MLflow's server, and the forwarding (ADR 0012).

MLflow's UI can change the registry (aliases, the approval status tag, stages, deletions) with no
role check and no audit record. So the user's port is served by `ReadOnlyProxy`, an ASGI app in
front of MLflow's server (which listens on a private Unix socket, see `ui_server`). It forwards
only reads, an allow-list:

1. GET and HEAD, on any path: MLflow's REST API, its UI pages and artifact downloads. Every route
   of MLflow 3.17 that changes state takes POST, PUT, PATCH or DELETE (tested against its route
   table), as HTTP's safe methods should.
2. POST on the endpoints in `READ_POSTS` only: the searches the UI sends as POST (runs, experiments,
   logged models, traces, ...) and `/graphql`, whose "mutations" are searches too (tested).

Everything else is refused with 403 and a JSON body in MLflow's error shape (the UI shows its
`message`) naming the skyops command that makes the change under governance. Request bodies of
allowed POSTs are searches, read whole; responses are streamed, so large artifacts pass through
without being held in memory.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

# ASGI's three callables' shapes (uvicorn gives plain dicts).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

API_PREFIXES = ("/ajax-api/", "/api/")  # the UI's and the REST clients' prefixes of the same endpoints
# POST endpoints that only read, after an API prefix (MLflow's route table says each takes POST: tested).
READ_POSTS = frozenset(
    {
        "2.0/mlflow/experiments/search",
        "2.0/mlflow/experiments/search-datasets",
        "2.0/mlflow/runs/search",
        "2.0/mlflow/logged-models/search",
        "2.0/mlflow/registered-models/get-latest-versions",
        "3.0/mlflow/datasets/search",
        "3.0/mlflow/issues/search",
        "3.0/mlflow/prompt-optimization/jobs/search",
        "3.0/mlflow/traces/search",
        "3.0/mlflow/traces/batchGetInfos",
        "3.0/mlflow/traces/metrics",
        "3.0/mlflow/traces/calculate-filter-correlation",
        "3.0/jobs/search",
    }
)
GRAPHQL = "/graphql"
SAFE_METHODS = frozenset({"GET", "HEAD"})
# Headers that describe one connection, not the message (RFC 9110 7.6.1): never passed on.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)


def endpoint(path: str) -> str | None:
    """`path` without its API prefix ('2.0/mlflow/runs/search'), or None when it is not an API path."""
    return next((path.removeprefix(p) for p in API_PREFIXES if path.startswith(p)), None)


def allowed(method: str, path: str) -> bool:
    """Whether a request only reads: the allow-list of the module docstring."""
    if method in SAFE_METHODS:
        return True
    return method == "POST" and (path == GRAPHQL or endpoint(path) in READ_POSTS)


@dataclass(frozen=True, kw_only=True)
class Governed:
    """What a refused call would have changed, and the skyops command that changes it under governance."""

    endpoints: frozenset[str]  # endpoint names after the version ('mlflow/registered-models/alias'); a trailing '/' is a prefix
    change: str
    use: str

    def covers(self, name: str) -> bool:
        return any(name == e or (e.endswith("/") and name.startswith(e)) for e in self.endpoints)


# First match wins: the specific registry calls before the areas they belong to.
GOVERNED = (
    Governed(
        endpoints=frozenset({"mlflow/registered-models/alias"}),
        change="a model's aliases (@champion, @previous)",
        use="skyops models promote VERSION --reason TEXT (skyops models rollback to go back)",
    ),
    Governed(
        endpoints=frozenset(
            {
                "mlflow/model-versions/set-tag",
                "mlflow/model-versions/delete-tag",
                "mlflow/model-versions/update",
                "mlflow/model-versions/transition-stage",
            }
        ),
        change="a model version's approval status, tags or stage",
        use="skyops models approve VERSION --reason TEXT, or skyops models reject VERSION --reason TEXT",
    ),
    Governed(
        endpoints=frozenset({"mlflow/model-versions/delete", "mlflow/registered-models/delete"}),
        change="the registry's versions (deleting)",
        use="skyops models delete VERSION --reason TEXT",
    ),
    Governed(
        endpoints=frozenset({"mlflow/registered-models/", "mlflow/model-versions/"}),
        change="the model registry",
        use="skyops run (its register step registers versions) and skyops models (approve, reject, promote, rollback, delete)",
    ),
)
TRACKING = Governed(endpoints=frozenset(), change="experiment tracking", use="skyops run (the pipeline tracks its runs)")


def refusal(method: str, path: str) -> dict[str, str]:
    """The 403 body for a refused request: MLflow's error shape (`error_code`, `message`) plus `use`."""
    name = (endpoint(path) or "").partition("/")[2]  # without the version: 'mlflow/registered-models/alias'
    governed = next((g for g in GOVERNED if g.covers(name)), TRACKING)
    return {
        "error_code": "PERMISSION_DENIED",
        "message": f"skyops ui is read-only: {method} {path} would change {governed.change} with no role check and no audit record. "
        f"Use: {governed.use}",
        "use": governed.use,
    }


class ReadOnlyProxy:
    """An ASGI app: allowed requests go to MLflow's server on the Unix socket `socket_path`, the rest get 403."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._client: Any = None  # an httpx.AsyncClient between lifespan startup and shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if allowed(method, path):
                await self._forward(scope, receive, send)
            else:
                await send_json(send, 403, refusal(method, path))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        import httpx  # heavy-ish: only `skyops ui` needs it

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # No read timeout: a long search or a large artifact may take its time; connecting may not.
                timeout = httpx.Timeout(None, connect=10)
                self._client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=self.socket_path), timeout=timeout)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        import httpx

        body = await read_body(receive) if scope["method"] == "POST" else b""
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = httpx.URL(scheme="http", host="mlflow", raw_path=raw_path + (b"?" + query if query else b""))
        # The Host header goes on as the browser sent it: MLflow's own check of it (DNS rebinding) still applies.
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP and k.lower() != b"content-length"]
        # A bare Request, not the client's build_request: that would add httpx's own default headers
        # (Accept-Encoding among them, inviting a compression the browser may not have asked for).
        request = httpx.Request(scope["method"], url, headers=headers, content=body)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as e:
            message = f"MLflow's server behind skyops ui did not answer ({type(e).__name__}); see the terminal running skyops ui"
            await send_json(send, 502, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": message})
            return
        try:
            headers = [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            async for chunk in response.aiter_raw():  # as MLflow sent it (compressed or not), chunk by chunk
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
