"""Small named fixtures of the serving tests: one real model package for the session, images, and a real server.

`package` trains and exports a tiny model once per session in its own process (about a minute on
two busy cores; see make_package.py). `SKYOPS_TEST_PACKAGE=/path` reuses one built earlier with
`python -m tests.serving.make_package /path`, for quick iterations.

`start_server(...)` runs `python -m skyops serve ... --port 0` as a real subprocess on 127.0.0.1,
reads the port from its "listening" log line, and stops it with SIGTERM at the end of the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ENV = "SKYOPS_TEST_PACKAGE"


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package folder: model/ (metadata.json, model.onnx, openvino/, best.pt), model.tar.gz, scenes/ (the training images)."""
    given = os.environ.get(PACKAGE_ENV)
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("package")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "YOLO_"))}
    done = subprocess.run(
        [sys.executable, "-m", "tests.serving.make_package", str(out)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def model_dir(package: Path) -> Path:
    return package / "model"


@pytest.fixture(scope="session")
def scene_files(package: Path) -> list[Path]:
    return sorted((package / "scenes" / "images").glob("*.jpg"))


@pytest.fixture(scope="session")
def jpeg(scene_files: list[Path]) -> bytes:
    return scene_files[0].read_bytes()


@pytest.fixture(scope="session")
def png(scene_files: list[Path]) -> bytes:
    """A non-square PNG (letterboxed with padding), from the second scene."""
    image = cv2.resize(cv2.imread(str(scene_files[1])), (320, 200))
    return bytes(cv2.imencode(".png", image)[1].tobytes())


def encode(image: np.ndarray, ext: str = ".jpg") -> bytes:
    return bytes(cv2.imencode(ext, image)[1].tobytes())


class Server:
    """A `skyops serve` subprocess: its URL, its log lines (parsed JSON) and how it ended."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[dict[str, object]] = []
        self.raw: list[str] = []
        self.listening = threading.Event()
        self.port = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.lines.append(record)
            if record.get("event") == "listening":
                self.port = int(record["port"])  # type: ignore[call-overload]
                self.listening.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self, event: str) -> list[dict[str, object]]:
        return [line for line in self.lines if line.get("event") == event]

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "".join(self.raw)[-3000:]
            if self.port and httpx.get(f"{self.url}/ping", timeout=5).status_code == 200:
                return
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s:\n{''.join(self.raw)[-3000:]}")

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.reader.join(10)
        return code


def launch(model: Path | str, *args: str, cwd: Path, ready: bool = True, env: dict[str, str] | None = None) -> Server:
    """Start `skyops serve MODEL --port 0 ARGS` in `cwd`; wait for its listening line (and /ping 200 when `ready`)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "YOLO_", "SAGEMAKER_"))}
    base.setdefault("SKYOPS_STATE_DIR", str(cwd / "state"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyops", "serve", str(model), "--port", "0", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(proc)
    try:
        if not server.listening.wait(120):
            raise AssertionError("no listening line:\n" + "".join(server.raw)[-3000:])
        if ready:
            server.wait_ready()
    except BaseException:
        shut(server)
        raise
    return server


def shut(server: Server) -> int:
    """Stop with SIGTERM (SIGKILL after 30 s); the exit code."""
    try:
        return server.stop(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        return server.proc.wait(30)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """start_server(model, *args, ready=True, env=None) -> a running Server in tmp_path; stopped (SIGTERM) after the test."""
    started: list[Server] = []

    def start(model: Path | str, *args: str, ready: bool = True, env: dict[str, str] | None = None) -> Server:
        server = launch(model, *args, cwd=tmp_path, ready=ready, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        shut(server)
