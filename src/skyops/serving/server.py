"""Run the server: check the model, bind the port, serve until SIGTERM, drain, exit 0.

Start-up, in order: metadata.json and the chosen backend's file are checked (a bad package stops here,
before anything listens: one clear error, exit 2); the port is bound (in use or forbidden: the same);
uvicorn starts answering at once, /ping saying 503 while a thread loads and warms the model; then 200.
A model that fails to load stops the server (exit 1), so an orchestrator never routes to it.

SIGTERM (what SageMaker, Docker and `skyops deploy` send) is graceful: uvicorn stops accepting
connections, closes idle keep-alive ones, lets every admitted request finish (at most
`drain_seconds`), then the capture writer publishes its open file and the process exits 0. uvicorn
re-raises the signal after its shutdown (which would end the process "killed by SIGTERM"); the
handler installed here before it starts is the one it re-raises into, and it does nothing, so the
exit is a clean 0. Ctrl-C (SIGINT) drains the same way and exits 130.
"""

from __future__ import annotations

import errno
import logging
import math
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from skyops.errors import ConfigError, SkyopsError
from skyops.serving.backends import cpu_count, load_backend
from skyops.serving.capture_writer import CaptureConfig, CaptureWriter
from skyops.serving.detect import NmsKind
from skyops.serving.images import Limits
from skyops.serving.inference import Predictor
from skyops.serving.logs import configure_logging
from skyops.serving.metrics import ServerMetrics
from skyops.serving.model import BackendName, read_model_info
from skyops.serving.sliced import SliceSettings

log = logging.getLogger("skyops.serving")

DEFAULT_PORT = 8080  # SageMaker's; SAGEMAKER_BIND_TO_PORT overrides it there
DEFAULT_LIMITS = Limits(max_bytes=6 * 1024 * 1024, max_pixels=40_000_000, max_batch=8)  # 6 MB: SageMaker's real-time payload limit


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    model_dir: Path  # a model folder (metadata.json), see skyops.serving.model.locate_model_folder
    backend: BackendName = BackendName.ONNX
    host: str = "127.0.0.1"  # 0.0.0.0 in a container (the image's `serve` passes it)
    port: int = DEFAULT_PORT  # 0: any free port (the "listening" log line says which)
    workers: int = 0  # requests in inference at once; 0: one per core (1 for torch, which threads inside)
    threads: int = 0  # intra-op threads per inference; 0: 1 (torch: every usable core)
    max_queue: int = 16  # admitted requests waiting for a worker; more get 429
    limits: Limits = DEFAULT_LIMITS
    nms: NmsKind = NmsKind.NUMPY
    slicing: SliceSettings = field(default_factory=lambda: SliceSettings(size=0))  # --slice, --slice-overlap (size 0: off)
    capture: CaptureConfig | None = None
    drain_seconds: float = 30.0  # SIGTERM: how long in-flight requests may take to finish
    state_dir: Path = field(default_factory=lambda: Path(".skyops"))  # Ultralytics' private settings (torch backend)


def serve(config: ServeConfig) -> None:
    """Serve until SIGTERM or Ctrl-C (see the module docstring).

    Raises:
        ConfigError: a bad model package or settings, a port that cannot be bound, a capture folder that cannot be written.
        SkyopsError: the model failed to load after the server started (exit 1).
    """
    import uvicorn

    from skyops.serving.app import AppState, create_app

    info = read_model_info(config.model_dir)
    info.artifact(config.backend)  # missing or damaged: refused before anything listens
    workers = config.workers or (1 if config.backend is BackendName.TORCH else cpu_count())
    metrics = ServerMetrics()
    metrics.model_info.labels(
        info.model_name, str(info.version or ""), config.backend.value, str(info.imgsz), info.weights_sha256[:12]
    ).set(1)
    capture = CaptureWriter(_checked_capture(config.capture), metrics.capture()) if config.capture else None
    sock = _bind(config.host, config.port)
    configure_logging()  # only now: a refusal above is one `error:` line from the CLI, and in-process callers keep their logging

    def load() -> Predictor:
        import cv2

        cv2.setNumThreads(1)  # the workers are the parallelism; OpenCV's own pool would oversubscribe the cores
        backend = load_backend(info, config.backend, threads=config.threads, state_dir=config.state_dir)
        predictor = Predictor(
            info, backend, config.limits, metrics, workers=workers, max_queue=config.max_queue, nms=config.nms, slicing=config.slicing
        )
        predictor.warm_up()
        return predictor

    failures: list[BaseException] = []

    def on_load_failure(error: BaseException) -> None:
        failures.append(error)
        log.error("the model could not be loaded; stopping", extra={"fields": {"event": "load_failed", "error": str(error)}})
        server.should_exit = True

    state = AppState(
        info=info,
        backend=config.backend,
        limits=config.limits,
        metrics=metrics,
        capture=capture,
        load=load,
        on_load_failure=on_load_failure,
    )
    uv_config = uvicorn.Config(
        create_app(state),
        log_config=None,
        access_log=False,  # one line per request comes from the app, with its id, status and latency
        http="h11",
        loop="asyncio",
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(config.drain_seconds),
    )
    server = uvicorn.Server(uv_config)
    host, port = sock.getsockname()[:2]
    log.info(
        "listening",
        extra={
            "fields": {
                "event": "listening",
                "host": host,
                "port": port,
                "model": info.label,
                "backend": config.backend.value,
                "workers": workers,
                "threads": config.threads,
                "max_queue": config.max_queue,
                "slice": {"size": config.slicing.size, "overlap": config.slicing.overlap} if config.slicing.size else None,
                "capture": str(config.capture.root) if config.capture else None,
            }
        },
    )
    previous = signal.signal(signal.SIGTERM, _drained)
    try:
        server.run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
    if failures:
        error = failures[0]
        if isinstance(error, SkyopsError):
            error.exit_code = 1
            raise error
        raise SkyopsError(f"the model could not be loaded: {error}", hint="see the server's log above") from error
    log.info("stopped", extra={"fields": {"event": "stopped"}})


def _drained(signum: int, frame: FrameType | None) -> None:
    """uvicorn re-raises SIGTERM into this after its graceful shutdown: the drain is done, the exit is 0."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        reason = {errno.EADDRINUSE: "is in use", errno.EACCES: "needs privileges", errno.EADDRNOTAVAIL: "is not an address of this machine"}
        raise ConfigError(
            f"cannot listen on {host}:{port}: the {'address' if e.errno == errno.EADDRNOTAVAIL else 'port'} {reason.get(e.errno or 0, e.strerror)}",
            hint="choose another with --port (or SAGEMAKER_BIND_TO_PORT), or stop what listens there",
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _checked_capture(capture: CaptureConfig | None) -> CaptureConfig:
    """The capture folder must be writable before the server starts (a disk that fills later only stops capture)."""
    assert capture is not None
    folder = capture.root / capture.endpoint / capture.variant
    probe = folder / ".skyops-write-probe"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(
            f"cannot write data capture to {folder}: {e.strerror or type(e).__name__}",
            hint="give --capture-dir a writable folder, or leave capture off",
        ) from None
    return capture
