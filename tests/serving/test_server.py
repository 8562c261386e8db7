"""Acceptance: a real `skyops serve` on 127.0.0.1 (a subprocess), spoken to over HTTP.

Every content type; every bad-request class with its status, code and message (pinned); 16 requests
at once answered as one at a time; 429 when the server is full; metrics that move; one log line per
request; request ids. SIGTERM and data capture: test_lifecycle.py.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.serving.conftest import Server, encode, launch, shut

JPEG, PNG, X_IMAGE, JSON = "image/jpeg", "image/png", "application/x-image", "application/json"
LOW = "?conf=0.001"  # the test model's scores are ~0.01 (make_package.py)
MAX_BYTES, MAX_PIXELS, MAX_BATCH = 400_000, 4_000_000, 3
TYPES = "image/jpeg, image/png, application/x-image, application/json"


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module, with small limits so the tests can cross them cheaply."""
    limits = ("--max-bytes", str(MAX_BYTES), "--max-pixels", str(MAX_PIXELS), "--max-batch", str(MAX_BATCH), "--workers", "2")
    running = launch(model_dir, *limits, cwd=tmp_path_factory.mktemp("server"))
    yield running
    assert shut(running) == 0


def post(
    server: Server, body: bytes, content_type: str | None, *, params: str = LOW, headers: dict[str, str] | None = None
) -> httpx.Response:
    sent = {**({"Content-Type": content_type} if content_type else {}), **(headers or {})}
    return httpx.post(f"{server.url}/invocations{params}", content=body, headers=sent, timeout=120)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def metric(server: Server, sample: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    found = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def png_declaring(width: int, height: int) -> bytes:
    """A complete, tiny PNG whose header declares width x height: a decompression bomb's header without the bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def check_answer(answer: dict[str, object], width: int, height: int) -> list[dict[str, object]]:
    """The shape of one image's answer; returns its detections."""
    assert answer["image"] == {"width": width, "height": height}
    detections = answer["detections"]
    assert isinstance(detections, list) and detections, "the test model answers with a low conf"
    for d in detections:
        assert set(d) == {"class_id", "class_name", "score", "box"}
        assert d["class_name"] == ["car", "truck", "bus", "person"][d["class_id"]]
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
        assert 0.001 <= d["score"] <= 1  # 4 decimals
    scores = [d["score"] for d in detections]
    assert scores == sorted(scores, reverse=True)
    return detections


# ---- content types ---------------------------------------------------------------------------------


def test_every_content_type_is_answered_with_detections_in_original_pixels(server: Server, jpeg: bytes, png: bytes) -> None:
    answers = {
        "jpeg": post(server, jpeg, JPEG),
        "png": post(server, png, PNG),
        "x-image jpeg": post(server, jpeg, X_IMAGE),
        "x-image png": post(server, png, "application/x-image; charset=binary"),  # parameters are ignored
        "json image": post(server, json.dumps({"image": b64(jpeg)}).encode(), JSON),
        "json images": post(server, json.dumps({"images": [b64(jpeg), b64(png)]}).encode(), "application/json; charset=utf-8"),
    }
    for name, response in answers.items():
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-type"] == JSON
        body = response.json()
        assert body["request_id"] == response.headers["X-Amzn-RequestId"]
        assert body["model"] == {"name": "drone-detector", "version": None, "backend": "onnx"}
    jpeg_detections = check_answer(answers["jpeg"].json(), 256, 256)
    png_detections = check_answer(answers["png"].json(), 320, 200)
    assert check_answer(answers["x-image jpeg"].json(), 256, 256) == jpeg_detections
    assert check_answer(answers["x-image png"].json(), 320, 200) == png_detections
    assert check_answer(answers["json image"].json(), 256, 256) == jpeg_detections
    batch = answers["json images"].json()["predictions"]
    assert [check_answer(batch[0], 256, 256), check_answer(batch[1], 320, 200)] == [jpeg_detections, png_detections]


def test_parameters_from_the_query_and_sagemaker_custom_attributes(server: Server, jpeg: bytes) -> None:
    everything = post(server, jpeg, JPEG, params="?conf=0.001&iou=1").json()["detections"]
    assert len(everything) > 3
    assert len(post(server, jpeg, JPEG, params="?conf=0.001&iou=1&max_det=3").json()["detections"]) == 3
    by_header = post(server, jpeg, JPEG, params="", headers={"X-Amzn-SageMaker-Custom-Attributes": "conf=0.001,iou=1,max_det=2"})
    assert by_header.json()["detections"] == everything[:2]
    both = post(server, jpeg, JPEG, params="?max_det=1", headers={"X-Amzn-SageMaker-Custom-Attributes": "conf=0.001,iou=1,max_det=2"})
    assert both.json()["detections"] == everything[:1]  # the query string wins
    assert post(server, jpeg, JPEG, params="?conf=1").json()["detections"] == []
    default = post(server, jpeg, JPEG, params="").json()["detections"]  # the package's conf 0.25: nothing from this model
    assert default == []


# ---- bad requests: status, code, message -----------------------------------------------------------

BAD_REQUESTS: list[tuple[str, str | None, object, str, int, str, str]] = [
    # (case, content type, body, params, status, code, message)
    (
        "text/plain",
        "text/plain",
        b"hello",
        LOW,
        415,
        "unsupported_media_type",
        f"Content-Type 'text/plain' is not supported: send one of {TYPES}",
    ),
    ("no content type", None, b"hello", LOW, 415, "unsupported_media_type", f"the Content-Type header is missing: send one of {TYPES}"),
    ("empty body", JPEG, b"", LOW, 400, "empty_body", "the request body is empty: send an image"),
    (
        "not an image",
        JPEG,
        b"hello world!",
        LOW,
        400,
        "invalid_image",
        "the body is not a readable JPEG or PNG: not a known image format (first bytes b'hello wo')",
    ),
    (
        "truncated jpeg",
        JPEG,
        "jpeg[:3000]",
        LOW,
        400,
        "truncated_image",
        "the body is cut short: the JPEG has no end-of-image marker (3000 bytes received)",
    ),
    (
        "png without IEND",
        PNG,
        "png[:-12]",
        LOW,
        400,
        "truncated_image",
        "the body is cut short: the PNG has no IEND chunk ({n} bytes received)",
    ),
    ("png sent as jpeg", JPEG, "png", LOW, 400, "invalid_image", "the body is a PNG image, but the Content-Type says image/jpeg"),
    ("gif", X_IMAGE, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", LOW, 400, "invalid_image", "the body is a GIF image: send a JPEG or PNG"),
    (
        "json not json",
        JSON,
        b"{nope",
        LOW,
        400,
        "invalid_json",
        "the body is not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
    ),
    (
        "json wrong keys",
        JSON,
        b'{"img": "x", "conf": 1}',
        LOW,
        400,
        "invalid_json",
        """the JSON body holds keys ['conf', 'img']: expected {"image": "<base64>"} or {"images": ["<base64>", ...]}""",
    ),
    ("json bad base64", JSON, b'{"image": "not base64!"}', LOW, 400, "invalid_base64", "image is not valid base64"),
    ("json batch bad item", JSON, '{"images": ["jpeg", "%%%"]}', LOW, 400, "invalid_base64", "images[1] is not valid base64"),
    (
        "body over the byte limit",
        JPEG,
        "big",
        LOW,
        413,
        "body_too_large",
        f"the body is {MAX_BYTES + 1} bytes, over the limit of {MAX_BYTES}",
    ),
    (
        "bomb header",
        PNG,
        "bomb",
        LOW,
        413,
        "too_many_pixels",
        f"the body is 50000x50000 = 2500000000 pixels, over the limit of {MAX_PIXELS}",
    ),
    (
        "batch too big",
        JSON,
        '{"images": ["jpeg", "jpeg", "jpeg", "jpeg"]}',
        LOW,
        413,
        "too_many_images",
        f"4 images in one request is over the limit of {MAX_BATCH}",
    ),
    ("conf out of range", JPEG, "jpeg", "?conf=1.5", 422, "invalid_parameter", "conf=1.5 is out of range: expected a number in [0, 1]"),
    ("conf nan", JPEG, "jpeg", "?conf=nan", 422, "invalid_parameter", "conf=nan is not a finite number: expected a number in [0, 1]"),
    ("iou negative", JPEG, "jpeg", "?iou=-0.1", 422, "invalid_parameter", "iou=-0.1 is out of range: expected a number in [0, 1]"),
    ("iou text", JPEG, "jpeg", "?iou=high", 422, "invalid_parameter", "iou='high' is not a number: expected a number in [0, 1]"),
    (
        "max_det fraction",
        JPEG,
        "jpeg",
        "?max_det=2.5",
        422,
        "invalid_parameter",
        "max_det=2.5 is not an integer: expected an integer in 1..1000",
    ),
    ("max_det zero", JPEG, "jpeg", "?max_det=0", 422, "invalid_parameter", "max_det=0 is out of range: expected an integer in 1..1000"),
    (
        "unknown parameter",
        JPEG,
        "jpeg",
        "?cnf=0.3",
        422,
        "invalid_parameter",
        "unknown parameter 'cnf' in the query string: expected one of conf, iou, max_det, slice",
    ),
    (
        "parameter twice",
        JPEG,
        "jpeg",
        "?conf=0.3&conf=0.4",
        422,
        "invalid_parameter",
        "parameter conf is given twice in the query string: expected each parameter once",
    ),
]


@pytest.mark.parametrize(
    ("case", "content_type", "body", "params", "status", "code", "message"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_requests_get_their_status_and_a_message_saying_what_and_the_limit(
    server: Server,
    jpeg: bytes,
    png: bytes,
    case: str,
    content_type: str | None,
    body: object,
    params: str,
    status: int,
    code: str,
    message: str,
) -> None:
    payloads = {
        "jpeg": jpeg,
        "png": png,
        "jpeg[:3000]": jpeg[:3000],
        "png[:-12]": png[:-12],
        "big": b"\xff" * (MAX_BYTES + 1),
        "bomb": png_declaring(50000, 50000),
    }
    if isinstance(body, str) and body in payloads:
        data = payloads[body]
    elif isinstance(body, str):  # JSON with image placeholders
        data = body.replace('"jpeg"', json.dumps(b64(jpeg))).encode()
    else:
        data = body  # type: ignore[assignment]
    before = metric(server, f'skyops_requests_total{{status="{status}"}}')
    response = post(server, data, content_type, params=params)
    assert response.status_code == status, response.text
    body_json = response.json()
    assert body_json["request_id"] == response.headers["X-Amzn-RequestId"]
    assert body_json["error"]["code"] == code
    assert body_json["error"]["message"] == message.replace("{n}", str(len(data)))
    assert body_json["error"]["status"] == status
    if status in (413, 415, 422) and code != "too_many_images":
        assert "limit" in body_json["error"]
    assert metric(server, f'skyops_requests_total{{status="{status}"}}') == before + 1


def test_custom_attributes_are_checked_like_the_query(server: Server, jpeg: bytes) -> None:
    for header, message in [
        ("conf=2", "conf=2 is out of range: expected a number in [0, 1]"),
        ("conf", "X-Amzn-SageMaker-Custom-Attributes item 'conf' is not name=value: expected e.g. conf=0.3,iou=0.5,max_det=100"),
        ("trace=1", "unknown parameter 'trace' in X-Amzn-SageMaker-Custom-Attributes: expected one of conf, iou, max_det, slice"),
    ]:
        response = post(server, jpeg, JPEG, params="", headers={"X-Amzn-SageMaker-Custom-Attributes": header})
        assert (response.status_code, response.json()["error"]["message"]) == (422, message)


def test_a_chunked_body_over_the_limit_is_refused_while_it_is_read(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"\xff" * (MAX_BYTES // 4)

    response = httpx.post(f"{server.url}/invocations", content=chunks(), headers={"Content-Type": JPEG}, timeout=60)
    assert response.status_code == 413
    assert response.json()["error"]["message"] == f"the body is over the limit of {MAX_BYTES} bytes"


def test_wrong_routes_and_methods_get_the_same_error_shape(server: Server) -> None:
    missing = httpx.get(f"{server.url}/predict", timeout=30)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    wrong = httpx.get(f"{server.url}/invocations", timeout=30)
    assert wrong.status_code == 405
    assert wrong.json()["error"]["message"] == "GET /invocations is not served: GET /ping, POST /invocations, GET /metrics"


# ---- concurrency, ids, metrics, logs ----------------------------------------------------------------


def test_sixteen_requests_at_once_get_the_answers_they_get_one_at_a_time(server: Server, scene_files: list[Path]) -> None:
    images = []
    for i, path in enumerate(scene_files[:8]):
        image = cv2.imread(str(path))
        images.append(encode(cv2.resize(image, (256 + 16 * i, 256 - 8 * i))))  # each its own size: answers cannot be swapped unseen
        images.append(encode(np.ascontiguousarray(image[:, ::-1]), ".png"))
    one_by_one = [post(server, data, X_IMAGE).json() for data in images]
    with ThreadPoolExecutor(16) as pool:
        at_once = list(pool.map(lambda data: post(server, data, X_IMAGE), images))
    assert [r.status_code for r in at_once] == [200] * 16
    strip = ("request_id",)
    assert [{k: v for k, v in r.json().items() if k not in strip} for r in at_once] == [
        {k: v for k, v in a.items() if k not in strip} for a in one_by_one
    ]
    assert len({r.json()["request_id"] for r in at_once}) == 16


def test_request_ids_are_echoed_when_sane_and_replaced_when_not(server: Server, jpeg: bytes) -> None:
    given = post(server, jpeg, JPEG, headers={"X-Amzn-RequestId": "abc-123:7"})
    assert given.headers["X-Amzn-RequestId"] == given.json()["request_id"] == "abc-123:7"
    refused = post(server, b"", JPEG, headers={"X-Amzn-RequestId": "abc-124"})
    assert refused.json()["request_id"] == "abc-124"
    odd = post(server, jpeg, JPEG, headers={"X-Amzn-RequestId": "x" * 300})
    assert re.fullmatch(r"[0-9a-f-]{36}", odd.headers["X-Amzn-RequestId"])


def test_metrics_count_requests_images_and_latency(server: Server, jpeg: bytes) -> None:
    ok, images, latency = (
        metric(server, name)
        for name in ('skyops_requests_total{status="200"}', "skyops_images_total", "skyops_request_latency_seconds_count")
    )
    post(server, jpeg, JPEG)
    post(server, json.dumps({"images": [b64(jpeg)] * 3}).encode(), JSON)
    post(server, b"", JPEG)
    assert metric(server, 'skyops_requests_total{status="200"}') == ok + 2
    assert metric(server, "skyops_images_total") == images + 4
    assert metric(server, "skyops_request_latency_seconds_count") == latency + 3
    assert metric(server, "skyops_model_ready") == 1
    assert metric(server, "skyops_requests_in_flight") == 0
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert 'skyops_model_info{backend="onnx",imgsz="256",model="drone-detector",version=""' in text
    assert "skyops_capture_enabled" not in text  # no capture on this server


def test_one_json_log_line_per_request(server: Server, jpeg: bytes) -> None:
    ids = [
        post(server, jpeg, JPEG, headers={"X-Amzn-RequestId": "log-ok"}),
        post(server, b"x", "text/plain", headers={"X-Amzn-RequestId": "log-bad"}),
    ]
    assert [r.status_code for r in ids] == [200, 415]
    ok, bad = ([line for line in server.events("request") if line["request_id"] == rid] for rid in ("log-ok", "log-bad"))
    assert len(ok) == len(bad) == 1
    assert {k: ok[0][k] for k in ("status", "bytes", "backend", "images", "content_type")} == {
        "status": 200,
        "bytes": len(jpeg),
        "backend": "onnx",
        "images": 1,
        "content_type": JPEG,
    }
    assert isinstance(ok[0]["latency_ms"], float) and ok[0]["latency_ms"] > 0
    assert (bad[0]["status"], bad[0]["error"]) == (415, "unsupported_media_type")


def test_a_full_server_answers_429_with_retry_after(start_server: Callable[..., Server], model_dir: Path, big_jpeg: bytes) -> None:
    server = start_server(model_dir, "--workers", "1", "--max-queue", "0", "--max-batch", "8")
    slow = json.dumps({"images": [b64(big_jpeg)] * 8}).encode()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, server, slow, JSON)
        while metric(server, "skyops_requests_in_flight") < 1:
            assert not first.done(), first.result().text
        refused = post(server, big_jpeg, JPEG)
        assert first.result().status_code == 200
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"] == {
        "status": 429,
        "code": "overloaded",
        "message": "the server is full: it takes 1 request at once (1 in inference, 0 queued): retry after 1 s",
        "limit": 1,
    }


@pytest.fixture(scope="module")
def big_jpeg(scene_files: list[Path]) -> bytes:
    """A 2000x2000 JPEG: decoding and resizing eight of them keeps a worker busy long enough to be seen in flight."""
    return encode(cv2.resize(cv2.imread(str(scene_files[2])), (2000, 2000), interpolation=cv2.INTER_CUBIC))
