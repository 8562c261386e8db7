"""The HTTP application: SageMaker's inference container contract, plus metrics.

    GET  /ping          200 once the model is loaded and warm; 503 (Retry-After) while it loads
    POST /invocations   detections for one image or a small batch (skyops.serving.images has the content types)
    GET  /metrics       Prometheus text format (skyops.serving.metrics)

Each invocation gets a request id (the caller's X-Amzn-RequestId when it is a sane token, else a new
UUID), echoed in the response header and body and in its one JSON log line (id, status, latency,
size, backend, images, detections, error code). A refused request gets a `RequestError` body
(skyops.serving.problems) with its 4xx status; 429 and 503 carry Retry-After. A 500 means a bug:
its traceback goes to the log, the client gets the request id to find it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from skyops.serving.capture_writer import CaptureEvent, CaptureWriter
from skyops.serving.images import JSON, Limits, media_type
from skyops.serving.inference import Predictor
from skyops.serving.metrics import CONTENT_TYPE, ServerMetrics
from skyops.serving.model import BackendName, ModelInfo
from skyops.serving.params import CUSTOM_ATTRIBUTES, parse_params
from skyops.serving.problems import RequestError

log = logging.getLogger("skyops.serving")

REQUEST_ID = "X-Amzn-RequestId"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # anything else (log injection, megabytes) is replaced
RETRY_LOADING_S = 2
RETRY_BUSY_S = 1
DRAIN_FACTOR = 4  # an over-limit body up to this many times the limit is read and dropped, so the client sees the 413


@dataclass
class AppState:
    """What the routes share. `predictor` is None until the loader thread has loaded and warmed the model."""

    info: ModelInfo
    backend: BackendName
    limits: Limits
    metrics: ServerMetrics
    capture: CaptureWriter | None
    load: Callable[[], Predictor]  # runs in a thread at startup
    on_load_failure: Callable[[BaseException], None]
    predictor: Predictor | None = None


def create_app(state: AppState) -> FastAPI:
    """The FastAPI app of one server; the model loads in the background once it starts (see AppState)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if state.capture is not None:
            state.capture.start()
        loader = threading.Thread(target=_load, args=(state,), name="skyops-load", daemon=True)
        loader.start()
        yield
        # Shutdown: uvicorn has stopped accepting and waited for the in-flight requests.
        if state.predictor is not None:
            state.predictor.close()
        if state.capture is not None:
            state.capture.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(HTTPException)
    async def routing_error(request: Request, error: HTTPException) -> Response:  # 404, 405: same body shape as ours
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        routes = "GET /ping, POST /invocations, GET /metrics"
        return _error(RequestError(error.status_code, code, f"{request.method} {request.url.path[:80]} is not served: {routes}"), None)

    @app.get("/ping")
    async def ping() -> Response:
        if state.predictor is None:
            return Response(b'{"status":"loading"}', 503, media_type=JSON, headers={"Retry-After": str(RETRY_LOADING_S)})
        return Response(b'{"status":"ready"}', 200, media_type=JSON)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.exposition(), 200, media_type=CONTENT_TYPE)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        return await _invoke(state, request)

    return app


def _load(state: AppState) -> None:
    try:
        predictor = state.load()
    except BaseException as e:  # reported by the server, which then stops: a server that cannot load must not look alive
        state.on_load_failure(e)
        return
    state.predictor = predictor
    state.metrics.ready.set(1)
    log.info("model ready", extra={"fields": {"event": "ready", "model": state.info.label, "backend": state.backend.value}})


async def _invoke(state: AppState, request: Request) -> Response:
    started = time.perf_counter()
    given_id = request.headers.get(REQUEST_ID, "")
    request_id = given_id if _SANE_ID.match(given_id) else str(uuid.uuid4())
    fields: dict[str, object] = {"event": "request", "request_id": request_id, "backend": state.backend.value, "bytes": 0}
    predictor = state.predictor
    admitted = False
    try:
        kind = media_type(request.headers.get("content-type"))
        fields["content_type"] = kind
        params = parse_params(request.query_params.multi_items(), request.headers.get(CUSTOM_ATTRIBUTES), state.info.thresholds)
        if predictor is None:
            raise RequestError(
                503, "loading", f"the model is loading: retry after {RETRY_LOADING_S} s", headers={"Retry-After": str(RETRY_LOADING_S)}
            )
        if not predictor.admit():
            raise RequestError(
                429,
                "overloaded",
                f"the server is full: it takes {predictor.capacity} request{'s' if predictor.capacity != 1 else ''} at once"
                f" ({predictor.workers} in inference, {predictor.capacity - predictor.workers} queued): retry after {RETRY_BUSY_S} s",
                limit=predictor.capacity,
                headers={"Retry-After": str(RETRY_BUSY_S)},
            )
        admitted = True
        body = await _read_body(request, state.limits.max_bytes)
        fields["bytes"] = len(body)
        sampled = state.capture is not None and state.capture.sampled()
        prediction = await predictor.predict(kind, body, params, request_id, sampled)
        fields.update(status=200, images=prediction.images, detections=prediction.detections)
        if sampled and state.capture is not None:
            state.capture.submit(
                CaptureEvent(datetime.now(UTC), request_id, request.headers["content-type"], body, prediction.body, prediction.thumbnails)
            )
        return Response(prediction.body, 200, media_type=JSON, headers={REQUEST_ID: request_id})
    except RequestError as e:
        fields.update(status=e.status, error=e.code)
        return _error(e, request_id)
    except ClientDisconnect:
        fields.update(status=499, error="client_disconnected")  # nobody is left to answer
        return Response(status_code=499)
    except Exception:
        fields.update(status=500, error="internal_error")
        log.exception("invocation failed", extra={"fields": {"event": "error", "request_id": request_id}})
        return _error(
            RequestError(500, "internal_error", f"the server failed on this request (a bug): its log has request id {request_id}"),
            request_id,
        )
    finally:
        if admitted and predictor is not None:
            predictor.release()
        seconds = time.perf_counter() - started
        status = int(fields.get("status", 500))  # type: ignore[call-overload]
        state.metrics.requests.labels(str(status)).inc()
        state.metrics.latency.observe(seconds)
        fields["latency_ms"] = round(seconds * 1000, 2)
        log.info("request", extra={"fields": fields})


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, at most `limit` bytes (413 beyond; a moderately larger one is read to its end first, so the client gets the answer)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        await _drain(request, limit * DRAIN_FACTOR)
        raise RequestError(413, "body_too_large", f"the body is {declared} bytes, over the limit of {limit}", limit=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await _drain(request, limit * DRAIN_FACTOR - size)
            raise RequestError(413, "body_too_large", f"the body is over the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(request: Request, budget: int) -> None:
    """Read and drop up to `budget` more bytes of the body; past that the connection is closed after the answer."""
    async for chunk in request.stream():
        budget -= len(chunk)
        if budget < 0:
            return


def _error(error: RequestError, request_id: str | None) -> Response:
    body: dict[str, object] = {"error": error.body()}
    headers = dict(error.headers)
    if request_id:
        body["request_id"] = request_id
        headers[REQUEST_ID] = request_id
    return Response(json.dumps(body).encode(), error.status, media_type=JSON, headers=headers)
