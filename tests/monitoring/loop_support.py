"""The monitoring loop's test support (events, retraining, labelling), re-exported by conftest.py. Small named fixtures of the monitoring-loop tests: a project with its own state folder, a real webhook
receiver on 127.0.0.1, drift.json files written by the monitoring contract, and the AWS fixtures (a real
moto server behind the profile guard) of tests/aws."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from skyops.settings import Settings, load_settings
from tests.aws.conftest import aws_files, moto, moto_server  # noqa: F401  (fixtures, shared with the AWS tests)
from tests.clirun import cli  # noqa: F401  (re-exported: the tests import it from here)

SINK_ENV = ("SKYOPS_EVENT_WEBHOOK", "SKYOPS_EVENT_WEBHOOK_TIMEOUT", "SKYOPS_EVENT_WEBHOOK_RETRIES", "SKYOPS_EVENT_BUS")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A project folder with its own state folder; no event sink configured besides the local log."""
    root = tmp_path / "project"
    (root / "pipelines").mkdir(parents=True)
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(root))
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(root / ".skyops"))
    for name in (*SINK_ENV, "SKYOPS_TRACKING_URI", "SKYOPS_USER"):
        monkeypatch.delenv(name, raising=False)
    return load_settings()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Webhook:
    """A real HTTP server on 127.0.0.1. `answers` are the status codes of the next requests (then 204); `delay` seconds
    are slept before answering."""

    url: str
    received: list[Received] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    delay: float = 0.0


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                hook.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = hook.answers.pop(0) if hook.answers else 204
            if hook.delay:
                time.sleep(hook.delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the client gave up waiting (a timeout test): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/secret-token-123"
    yield hook
    server.shutdown()
    server.server_close()
    thread.join(10)


def drift_document(*, drifted: bool = True, requests: dict[str, float] | None = None, source: str = "captures") -> dict[str, Any]:
    """A drift.json as the monitor pipeline writes it (the contract in docs/monitoring-loop.md)."""
    features = [
        {
            "name": "brightness",
            "kind": "image",
            "test": "ks",
            "statistic": 0.61,
            "p_value": 1e-9,
            "p_adjusted": 1e-8,
            "psi": None,
            "drifted": drifted,
        },
        {
            "name": "sharpness",
            "kind": "image",
            "test": "ks",
            "statistic": 0.05,
            "p_value": 0.7,
            "p_adjusted": 0.9,
            "psi": None,
            "drifted": False,
        },
        {
            "name": "boxes_per_image",
            "kind": "prediction",
            "test": "psi",
            "statistic": 0.3,
            "p_value": None,
            "p_adjusted": None,
            "psi": 0.3,
            "drifted": drifted,
        },
    ]
    return {
        "format": 1,
        "drifted": drifted,
        "window": {
            "start": "2026-01-31T13:00:00Z",
            "end": "2026-01-31T14:00:00Z",
            "requests": len(requests or {}) or 200,
            "source": source,
        },
        "baseline": {"dataset_fingerprint": "f" * 64, "images": 800},
        "features": features,
        "embedding": {"test": "mmd", "statistic": 0.12, "p_value": 0.001 if drifted else 0.6, "drifted": drifted},
        "thresholds": {"alpha": 0.05, "psi": 0.2},
        "top": ["brightness", "boxes_per_image", "sharpness"],
        "requests": [{"inference_id": k, "drift_contribution": v} for k, v in (requests or {}).items()],
    }


@pytest.fixture
def write_drift(tmp_path: Path) -> Callable[..., Path]:
    """write_drift(**drift_document kwargs) -> the path of a fresh drift.json."""
    counter = iter(range(1_000_000))

    def write(**kwargs: Any) -> Path:
        path = tmp_path / "drift" / f"{next(counter)}" / "drift.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(drift_document(**kwargs)))
        return path

    return write


def logged_events(settings: Settings) -> list[dict[str, Any]]:
    path = settings.state_dir / "events" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def python_env(**extra: str) -> dict[str, str]:
    """This process's environment for a `python -m skyops` subprocess, without pytest's variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "YOLO_"))}
    return {**env, **extra}


TINY_PIPELINE = Path(__file__).parent / "pipelines" / "retrain-tiny.yaml"
NAMES = ["car", "truck", "bus", "person"]  # the synthetic scenes' classes (skyops.data.synth.DEFAULT_CLASSES)


@pytest.fixture(scope="session")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small synthetic scenes in the canonical layout with a data.yaml (a base dataset a run can ingest as YOLO),
    made once per session."""
    from skyops.data.synth import generate_scenes

    target = tmp_path_factory.mktemp("scenes") / "base"
    generate_scenes(target, 8, size=64, seed=3, workers=1)
    with_yaml(target)
    return target


def with_yaml(dataset: Path) -> Path:
    """`dataset` with a data.yaml naming the synthetic scenes' classes (what the YOLO reader takes the names from)."""
    (dataset / "data.yaml").write_text("names: [" + ", ".join(NAMES) + "]\n")
    return dataset


def groundtruth_line(
    ref: str, width: int, height: int, boxes: list[tuple[int, float, float, float, float]], job: str = "drone-labels"
) -> dict[str, Any]:
    """One line of a Ground Truth bounding-box OUTPUT manifest, as a labelling job writes it."""
    annotations = [{"class_id": c, "left": x, "top": y, "width": w, "height": h} for c, x, y, w, h in boxes]
    return {
        "source-ref": ref,
        job: {"annotations": annotations, "image_size": [{"width": width, "height": height, "depth": 3}]},
        f"{job}-metadata": {
            "class-map": {str(i): n for i, n in enumerate(NAMES)},
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2026-02-01T10:00:00.000000",
            "job-name": f"labeling-job/{job}",
        },
    }


def write_manifest(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def labelled_dataset(folder: Path, images: list[Path], prefix: str) -> Path:
    """A canonical dataset of `images` renamed `<prefix>-<i>.jpg`, one car box each, made as labels come back:
    a Ground Truth output manifest through skyops' converter."""
    import shutil

    from skyops.data.convert import convert
    from skyops.data.imageinfo import probe

    source = folder / f"{prefix}-source"
    (source / "images").mkdir(parents=True)
    lines = []
    for i, image in enumerate(images):
        name = f"{prefix}-{i}.jpg"
        shutil.copy(image, source / "images" / name)
        info = probe(image.read_bytes())
        lines.append(groundtruth_line(f"images/{name}", info.width, info.height, [(0, 4, 5, 12, 9)]))
    manifest = write_manifest(source / "output.manifest", lines)
    convert(manifest, folder / prefix, "groundtruth", names=NAMES, images_dir=source, workers=1)
    return folder / prefix
