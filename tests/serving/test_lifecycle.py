"""Acceptance, the server's life: /ping while loading, SIGTERM with requests in flight, data capture on disk, a full disk.

Each test starts its own `skyops serve` subprocess on 127.0.0.1 (tests/serving/conftest.py).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from skyops.serving.backends import OnnxBackend
from skyops.serving.capture import read_captures
from skyops.serving.detect import letterbox, postprocess
from skyops.serving.export_runtime import OpenVinoModel
from skyops.serving.model import BackendName, read_model_info
from tests.serving.conftest import Server, encode
from tests.serving.test_server import JPEG, JSON, PNG, X_IMAGE, b64, metric, post

CAPTURE_FILE = re.compile(r"local/AllTraffic/\d{4}/\d\d/\d\d/\d\d/\d\d-\d\d-\d{3}-[0-9a-f-]{36}\.jsonl")


@pytest.fixture(scope="module")
def slow_batch(scene_files: list[Path]) -> bytes:
    """A JSON batch of eight 2000x2000 JPEGs: seconds of decoding and resizing for one worker."""
    big = encode(cv2.resize(cv2.imread(str(scene_files[3])), (2000, 2000), interpolation=cv2.INTER_CUBIC))
    return json.dumps({"images": [b64(big)] * 8}).encode()


def test_sigterm_lets_every_admitted_request_finish_then_exits_0(
    start_server: Callable[..., Server], model_dir: Path, slow_batch: bytes
) -> None:
    server = start_server(model_dir, "--workers", "1", "--max-queue", "8", "--max-batch", "8")
    with ThreadPoolExecutor(4) as pool:
        pending = [pool.submit(post, server, slow_batch, JSON) for _ in range(4)]
        while metric(server, "skyops_requests_in_flight") < 4:
            assert not any(p.done() for p in pending)
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(1)  # uvicorn closes its listening socket on its next tick (0.1 s)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/ping", timeout=10)
        answers = [p.result() for p in pending]
    assert [a.status_code for a in answers] == [200] * 4
    assert all(len(a.json()["predictions"]) == 8 for a in answers)
    assert server.proc.wait(60) == 0
    assert [line["event"] for line in server.lines if line.get("event") in ("request", "stopped")][-1] == "stopped"
    assert len(server.events("request")) == 4


def test_ping_says_503_while_the_model_loads_then_200(start_server: Callable[..., Server], model_dir: Path, jpeg: bytes) -> None:
    """The torch backend takes seconds to import torch and Ultralytics: /ping is seen saying 503 before 200."""
    server = start_server(model_dir, "--backend", "torch", ready=False)
    first = httpx.get(f"{server.url}/ping", timeout=30)
    early = post(server, jpeg, JPEG)
    server.wait_ready()
    assert (first.status_code, first.json(), first.headers["Retry-After"]) == (503, {"status": "loading"}, "2")
    assert (early.status_code, early.headers["Retry-After"]) == (503, "2")
    assert early.json()["error"]["message"] == "the model is loading: retry after 2 s"
    answer = post(server, jpeg, JPEG, params="?conf=0.001&iou=1&max_det=20").json()
    assert answer["model"]["backend"] == "torch"
    # The same detections as the ONNX model (run here): torch and ONNX Runtime agree to float noise, so each
    # box torch gives is one ONNX gives (scores of this model nearly tie, so the order may differ).
    info = read_model_info(model_dir)
    blob, box = letterbox(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), info.imgsz)
    onnx = OnnxBackend(info.artifact(BackendName.ONNX), BackendName.ONNX, 1).infer(blob)
    expected = postprocess(onnx, box, conf=0.0009, iou=1, max_det=1000)
    assert len(answer["detections"]) == 20
    for d in answer["detections"]:
        near = np.abs(expected.boxes - np.array(d["box"])).max(1) < 0.05
        assert (near & (expected.classes == d["class_id"]) & (np.abs(expected.scores - d["score"]) < 2e-4)).any(), d


def test_the_openvino_backend_answers_what_onnx_answers(start_server: Callable[..., Server], model_dir: Path, jpeg: bytes) -> None:
    """Eight workers, each with its own infer request, made at once after the first run (Predictor.warm_up says why)."""
    server = start_server(model_dir, "--backend", "openvino", "--workers", "8")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(server, jpeg, JPEG, params="?conf=0.001&iou=0.7&max_det=30").json(), range(16)))
    assert {a["model"]["backend"] for a in answers} == {"openvino"}
    assert all(a["detections"] == answers[0]["detections"] for a in answers)
    info = read_model_info(model_dir)
    blob, box = letterbox(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), info.imgsz)
    # OpenVINO computes at the CPU's default precision, which the export step checked: f32, or bf16 on a CPU
    # with AVX512-BF16, whose near-tied scores differ from ONNX's by more than float noise. The server must
    # answer what OpenVINO itself computes; on an f32 CPU that is also what ONNX computes.
    direct = OpenVinoModel(info.artifact(BackendName.OPENVINO).path)
    references = [direct(blob)[0]]
    if direct.precision == "f32":
        references.append(OnnxBackend(info.artifact(BackendName.ONNX), BackendName.ONNX, 1).infer(blob))
    for reference in references:
        expected = postprocess(reference, box, conf=0.001, iou=0.7, max_det=30)
        assert len(answers[0]["detections"]) == len(expected.scores) == 30
        for d in answers[0]["detections"]:  # the same boxes to float noise (the order of near ties may differ)
            near = np.abs(expected.boxes - np.array(d["box"])).max(1) < 0.05
            assert (near & (expected.classes == d["class_id"]) & (np.abs(expected.scores - d["score"]) < 2e-4)).any(), d


def test_a_model_that_cannot_load_stops_the_server_with_one_clear_line(
    start_server: Callable[..., Server], model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "openvino" / "model.bin").unlink()  # the .xml (whose sha256 is checked) is intact; the weights are gone
    server = start_server(broken, "--backend", "openvino", ready=False)
    assert server.proc.wait(120) == 1
    server.reader.join(10)
    errors = [line for line in server.raw if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(
        f"error: the openvino runtime cannot load {broken.resolve() / 'openvino' / 'model.xml'}: "
    )
    assert server.events("load_failed")


def test_capture_files_are_sagemakers_format_and_read_back(
    start_server: Callable[..., Server], model_dir: Path, tmp_path: Path, jpeg: bytes, png: bytes
) -> None:
    captures = tmp_path / "captures"
    server = start_server(model_dir, "--capture-dir", str(captures), "--capture-rotate-mb", "0.05")
    sent = [
        (jpeg, JPEG),
        (png, PNG),
        (png, X_IMAGE),
        (json.dumps({"image": b64(jpeg)}).encode(), JSON),
        (json.dumps({"images": [b64(jpeg), b64(png)]}).encode(), JSON),
    ]
    answers = []
    for body, kind in sent:
        answers.append(post(server, body, kind))
        for bad in ((b"x", "text/plain"), (b"", JPEG), (jpeg[:2000], JPEG)):  # refused: never captured
            assert post(server, *bad).status_code >= 400
    assert post(server, jpeg, JPEG, params="?conf=7").status_code == 422
    assert [a.status_code for a in answers] == [200] * 5
    assert server.stop() == 0

    files = sorted(p for p in captures.rglob("*") if p.is_file() and p.suffix == ".jsonl")
    assert len(files) > 1, "rotated by size (0.05 MB)"
    assert all(CAPTURE_FILE.fullmatch(str(f.relative_to(captures))) for f in files)
    assert not [p for p in captures.rglob(".*") if p.is_file()], "no partial or temp file left after SIGTERM"
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert len(lines) == 5
    for line, (body, kind) in zip(lines, sent, strict=True):  # SageMaker's record, key for key
        assert set(line) == {"captureData", "eventMetadata", "eventVersion"} and line["eventVersion"] == "0"
        assert set(line["captureData"]) == {"endpointInput", "endpointOutput"}
        assert set(line["eventMetadata"]) == {"eventId", "inferenceId", "inferenceTime"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line["eventMetadata"]["inferenceTime"])
        given, made = line["captureData"]["endpointInput"], line["captureData"]["endpointOutput"]
        assert (given["observedContentType"], given["mode"]) == (kind, "INPUT")
        assert given["encoding"] == ("JSON" if kind == JSON else "BASE64")
        assert given["data"] == (body.decode() if kind == JSON else base64.b64encode(body).decode())
        assert (made["observedContentType"], made["mode"], made["encoding"]) == ("application/json", "OUTPUT", "JSON")

    records = list(read_captures(captures))
    assert [r.input.raw() for r in records if r.input] == [body for body, _ in sent]
    assert [r.output.json() for r in records if r.output] == [a.json() for a in answers]
    assert [r.inference_id for r in records] == [a.headers["X-Amzn-RequestId"] for a in answers]
    assert [len(r.thumbnails) for r in records] == [1, 1, 1, 1, 2]
    for record in records:
        for thumbnail in record.thumbnails:
            small = cv2.imread(str(thumbnail))
            assert small is not None and max(small.shape[:2]) <= 128
    assert len(list(read_captures(files[0]))) < 5  # one file alone


def test_capture_files_are_published_while_the_server_runs(
    start_server: Callable[..., Server], model_dir: Path, tmp_path: Path, jpeg: bytes
) -> None:
    captures = tmp_path / "captures"
    server = start_server(
        model_dir,
        "--capture-dir",
        str(captures),
        "--capture-rotate-seconds",
        "0.5",
        "--capture-endpoint",
        "ep-1",
        "--capture-variant",
        "blue",
    )
    assert post(server, jpeg, JPEG).status_code == 200
    deadline = time.monotonic() + 60
    while not list(read_captures(captures)) and time.monotonic() < deadline:
        time.sleep(0.1)
    records = list(read_captures(captures))
    assert len(records) == 1 and records[0].file.relative_to(captures).parts[:2] == ("ep-1", "blue")
    assert server.proc.poll() is None
    assert metric(server, "skyops_capture_records_total") == 1


def test_capture_percent_0_captures_nothing(start_server: Callable[..., Server], model_dir: Path, tmp_path: Path, jpeg: bytes) -> None:
    captures = tmp_path / "captures"
    server = start_server(model_dir, "--capture-dir", str(captures), "--capture-percent", "0")
    assert [post(server, jpeg, JPEG).status_code for _ in range(3)] == [200] * 3
    assert server.stop() == 0
    assert list(read_captures(captures)) == []


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Path:
    """A real 160 KB file system (tmpfs); skipped where this user cannot mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_stops_capture_with_one_line_and_requests_go_on(
    start_server: Callable[..., Server], model_dir: Path, tiny_disk: Path, jpeg: bytes
) -> None:
    server = start_server(model_dir, "--capture-dir", str(tiny_disk))
    answers = [post(server, jpeg, JPEG) for _ in range(12)]  # ~23 KB of base64 each: the disk fills after a few
    assert [a.status_code for a in answers] == [200] * 12
    assert metric(server, "skyops_capture_enabled") == 0
    assert metric(server, "skyops_capture_errors_total") == 1
    written, dropped = metric(server, "skyops_capture_records_total"), metric(server, 'skyops_capture_dropped_total{reason="stopped"}')
    assert written + dropped + 1 == 12  # the one whose write failed is neither
    stopped = [line for line in server.lines if str(line.get("message", "")).startswith("data capture stopped: No space left on device")]
    assert len(stopped) == 1 and stopped[0]["level"] == "error"
    assert server.stop() == 0
    records = list(read_captures(tiny_disk))  # whole lines only, every one a record
    assert 0 < len(records) < 12
    assert [r.inference_id for r in records] == [a.headers["X-Amzn-RequestId"] for a in answers[: len(records)]]
