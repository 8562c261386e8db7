"""`skyops ui` as a user meets it, real servers on 127.0.0.1: everything reads, no write lands, MLflow's own
server is reachable on no port, and stopping skyops ui stops everything it started."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = "drone-detector"
APPROVAL = "skyops.approval"  # the approval status tag skyops sets on a version
ARTIFACT = os.urandom(3 * 1024 * 1024)  # weights-sized: streamed through the proxy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class UI:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text()

    def tree(self) -> list[psutil.Process]:
        """skyops ui and every process under it."""
        me = psutil.Process(self.process.pid)
        return [me, *me.children(recursive=True)]


def start_ui(state: Path, env: dict[str, str] | None = None) -> UI:
    """`skyops ui` in a child process, once it says where it serves."""
    port = free_port()
    log = state.parent / f"ui-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "skyops", "ui", "--port", str(port)],
            env={**os.environ, "SKYOPS_STATE_DIR": str(state), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    ui = UI(process, port, log)
    deadline = time.monotonic() + 300  # MLflow's server takes ~10 s, more on a busy machine
    while not (f"at {ui.url}" in ui.output() and answers(ui.url)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"skyops ui did not start (exit {process.poll()}):\n{ui.output()}")
        time.sleep(0.2)
    return ui


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # ended, not yet reaped by whoever adopted it
    except psutil.NoSuchProcess:
        return True


def wait_gone(processes: list[psutil.Process], seconds: float = 60) -> list[psutil.Process]:
    """The processes still alive after waiting up to `seconds` for all to end."""
    deadline = time.monotonic() + seconds
    while (alive := [p for p in processes if not gone(p)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return alive


def mlflow_socket(ui: UI) -> Path:
    found = {Path(c.laddr) for p in ui.tree()[1:] for c in p.net_connections(kind="unix") if c.laddr}
    assert len(found) == 1, found
    return found.pop()


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# --- a store with an experiment, a run with an artifact, and two versions (v1 Approved @champion, v2 pending) ---


@dataclass
class Store:
    state: Path
    uri: str
    experiment_id: str
    run_id: str

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def snapshot(self) -> dict[str, Any]:
        """Everything a write through the UI could change, read straight from the store."""
        from mlflow.entities import ViewType

        client = self.client()
        model = client.get_registered_model(MODEL)
        run = client.get_run(self.run_id)
        return {
            "models": sorted(m.name for m in client.search_registered_models()),
            "model": (model.description, dict(model.tags), dict(model.aliases)),
            "versions": sorted(
                (v.version, v.current_stage, v.description, sorted(v.tags.items()), sorted(v.aliases))
                for v in client.search_model_versions(f"name = '{MODEL}'")
            ),
            "experiments": sorted((e.name, e.lifecycle_stage, sorted(e.tags.items())) for e in client.search_experiments(ViewType.ALL)),
            "run": (run.info.lifecycle_stage, run.info.status, sorted(run.data.tags.items()), run.data.params, run.data.metrics),
            "artifacts": sorted(f.path for f in client.list_artifacts(self.run_id)),
        }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    from skyops.training.tracking import TrackingStore

    state = tmp_path_factory.mktemp("ui") / "state"
    tracking = TrackingStore.local(state)
    client = tracking.client
    experiment_id = tracking.experiment_id("drone-detection")
    run_id = client.create_run(experiment_id, run_name="train").info.run_id
    client.log_param(run_id, "epochs", "3")
    for step, value in enumerate((0.2, 0.4, 0.5)):
        client.log_metric(run_id, "map50", value, step=step)
    weights = state.parent / "best.pt"
    weights.write_bytes(ARTIFACT)
    client.log_artifact(run_id, str(weights))
    client.set_terminated(run_id, "FINISHED")
    client.create_registered_model(MODEL)
    source = f"{client.get_run(run_id).info.artifact_uri}/best.pt"
    for version, status in (("1", "Approved"), ("2", "PendingManualApproval")):
        client.create_model_version(MODEL, source, run_id=run_id)
        client.set_model_version_tag(MODEL, version, APPROVAL, status)
    client.set_registered_model_alias(MODEL, "champion", "1")
    return Store(state=state, uri=tracking.uri, experiment_id=experiment_id, run_id=run_id)


@pytest.fixture(scope="module")
def ui(store: Store) -> Iterator[UI]:
    ui = start_ui(store.state)
    yield ui
    if ui.process.poll() is None:
        ui.process.kill()
        ui.process.wait(30)


@pytest.mark.slow
def test_the_ui_reads_experiments_runs_models_and_versions(ui: UI, store: Store) -> None:
    with httpx.Client(base_url=f"{ui.url}/ajax-api/2.0/mlflow", timeout=60) as api:
        experiments = api.post("/experiments/search", json={"max_results": 10}).json()["experiments"]
        assert "drone-detection" in {e["name"] for e in experiments}
        runs = api.post("/runs/search", json={"experiment_ids": [store.experiment_id]}).json()["runs"]
        assert [r["info"]["run_id"] for r in runs] == [store.run_id]
        history = api.get("/metrics/get-history", params={"run_id": store.run_id, "metric_key": "map50"}).json()["metrics"]
        assert [m["value"] for m in history] == [0.2, 0.4, 0.5]
        models = api.get("/registered-models/search").json()["registered_models"]
        assert [m["name"] for m in models] == [MODEL]
        # The UI's model page asks for its versions like this:
        versions = api.get("/model-versions/search", params={"filter": f"name='{MODEL}'"}).json()["model_versions"]
        status = {v["version"]: {t["key"]: t["value"] for t in v["tags"]}[APPROVAL] for v in versions}
        assert status == {"1": "Approved", "2": "PendingManualApproval"}
        model = api.get("/registered-models/get", params={"name": MODEL}).json()["registered_model"]
        assert model["aliases"] == [{"alias": "champion", "version": "1"}]
        champion = api.get("/registered-models/alias", params={"name": MODEL, "alias": "champion"}).json()
        assert champion["model_version"]["version"] == "1"
    page = httpx.get(f"{ui.url}/", timeout=60)
    assert page.status_code == 200 and "<!doctype html>" in page.text.lower()
    artifact = httpx.get(f"{ui.url}/get-artifact", params={"path": "best.pt", "run_uuid": store.run_id}, timeout=60)
    assert artifact.status_code == 200 and artifact.content == ARTIFACT


# (method, endpoint under /ajax-api/2.0/mlflow, JSON body, the skyops command the refusal names)
WRITES = [
    ("POST", "registered-models/alias", {"name": MODEL, "alias": "champion", "version": "2"}, "skyops models promote"),
    ("DELETE", "registered-models/alias", {"name": MODEL, "alias": "champion"}, "skyops models promote"),
    ("POST", "model-versions/set-tag", {"name": MODEL, "version": "2", "key": APPROVAL, "value": "Approved"}, "skyops models approve"),
    ("DELETE", "model-versions/delete-tag", {"name": MODEL, "version": "1", "key": APPROVAL}, "skyops models approve"),
    ("POST", "model-versions/transition-stage", {"name": MODEL, "version": "2", "stage": "Production"}, "skyops models approve"),
    ("PATCH", "model-versions/update", {"name": MODEL, "version": "2", "description": "approved by the UI"}, "skyops models approve"),
    ("DELETE", "model-versions/delete", {"name": MODEL, "version": "1"}, "skyops models delete"),
    ("DELETE", "registered-models/delete", {"name": MODEL}, "skyops models delete"),
    ("POST", "registered-models/create", {"name": "rogue-model"}, "skyops run"),
    ("POST", "registered-models/set-tag", {"name": MODEL, "key": "owner", "value": "me"}, "skyops run"),
    ("POST", "model-versions/create", {"name": MODEL, "source": "/tmp/x"}, "skyops run"),
    ("POST", "runs/delete", {"run_id": "RUN"}, "skyops run"),
    ("POST", "runs/set-tag", {"run_id": "RUN", "key": "k", "value": "v"}, "skyops run"),
    ("POST", "experiments/create", {"name": "rogue-experiment"}, "skyops run"),
]


@pytest.mark.slow
def test_every_write_is_refused_and_leaves_the_store_unchanged(ui: UI, store: Store) -> None:
    before = store.snapshot()
    wrong = []
    for method, name, body, command in WRITES:
        body = {k: store.run_id if v == "RUN" else v for k, v in body.items()}
        response = httpx.request(method, f"{ui.url}/ajax-api/2.0/mlflow/{name}", json=body, timeout=60)
        answer = response.json()
        if (response.status_code, answer.get("error_code")) != (403, "PERMISSION_DENIED") or not answer["use"].startswith(command):
            wrong.append((method, name, response.status_code, answer))
    assert wrong == []
    upload = httpx.put(
        f"{ui.url}/ajax-api/2.0/mlflow-artifacts/artifacts/{store.experiment_id}/x/artifacts/evil.pt", content=b"evil", timeout=60
    )
    assert upload.status_code == 403
    assert store.snapshot() == before


@pytest.mark.slow
def test_mlflows_own_server_listens_on_no_port_and_its_socket_is_private(ui: UI, store: Store) -> None:
    """The only TCP port is the announced one, skyops ui's own; MLflow's server is on a Unix socket in a 0700 folder."""
    listening = [(p.pid, c.laddr) for p in ui.tree() for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening == [(ui.process.pid, ("127.0.0.1", ui.port))]
    path = mlflow_socket(ui)
    folder = path.parent.stat()
    assert (stat.S_IMODE(folder.st_mode), folder.st_uid) == (0o700, os.getuid())
    # Even straight to its socket (only this user can reach it), a write fails: the store is open read-only.
    before = store.snapshot()
    direct = httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=60)
    response = direct.post(
        "http://127.0.0.1/api/2.0/mlflow/registered-models/alias", json={"name": MODEL, "alias": "champion", "version": "2"}
    )
    assert response.status_code >= 400 and "readonly database" in response.text
    assert store.snapshot() == before


@pytest.mark.slow
def test_sigterm_stops_the_proxy_and_mlflow_and_removes_the_socket_folder(ui: UI, store: Store) -> None:
    """Runs last in this module: it stops the module's skyops ui."""
    processes, folder = ui.tree(), mlflow_socket(ui).parent
    assert len(processes) >= 3  # skyops ui, MLflow's server and its uvicorn
    ui.process.send_signal(signal.SIGTERM)
    assert ui.process.wait(60) == -signal.SIGTERM
    assert wait_gone(processes) == []
    assert port_is_free(ui.port) and not folder.exists()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_stopping_skyops_ui_leaves_no_mlflow_server_behind(tmp_path: Path, stop: signal.Signals) -> None:
    """Ctrl-C stops everything cleanly; even a SIGKILLed skyops ui takes MLflow's server down with it."""
    state = tmp_path / "state"
    ui = start_ui(state)
    assert (state / "mlflow.db").is_file()  # the store is created when missing, before MLflow opens it read-only
    processes, folder = ui.tree(), mlflow_socket(ui).parent
    ui.process.send_signal(stop)
    assert ui.process.wait(60) == -stop
    assert wait_gone(processes) == []
    assert port_is_free(ui.port)
    if stop == signal.SIGINT:
        assert not folder.exists()
    else:  # nothing ran to remove it (ADR 0012 says so): the test does, not to litter the temp folder
        shutil.rmtree(folder)


def test_mlflow_failing_to_start_is_one_error_after_its_last_lines(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SKYOPS_STATE_DIR": str(tmp_path), "SKYOPS_TRACKING_URI": "nosuchscheme://nowhere"}
    done = subprocess.run(
        [sys.executable, "-m", "skyops", "ui", "--port", str(port)], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 1
    assert done.stdout == "starting MLflow's server on nosuchscheme://nowhere (read-only) ...\n"
    lines = done.stderr.splitlines()
    assert lines[-2:] == ["error: MLflow's server ended before it was ready (exit code 1)", "hint: MLflow's last lines are above"]
    assert any("nosuchscheme" in line for line in lines[:-2]) and all(line.startswith("  mlflow | ") for line in lines[:-2])
    assert port_is_free(port)


def test_the_port_is_held_from_the_start_and_answers_without_nagles_delay() -> None:
    """Bound and listening before MLflow starts, so nothing takes it meanwhile; TCP_NODELAY, inherited by each
    connection, sends a response's body without waiting for the client's delayed ACK (benchmarks/ui_proxy.py)."""
    from skyops.cli.ui_server import UiError, listen

    held = listen(0)
    try:
        port = held.getsockname()[1]
        assert held.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        with socket.create_connection(("127.0.0.1", port)):  # waits in the backlog until the proxy serves
            accepted, _ = held.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        with pytest.raises(UiError, match=rf"^cannot serve on 127\.0\.0\.1:{port}: the port is in use$"):
            listen(port)
    finally:
        held.close()
