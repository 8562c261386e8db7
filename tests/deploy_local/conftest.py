"""Small named fixtures of the local deploy tests: model packages, a project with a registry, a load generator.

`packages` builds the test model once per session in its own process (about 15 s; make_packages.py),
records its canary set from a real server, and makes versions and broken copies of it.
`SKYOPS_TEST_DEPLOY_PACKAGES=/path` reuses one built earlier (`python -m tests.deploy_local.make_packages
/path`, then one test run records its canary there).

`world` is one project per test: a roles file, deploy/environments/, its own state folder (audit log,
serving state) and a model of its own in one MLflow store shared by the session. Whatever the test
started (routers and servers, found by their marks) is stopped at its end, however it ended.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from skyops.deploy_local import procs
from skyops.deploy_local.rollout import wait_ready
from skyops.deploy_local.state import read
from skyops.registry.governed import GovernedRegistry
from skyops.registry.models import ApprovalStatus, Candidate, ModelRegistry
from skyops.registry.roles import ROLES_FILE, Governance
from skyops.serving.canary import record_canary
from skyops.training.tracking import TrackingStore
from tests.deploy_local.make_packages import broken, versioned
from tests.registry.conftest import TEAM_ROLES, cli

ROOT = Path(__file__).resolve().parents[2]
PACKAGES_ENV = "SKYOPS_TEST_DEPLOY_PACKAGES"
CANARY_CONF, CANARY_MAX_DET = 0.55, 20


@dataclass(frozen=True)
class Packages:
    v1: Path  # good, metadata version 1
    v2: Path  # the same model, metadata version 2
    silent: Path  # answers no detection
    misplaced: Path  # answers boxes 40 px off
    images: list[Path]  # scenes to send


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    given = os.environ.get(PACKAGES_ENV)
    base = Path(given) if given else tmp_path_factory.mktemp("deploy-package")
    if not (base / "model" / "metadata.json").is_file():
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "YOLO_"))}
        done = subprocess.run(
            [sys.executable, "-m", "tests.deploy_local.make_packages", str(base)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    images = sorted((base / "scenes" / "images").glob("*.jpg"))
    model = base / "model"
    if not (model / "canary" / "canary.json").is_file():
        _record_canary(model, images[:4], tmp_path_factory.mktemp("canary-server"))
    out = tmp_path_factory.mktemp("versions")
    return Packages(
        v1=versioned(model, out / "v1", 1),
        v2=versioned(model, out / "v2", 2),
        silent=broken(model, out / "silent", "silent", 3),
        misplaced=broken(model, out / "misplaced", "misplaced", 3),
        images=images,
    )


def _record_canary(model: Path, images: list[Path], work: Path) -> None:
    """The package's canary set: what a real server of it answers for `images` (the reference answers)."""
    proc = procs.spawn(["-m", "skyops", "serve", str(model), "--port", "0"], log=work / "server.log", marks={}, cwd=work)
    try:
        proc = procs.wait_listening(proc, 120)
        wait_ready(proc, 120)
        record_canary(f"http://127.0.0.1:{proc.port}", images, model / "canary", conf=CANARY_CONF, max_det=CANARY_MAX_DET)
    finally:
        procs.stop(proc, 30)


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the session (creating one costs seconds); each test registers a model of its own."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@dataclass
class World:
    """One project: its folders, its model's name, its address; helpers to register, desire and apply."""

    project: Path
    state: Path
    model: str
    uri: str
    port: int
    capsys: pytest.CaptureFixture[str]

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def register(self, package: Path, *, approve: bool = True) -> int:
        """Register a version whose package is `package` (bob, a data scientist, registers; alice approves)."""
        store = TrackingStore.local(self.state, self.uri)
        client = store.client
        run = client.create_run(store.experiment_id("deploy-tests"))
        weights = b"weights of " + run.info.run_id.encode()  # new weights each time: one version per weights digest
        folder = self.state / "weights" / run.info.run_id
        folder.mkdir(parents=True)
        (folder / "best.pt").write_bytes(weights)
        client.log_artifact(run.info.run_id, str(folder / "best.pt"), "weights")
        candidate = Candidate(
            run_id=run.info.run_id,
            source=f"{run.info.artifact_uri}/weights",
            weights_sha256=hashlib.sha256(weights).hexdigest(),
            metrics={"map50": 0.6, "map50_95": 0.3, "precision": 0.5, "recall": 0.5},
            card={"summary": "deploy test"},
            gate={"passed": True, "reasons": []},
            artifacts=("onnx",),
            package_uri=str(package),  # recorded as the register step records it (ModelVersion.package_uri)
        )
        governed = GovernedRegistry(ModelRegistry(store, self.model), Governance(self.project, self.state / "audit.log"))
        version = governed.register("bob", candidate, ApprovalStatus.PENDING).version
        if approve:
            governed.approve("alice", version, reason="deploy test")
        return version

    def desire(self, version: int | None, env: str = "staging", *, local: str | None = None) -> Path:
        """Write deploy/environments/<env>.yaml naming `version` (and this world's port, or the `local:` given)."""
        path = self.project / "deploy" / "environments" / f"{env}.yaml"
        section = local if local is not None else f"{{port: {self.port}, drain_seconds: 10}}"
        shown = "null" if version is None else version
        path.write_text(f"environment: {env}\nmodel: {self.model}\nalias: staging\nversion: {shown}\nlocal: {section}\n")
        return path

    def run(self, *args: str) -> tuple[int, str, str]:
        """`skyops ARGS` in this process: (exit code, stdout, stderr)."""
        return cli(self.capsys, *args)

    def apply(self, env: str = "staging", *args: str, who: str = "alice") -> tuple[int, str, str]:
        return self.run("deploy", "apply", "--env", env, "--as", who, *args)

    def live(self, env: str = "staging") -> tuple[int | None, int | None]:
        """(version, server pid) the state file says is live."""
        state = read(self.state, env, self.address)
        return (state.live.version, state.live.proc.pid) if state.live else (None, None)

    def processes(self, env: str = "staging") -> list[procs.Marked]:
        return procs.marked(self.state, env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def world(
    tmp_path: Path, tracking_uri: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Iterator[World]:
    project, state = tmp_path / "project", tmp_path / "state"
    (project / "deploy" / "environments").mkdir(parents=True)
    (project / ROLES_FILE).write_text(TEAM_ROLES)
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(project))
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(state))
    monkeypatch.setenv("SKYOPS_TRACKING_URI", tracking_uri)
    monkeypatch.delenv("SKYOPS_USER", raising=False)
    model = f"m-{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]}"
    yield World(project=project, state=state, model=model, uri=tracking_uri, port=free_port(), capsys=capsys)
    stop_everything(state)


def stop_everything(state: Path) -> None:
    """Stop every process the test's deployments started (routers and servers of every environment), and their sockets' folders."""
    environments = {p.name for p in (state / "serving").glob("*") if p.is_dir()}
    for env in environments:
        for found in procs.marked(state, env):
            procs.stop_pid(found.pid, 15)
        router = (state / "serving" / env / "live.json").read_text() if (state / "serving" / env / "live.json").exists() else ""
        for folder in Path(tempfile.gettempdir()).glob("skyops-router-*"):
            if str(folder) in router:
                shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Load:
    """Threads posting one image to `url` in a loop until stopped, counting answers by (status, upstream)."""

    url: str
    body: bytes
    threads: int = 3
    counts: Counter[tuple[int, str]] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._loop, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(120)

    def _loop(self) -> None:
        with httpx.Client(timeout=120) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post(f"{self.url}/invocations", content=self.body, headers={"Content-Type": "image/jpeg"})
                    key = (answer.status_code, answer.headers.get("x-skyops-upstream", ""))
                except httpx.HTTPError as e:
                    key = (0, type(e).__name__)
                    self.errors.append(repr(e))
                with self._changed:
                    self.counts[key] += 1
                    self._changed.notify_all()

    def wait_for(self, upstream: str, count: int, timeout: float = 120) -> None:
        """Until `count` answers 200 came from `upstream` (a generous timeout only guards against a hang)."""
        with self._changed:
            assert self._changed.wait_for(lambda: self.counts[(200, upstream)] >= count, timeout), dict(self.counts)

    @property
    def failures(self) -> dict[tuple[int, str], int]:
        return {key: n for key, n in self.counts.items() if key[0] != 200}
