"""`skyops serve [MODEL]`: the inference server (SageMaker's container contract), docs/serving.md.

MODEL (or `--model-dir PATH`, the same for a path) is one of:
    (nothing)                      /opt/ml/model, where SageMaker puts the model on an endpoint
    a path                         a model folder (metadata.json), the export step's package folder, or a model.tar.gz
    drone-detector@champion        a registered version by alias ...
    drone-detector:3               ... or by number: that version's exported package

The image runs this as `serve` (docker/Dockerfile), bound to 0.0.0.0; locally it binds 127.0.0.1.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from skyops.cli.common import registry, settings
from skyops.cli.params import Choice, FiniteRange, IntegerRange, argument

BACKENDS = ("onnx", "int8", "openvino", "torch")
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
_REFERENCE = re.compile(r"^(?P<model>[A-Za-z0-9][A-Za-z0-9._-]*)(?:@(?P<alias>[a-z]+)|:(?P<version>[0-9]+))$")


@click.command()
@argument(
    "model",
    required=False,
    metavar="MODEL",
    help="A model folder, package or model.tar.gz; or NAME@ALIAS / NAME:VERSION from the registry.",
)
@click.option(
    "--model-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The model as a path (a model folder, package or model.tar.gz): MODEL's option form.",
)
@click.option("--host", default="127.0.0.1", help="Address to listen on (0.0.0.0: every interface, as in a container).")
@click.option("--port", type=IntegerRange(min=0, max=65535), default=None, help=f"Port (0: any free one). Default: ${PORT_ENV}, else 8080.")
@click.option(
    "--backend", type=Choice(BACKENDS, case_sensitive=False), default="onnx", help="Inference backend; the package must have its artifact."
)
@click.option("--workers", type=IntegerRange(min=0, max=64), default=0, help="Requests in inference at once (0: one per core; torch: 1).")
@click.option("--threads", type=IntegerRange(min=0, max=64), default=0, help="Intra-op threads per inference (0: 1; torch: every core).")
@click.option("--max-queue", type=IntegerRange(min=0, max=10_000), default=16, help="Admitted requests waiting for a worker; beyond: 429.")
@click.option("--max-bytes", type=IntegerRange(min=1024), default=6 * 1024 * 1024, help="Largest request body, bytes (413 beyond).")
@click.option(
    "--max-pixels", type=IntegerRange(min=1024), default=40_000_000, help="Largest image, width x height from its header (413 beyond)."
)
@click.option("--max-batch", type=IntegerRange(min=1, max=256), default=8, help='Most images in one JSON {"images": [...]} request.')
@click.option("--nms", type=Choice(("numpy", "opencv")), default="numpy", help="NMS implementation (the same boxes).")
@click.option(
    "--slice",
    "slice_size",
    type=IntegerRange(min=0, max=4096),
    default=0,
    help="Sliced inference for small objects: windows of SIZE px plus the full frame, merged (0: off; best the model's imgsz).",
)
@click.option(
    "--slice-overlap", type=FiniteRange(min=0, max=0.75), default=0.2, help="Fraction of a window its neighbours share (with --slice)."
)
@click.option(
    "--capture-dir", type=click.Path(path_type=Path, file_okay=False), default=None, help="Write data capture here (off when absent)."
)
@click.option("--capture-percent", type=FiniteRange(min=0, max=100), default=100.0, help="Percentage of successful requests captured.")
@click.option("--capture-endpoint", default="local", help="Endpoint name in the capture folder layout.")
@click.option("--capture-variant", default="AllTraffic", help="Variant name in the capture folder layout.")
@click.option("--capture-rotate-mb", type=FiniteRange(min=0.001), default=16.0, help="Start a new capture file past this size.")
@click.option("--capture-rotate-seconds", type=FiniteRange(min=0.1), default=60.0, help="... or past this age.")
@click.option("--drain-seconds", type=FiniteRange(min=0), default=30.0, help="On SIGTERM, how long in-flight requests may take.")
def serve(
    model: str | None,
    model_dir: Path | None,
    host: str,
    port: int | None,
    backend: str,
    workers: int,
    threads: int,
    max_queue: int,
    max_bytes: int,
    max_pixels: int,
    max_batch: int,
    nms: str,
    slice_size: int,
    slice_overlap: float,
    capture_dir: Path | None,
    capture_percent: float,
    capture_endpoint: str,
    capture_variant: str,
    capture_rotate_mb: float,
    capture_rotate_seconds: float,
    drain_seconds: float,
) -> None:
    """Serve a model over HTTP: GET /ping, POST /invocations, GET /metrics (SageMaker's inference container contract)."""
    from skyops.errors import ConfigError
    from skyops.serving.capture_writer import CaptureConfig
    from skyops.serving.detect import NmsKind
    from skyops.serving.images import Limits
    from skyops.serving.model import BackendName, locate_model_folder
    from skyops.serving.server import ServeConfig
    from skyops.serving.server import serve as run_server
    from skyops.serving.sliced import SliceSettings

    if model is not None and model_dir is not None:
        raise ConfigError(f"both MODEL ({model[:70]}) and --model-dir ({model_dir}) name a model", hint="give one of them")
    for name, value in (("--capture-endpoint", capture_endpoint), ("--capture-variant", capture_variant)):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}", value):
            raise ConfigError(
                f"{name} {value[:70]!r} is not an endpoint or variant name", hint="letters, digits and '-', as SageMaker allows"
            )
    if 0 < slice_size < 32:
        raise ConfigError(
            f"--slice {slice_size} is too small: expected 0 (off) or a window of at least 32 px", hint="e.g. --slice 640, the model's imgsz"
        )
    capture = None
    if capture_dir is not None:
        capture = CaptureConfig(
            root=capture_dir.resolve(),
            percent=capture_percent,
            endpoint=capture_endpoint,
            variant=capture_variant,
            rotate_bytes=max(1, int(capture_rotate_mb * 1024 * 1024)),
            rotate_seconds=capture_rotate_seconds,
        )
    config = ServeConfig(
        model_dir=locate_model_folder(model_dir) if model_dir is not None else model_folder(model),
        backend=BackendName(backend.lower()),
        host=host,
        port=port if port is not None else _env_port(),
        workers=workers,
        threads=threads,
        max_queue=max_queue,
        limits=Limits(max_bytes=max_bytes, max_pixels=max_pixels, max_batch=max_batch),
        nms=NmsKind(nms),
        slicing=SliceSettings(size=slice_size, overlap=slice_overlap),
        capture=capture,
        drain_seconds=drain_seconds,
        state_dir=settings().state_dir,
    )
    run_server(config)


def model_folder(model: str | None) -> Path:
    """The model folder MODEL names (see the module docstring)."""
    from skyops.errors import ConfigError
    from skyops.serving.model import SAGEMAKER_MODEL_DIR, locate_model_folder

    if model is None:
        if SAGEMAKER_MODEL_DIR.is_dir():
            return locate_model_folder(SAGEMAKER_MODEL_DIR)
        raise ConfigError(
            f"no model given, and {SAGEMAKER_MODEL_DIR} (SageMaker's model folder) does not exist",
            hint="skyops serve PATH (a package or model folder), or skyops serve drone-detector@champion",
        )
    path = Path(model)
    reference = _REFERENCE.match(model)
    if path.exists() or reference is None:
        return locate_model_folder(path)
    return registered_package(reference["model"], reference["alias"] or reference["version"])


def registered_package(model: str, version: str) -> Path:
    """The model folder of a registered version's exported package (`version`: a number or an alias).

    Where it is: `ModelVersion.package_uri`, the one record of it (tag skyops.package_uri, written by the
    register step when it logs the export step's model folder to the training run). A version registered
    without a package has none, and is refused with the way to get one.
    """
    from skyops.errors import ConfigError
    from skyops.registry.lookup import file_path
    from skyops.serving.model import locate_model_folder

    found = registry(model).get(version)
    name = f"{model} v{found.version}"
    if not found.package_uri:
        raise ConfigError(
            f"{name} has no exported package: it was registered with weights only ({found.source})",
            hint="versions get one from the pipeline's export step: run the pipeline again (skyops run), then serve the new version",
        )
    folder = file_path(found.package_uri)
    if folder is None:
        raise ConfigError(
            f"{name}'s package is at {found.package_uri}, which is not on this machine",
            hint="serve it where it is (SageMaker), or copy the package here and give its path",
        )
    return locate_model_folder(folder)


def _env_port() -> int:
    from skyops.errors import ConfigError

    text = os.environ.get(PORT_ENV, "").strip()
    if not text:
        return 8080
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ConfigError(f"{PORT_ENV}={text[:20]!r} is not a port number", hint="1..65535")
    return int(text)
