"""The read-only proxy of `skyops ui`: its allow-list against MLflow's own route table, its refusals, and
its forwarding between real servers (uvicorn on 127.0.0.1 in front of a stand-in upstream on a Unix socket)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from skyops.cli.ui_proxy import GRAPHQL, READ_POSTS, ReadOnlyProxy, allowed, refusal

CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def mlflow_routes() -> list[tuple[str, str, str]]:
    """(method, path, handler name) of every route MLflow 3.17's server serves: its Flask app and its FastAPI routers."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's deprecated WSGI module, imported by MLflow
        from mlflow.server import app as flask_app
        from mlflow.server.fastapi_app import app as fastapi_app

    found = [(m, rule.rule, rule.endpoint) for rule in flask_app.url_map.iter_rules() for m in rule.methods or ()]

    def walk(routes: list[Any], prefix: str = "") -> None:
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI's record of an included router (the Flask app is a Mount)
                walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif hasattr(route, "methods") and hasattr(route, "path"):
                found.extend((m, prefix + route.path, route.name) for m in route.methods or ())

    walk(fastapi_app.routes)
    return found


@pytest.fixture(scope="module")
def routes() -> list[tuple[str, str, str]]:
    return mlflow_routes()


def test_every_read_post_is_a_post_route_of_mlflow_that_only_reads(routes: list[tuple[str, str, str]]) -> None:
    """Each allow-listed POST exists (a rename in MLflow would leave the UI's search broken) and its handler searches or gets."""
    posts = {path: name for method, path, name in routes if method == "POST"}
    for read in sorted(READ_POSTS):
        path = f"/ajax-api/{read}"
        assert path in posts, f"{path} is not a POST route of MLflow"
        assert any(word in posts[path].lower() for word in ("search", "get", "query", "calculate")), (path, posts[path])
    assert posts[GRAPHQL] == "_graphql"


def test_every_route_that_changes_state_is_refused(routes: list[tuple[str, str, str]]) -> None:
    """Every POST, PUT, PATCH and DELETE route of MLflow is refused, except the allow-listed reads."""
    changing = {(m, path) for m, path, _ in routes if m in CHANGING}
    let_through = sorted((m, path) for m, path in changing if allowed(m, path))
    reads = {f"/ajax-api/{r}" for r in READ_POSTS} | {f"/api/{r}" for r in READ_POSTS} | {GRAPHQL}
    assert let_through and all(m == "POST" and path in reads for m, path in let_through), let_through
    # The registry's writes, by name, are among the refused ones.
    for write in ("registered-models/alias", "model-versions/set-tag", "model-versions/transition-stage", "model-versions/delete"):
        assert not allowed("POST", f"/ajax-api/2.0/mlflow/{write}") and not allowed("DELETE", f"/api/2.0/mlflow/{write}")


def test_no_route_that_writes_takes_get(routes: list[tuple[str, str, str]]) -> None:
    """GET and HEAD pass on any path: no MLflow handler named for a change answers them."""
    verbs = (
        "_create",
        "_delete",
        "_set",
        "_update",
        "_log",
        "_restore",
        "_rename",
        "_transition",
        "_finalize",
        "_upload",
        "_link",
        "_cancel",
    )
    writers = sorted((m, path, name) for m, path, name in routes if m in {"GET", "HEAD"} and name.startswith(verbs))
    assert writers == []


def test_graphqls_mutations_are_searches() -> None:
    """POST /graphql passes because MLflow's GraphQL "mutations" only search: a real one would fail this."""
    from mlflow.server.graphql.graphql_schema_extensions import schema

    mutations = set(schema.graphql_schema.mutation_type.fields)
    assert mutations == {"mlflowSearchDatasets", "mlflowSearchRuns", "testMutation"}


@pytest.mark.parametrize(
    ("method", "path", "command"),
    [
        (
            "POST",
            "/ajax-api/2.0/mlflow/registered-models/alias",
            "skyops models promote VERSION --reason TEXT (skyops models rollback to go back)",
        ),
        (
            "DELETE",
            "/ajax-api/2.0/mlflow/registered-models/alias",
            "skyops models promote VERSION --reason TEXT (skyops models rollback to go back)",
        ),
        (
            "POST",
            "/ajax-api/2.0/mlflow/model-versions/set-tag",
            "skyops models approve VERSION --reason TEXT, or skyops models reject VERSION --reason TEXT",
        ),
        (
            "POST",
            "/api/2.0/mlflow/model-versions/transition-stage",
            "skyops models approve VERSION --reason TEXT, or skyops models reject VERSION --reason TEXT",
        ),
        (
            "DELETE",
            "/ajax-api/2.0/mlflow/model-versions/delete-tag",
            "skyops models approve VERSION --reason TEXT, or skyops models reject VERSION --reason TEXT",
        ),
        ("DELETE", "/ajax-api/2.0/mlflow/model-versions/delete", "skyops models delete VERSION --reason TEXT"),
        (
            "POST",
            "/ajax-api/2.0/mlflow/registered-models/create",
            "skyops run (its register step registers versions) and skyops models (approve, reject, promote, rollback, delete)",
        ),
        ("POST", "/ajax-api/2.0/mlflow/runs/delete", "skyops run (the pipeline tracks its runs)"),
        ("PUT", "/ajax-api/2.0/mlflow-artifacts/artifacts/0/x/artifacts/a.txt", "skyops run (the pipeline tracks its runs)"),
    ],
)
def test_a_refusal_names_the_skyops_command_that_makes_the_change(method: str, path: str, command: str) -> None:
    assert not allowed(method, path)
    body = refusal(method, path)
    assert body["error_code"] == "PERMISSION_DENIED" and body["use"] == command
    assert body["message"].startswith(f"skyops ui is read-only: {method} {path} would change ")
    assert body["message"].endswith(f"with no role check and no audit record. Use: {command}")


# --- forwarding, between real servers ------------------------------------------------------------

BIG = bytes(range(256)) * 32 * 1024  # 8 MiB, sent by the upstream in 64 KiB chunks without a Content-Length


class Upstream:
    """A stand-in for MLflow's server: records each request; /big streams BIG; anything else echoes the request."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = {
            "method": scope["method"],
            "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(),
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            "body": body.decode(),
        }
        self.seen.append(request)
        if scope["path"] == "/big":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
            for start in range(0, len(BIG), 64 * 1024):
                await send({"type": "http.response.body", "body": BIG[start : start + 64 * 1024], "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return
        data = json.dumps(request).encode()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"x-upstream", b"yes")]}
        )
        await send({"type": "http.response.body", "body": data})


def serve_in_thread(
    app: Any, *, lifespan: str, listener: socket.socket | None = None, uds: str | None = None
) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan, uds=uds))
    # Off the main thread uvicorn installs no signal handlers.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener] if listener else None}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    assert server.started
    return server, thread


@pytest.fixture
def upstream_socket(tmp_path: Path) -> Path:
    return tmp_path / "mlflow.sock"


@pytest.fixture
def upstream(upstream_socket: Path) -> Iterator[Upstream]:
    app = Upstream()
    server, thread = serve_in_thread(app, lifespan="off", uds=str(upstream_socket))
    yield app
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def proxy_url(upstream_socket: Path) -> Iterator[str]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        server, thread = serve_in_thread(ReadOnlyProxy(str(upstream_socket)), lifespan="on", listener=listener)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        server.should_exit = True
        thread.join(10)


def test_a_read_reaches_the_upstream_as_sent(upstream: Upstream, proxy_url: str) -> None:
    response = httpx.get(f"{proxy_url}/ajax-api/2.0/mlflow/runs/get%20x?run_id=a%2Fb&x=1", headers={"Connection": "keep-alive"})
    assert response.status_code == 200 and response.headers["x-upstream"] == "yes"
    seen = response.json()
    assert (seen["method"], seen["raw_path"], seen["query"]) == ("GET", "/ajax-api/2.0/mlflow/runs/get%20x", "run_id=a%2Fb&x=1")
    assert seen["headers"]["host"] == proxy_url.removeprefix("http://")  # MLflow checks the Host the browser sent
    assert "connection" not in seen["headers"]  # hop-by-hop: this connection's business, not the upstream's


def test_an_allowed_search_post_arrives_whole(upstream: Upstream, proxy_url: str) -> None:
    search = {"experiment_ids": ["1"], "filter": "metrics.map50 > 0.5", "max_results": 100, "pad": "x" * 200_000}
    response = httpx.post(f"{proxy_url}/ajax-api/2.0/mlflow/runs/search", json=search)
    assert response.status_code == 200
    assert json.loads(response.json()["body"]) == search


def test_a_large_response_streams_through_unchanged(upstream: Upstream, proxy_url: str) -> None:
    with httpx.stream("GET", f"{proxy_url}/big") as response:
        chunks = list(response.iter_raw())
    assert response.status_code == 200 and response.headers["transfer-encoding"] == "chunked"
    assert b"".join(chunks) == BIG


def test_a_refused_write_never_reaches_the_upstream(upstream: Upstream, proxy_url: str) -> None:
    alias = {"name": "drone-detector", "alias": "champion", "version": "2"}
    response = httpx.post(f"{proxy_url}/ajax-api/2.0/mlflow/registered-models/alias", json=alias)
    tag = httpx.request("PATCH", f"{proxy_url}/ajax-api/2.0/mlflow/model-versions/update", json={"name": "m", "version": "1"})
    assert (response.status_code, tag.status_code) == (403, 403)
    assert response.json() == refusal("POST", "/ajax-api/2.0/mlflow/registered-models/alias")
    assert upstream.seen == []


def test_an_upstream_that_is_gone_is_a_502_in_mlflows_error_shape(upstream_socket: Path, proxy_url: str) -> None:
    response = httpx.get(f"{proxy_url}/ajax-api/2.0/mlflow/experiments/search")
    assert response.status_code == 502
    assert response.json() == {
        "error_code": "TEMPORARILY_UNAVAILABLE",
        "message": "MLflow's server behind skyops ui did not answer (ConnectError); see the terminal running skyops ui",
    }


def test_the_proxy_refuses_without_an_upstream_at_all() -> None:
    """The refusal is decided before any connection: the app, called directly, answers 403 with no upstream."""
    sent: list[dict[str, Any]] = []

    async def call() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "DELETE", "path": "/ajax-api/2.0/mlflow/registered-models/delete", "headers": []}
        await ReadOnlyProxy("/nonexistent/mlflow.sock")(scope, receive, send)

    asyncio.run(call())
    assert sent[0]["status"] == 403
    assert json.loads(sent[1]["body"])["use"] == "skyops models delete VERSION --reason TEXT"
