"""`skyops serve` before it listens: which model it serves (a folder, a package, a model.tar.gz, /opt/ml/model,
a registry reference), which port (SAGEMAKER_BIND_TO_PORT), and every refusal as one `error:` line, exit 2.

The refusals run in this process (nothing listens before them); the cases that serve start a real server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from skyops.cli import main
from skyops.registry.models import Candidate
from skyops.serving import model as model_module
from skyops.training.tracking import TrackingStore
from tests.registry.conftest import governed, register_version
from tests.serving.conftest import Server
from tests.serving.test_server import JPEG, post


def serve(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """`skyops serve ARGS` in this process: (exit code, stderr lines)."""
    try:
        main(["serve", *args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err.splitlines()


@pytest.fixture
def copy_of(model_dir: Path, tmp_path: Path) -> Callable[..., Path]:
    """copy_of(**metadata changes) -> a copy of the model folder whose metadata.json has those top-level keys replaced."""

    def copy(**changes: object) -> Path:
        folder = tmp_path / "model"
        shutil.copytree(model_dir, folder)
        metadata = json.loads((folder / "metadata.json").read_text())
        (folder / "metadata.json").write_text(json.dumps(metadata | changes))
        return folder

    return copy


# ---- which model ----------------------------------------------------------------------------------


def test_no_model_and_no_sagemaker_model_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_module, "SAGEMAKER_MODEL_DIR", tmp_path / "opt-ml-model")
    assert serve(capsys) == (
        2,
        [
            f"error: no model given, and {tmp_path / 'opt-ml-model'} (SageMaker's model folder) does not exist",
            "hint: skyops serve PATH (a package or model folder), or skyops serve drone-detector@champion",
        ],
    )


def test_no_model_means_sagemakers_model_folder(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from skyops.cli.serve_cmd import model_folder

    monkeypatch.setattr(model_module, "SAGEMAKER_MODEL_DIR", model_dir)
    assert model_folder(None) == model_dir


def test_a_package_folder_means_its_model_folder(package: Path) -> None:
    from skyops.cli.serve_cmd import model_folder

    assert model_folder(str(package)) == package / "model"


def test_a_folder_without_a_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert serve(capsys, str(tmp_path))[1] == [
        f"error: {tmp_path} holds no model: no metadata.json, model/metadata.json or model.tar.gz",
        "hint: point at the export step's package folder or its model/ folder",
    ]


def test_model_and_model_dir_together(capsys: pytest.CaptureFixture[str], model_dir: Path) -> None:
    assert serve(capsys, "drone-detector@champion", "--model-dir", str(model_dir)) == (
        2,
        [f"error: both MODEL (drone-detector@champion) and --model-dir ({model_dir}) name a model", "hint: give one of them"],
    )


def test_a_model_dir_without_a_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert serve(capsys, "--model-dir", str(tmp_path / "none"))[1] == [
        f"error: model {tmp_path / 'none'} does not exist",
        "hint: give a model folder (with metadata.json), a package folder or a model.tar.gz",
    ]


def test_every_metadata_problem_at_once(capsys: pytest.CaptureFixture[str], copy_of: Callable[..., Path]) -> None:
    folder = copy_of(
        format=2,
        imgsz=250,
        thresholds={"conf": 2, "iou": 0.5, "max_det": 0},
        artifacts={"onnx": {"file": "../../etc/passwd", "sha256": "0"}},
    )
    code, err = serve(capsys, str(folder))
    assert code == 2
    assert err == [
        f"error: 5 problems in {folder.resolve() / 'metadata.json'}:",
        "  - 'artifacts.onnx.file' leads outside the model folder",
        "  - 'format' is 2, expected 1",
        "  - 'imgsz' is 250, expected a multiple of 32 in 32..4096",
        "  - 'thresholds.conf' is 2, expected a number in [0, 1]",
        "  - 'thresholds.max_det' is 0, expected a positive integer",
        "hint: export the model again (skyops run), or fix the file",
    ]


def test_a_changed_model_file_is_refused_by_its_sha256(capsys: pytest.CaptureFixture[str], copy_of: Callable[..., Path]) -> None:
    folder = copy_of()
    onnx = folder / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-10])  # cut short
    code, err = serve(capsys, str(folder))
    expected = json.loads((folder / "metadata.json").read_text())["artifacts"]["onnx"]["sha256"]
    actual = hashlib.sha256(onnx.read_bytes()).hexdigest()
    assert (code, err) == (
        2,
        [
            f"error: {onnx.resolve()} does not match its sha256 in {folder.resolve() / 'metadata.json'} ({actual[:12]}... against {expected[:12]}...)",
            "hint: the file was changed or cut short after export: export the model again",
        ],
    )


def test_a_backend_the_package_lacks(capsys: pytest.CaptureFixture[str], model_dir: Path) -> None:
    assert serve(capsys, str(model_dir), "--backend", "int8") == (
        2,
        [
            f"error: the model {model_dir.resolve()} has no int8 artifact (it has: onnx, openvino, torch)",
            "hint: serve it with --backend onnx, or export the model again",
        ],
    )


# ---- which port, and other settings refused before listening -------------------------------------


def test_a_port_in_use(capsys: pytest.CaptureFixture[str], model_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve(capsys, str(model_dir), "--port", str(port)) == (
            2,
            [
                f"error: cannot listen on 127.0.0.1:{port}: the port is in use",
                "hint: choose another with --port (or SAGEMAKER_BIND_TO_PORT), or stop what listens there",
            ],
        )


@pytest.mark.parametrize("value", ["http", "0", "70000"])
def test_a_bad_sagemaker_bind_to_port(
    capsys: pytest.CaptureFixture[str], model_dir: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SAGEMAKER_BIND_TO_PORT", value)
    assert serve(capsys, str(model_dir)) == (2, [f"error: SAGEMAKER_BIND_TO_PORT={value!r} is not a port number", "hint: 1..65535"])


def test_a_capture_folder_that_cannot_be_written(capsys: pytest.CaptureFixture[str], model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    code, err = serve(capsys, str(model_dir), "--port", "0", "--capture-dir", str(tmp_path / "file" / "captures"))
    assert (code, err) == (
        2,
        [
            f"error: cannot write data capture to {tmp_path / 'file' / 'captures' / 'local' / 'AllTraffic'}: Not a directory",
            "hint: give --capture-dir a writable folder, or leave capture off",
        ],
    )


def test_a_bad_capture_variant_name(capsys: pytest.CaptureFixture[str], model_dir: Path) -> None:
    assert serve(capsys, str(model_dir), "--capture-variant", "../blue")[1] == [
        "error: --capture-variant '../blue' is not an endpoint or variant name",
        "hint: letters, digits and '-', as SageMaker allows",
    ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sagemaker_bind_to_port_and_a_model_tar_gz(package: Path, tmp_path: Path, jpeg: bytes) -> None:
    """SageMaker's way: the port from SAGEMAKER_BIND_TO_PORT; here the model from its archive (--model-dir), unpacked for the server's life."""
    import subprocess
    import sys

    port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "YOLO_"))}
    env |= {"SAGEMAKER_BIND_TO_PORT": str(port), "TMPDIR": str(temp), "SKYOPS_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyops", "serve", "--model-dir", str(package / "model.tar.gz")], env=env, stderr=subprocess.PIPE, text=True
    )
    server = Server(proc)
    try:
        assert server.listening.wait(120), "".join(server.raw)
        assert server.port == port
        server.wait_ready()
        assert post(server, jpeg, JPEG).json()["model"]["name"] == "drone-detector"
        unpacked = list(temp.glob("skyops-serve-model-*"))
        assert len(unpacked) == 1 and (unpacked[0] / "metadata.json").is_file()
    finally:
        assert server.stop() == 0
    assert not unpacked[0].exists(), "the unpacked model is removed when the server stops"


# ---- a registry reference ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state folder with an MLflow store, used by `skyops` in this process and by servers it starts."""
    state = tmp_path / "state"
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(state))
    monkeypatch.delenv("SKYOPS_TRACKING_URI", raising=False)
    yield state


def register_package(state: Path, model: str, package: Path) -> int:
    """Register the package's weights as the register step does (weights under weights/, the model folder under
    package/<sha16>, named by Candidate.package_uri), then approve it and make it @champion, through the governed API."""
    tracking = TrackingStore.local(state)
    client = tracking.client
    run = client.create_run(tracking.experiment_id("serving-tests"))
    archive_sha256 = hashlib.sha256((package / "model.tar.gz").read_bytes()).hexdigest()
    client.log_artifact(run.info.run_id, str(package / "model" / "best.pt"), "weights")
    client.log_artifacts(run.info.run_id, str(package / "model"), f"package/{archive_sha256[:16]}")
    candidate = Candidate(
        run_id=run.info.run_id,
        source=f"{run.info.artifact_uri}/weights",
        weights_sha256=hashlib.sha256((package / "model" / "best.pt").read_bytes()).hexdigest(),
        metrics={"map50": 0.5},
        card={"summary": "serving test"},
        gate={"passed": True, "reasons": []},
        artifacts=("onnx", "torch"),
        package_sha256=archive_sha256,
        package_uri=f"{run.info.artifact_uri}/package/{archive_sha256[:16]}",
    )
    registry = governed(state, model)
    version = registry.register("bob", candidate, "PendingManualApproval").version
    registry.approve("alice", version, reason="test")
    registry.promote("alice", version, reason="test")
    return version


def test_a_registry_reference_serves_the_versions_package(
    store: Path, package: Path, start_server: Callable[..., Server], jpeg: bytes
) -> None:
    version = register_package(store, "drone-detector", package)
    server = start_server("drone-detector@champion", env={"SKYOPS_STATE_DIR": str(store)})
    answer = post(server, jpeg, JPEG)
    assert answer.status_code == 200
    ping = httpx.get(f"{server.url}/ping", timeout=30)
    assert ping.json() == {"status": "ready"}
    listening = server.events("listening")[0]
    assert listening["model"] == "drone-detector (unregistered)"  # the package's metadata says what it was exported from
    from skyops.cli.serve_cmd import model_folder

    assert model_folder(f"drone-detector:{version}") == model_folder("drone-detector@champion")
    assert (model_folder("drone-detector@champion") / "metadata.json").is_file()


def test_a_registry_reference_to_a_version_without_a_package(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    version = register_version(store, "weights-only", 0.4)
    code, err = serve(capsys, f"weights-only:{version}")
    assert code == 2
    assert err[0].startswith(f"error: weights-only v{version} has no exported package: it was registered with weights only (file://")
    assert err[0].endswith("/weights)")
    assert (
        err[1] == "hint: versions get one from the pipeline's export step: run the pipeline again (skyops run), then serve the new version"
    )


def test_a_registry_reference_to_an_alias_nobody_holds(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    register_version(store, "no-champion", 0.4)
    assert serve(capsys, "no-champion@champion")[1] == ["error: model 'no-champion' has no @champion", "hint: aliases in use: none"]
