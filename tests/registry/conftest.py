"""Small named fixtures of the governance tests: an audit log, a filled one, a project with a role file,
one real MLflow store, and helpers to reach a store through the governed API, register a version and
run the CLI in-process."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from skyops.registry.audit import AuditLog, Outcome
from skyops.registry.governed import GovernedRegistry
from skyops.registry.models import ApprovalStatus, Candidate, ModelRegistry
from skyops.registry.roles import ROLES_FILE, Governance
from skyops.training.tracking import TrackingStore
from tests.clirun import cli  # noqa: F401  (re-exported: the tests import it from here)

ROOT = Path(__file__).resolve().parents[2]

TEAM_ROLES = """\
default_role: data-scientist
users:
  alice: ml-engineer
  bob: data-scientist
  root: admin
  mallory: none
"""


@pytest.fixture
def audit_log(tmp_path: Path) -> AuditLog:
    """An empty audit log in a folder that does not exist yet."""
    return AuditLog(tmp_path / "state" / "audit.jsonl")


@pytest.fixture
def filled_log(audit_log: AuditLog) -> AuditLog:
    """Five records, seq 0-4: alice approves v0..v4 of model m."""
    for version in range(5):
        audit_log.append(
            actor="alice",
            role="ml-engineer",
            action="approve",
            target=f"model m v{version}",
            outcome=Outcome.SUCCEEDED,
            reason=f"note {version}",
            details={"version": version},
        )
    return audit_log


@pytest.fixture
def write_roles(tmp_path: Path) -> Callable[[str], Path]:
    """write_roles(yaml_text) -> a project folder whose skyops-roles.yaml holds that text."""

    def write(text: str) -> Path:
        project = tmp_path / "project"
        project.mkdir(exist_ok=True)
        (project / ROLES_FILE).write_text(text, encoding="utf-8")
        return project

    return write


@pytest.fixture
def governance(write_roles: Callable[[str], Path], audit_log: AuditLog) -> Governance:
    """alice ml-engineer, bob data-scientist, root admin, mallory none; anyone else a data scientist."""
    return Governance(write_roles(TEAM_ROLES), audit_log)


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for the session (creating one costs seconds); each test uses its own model name."""
    return tmp_path_factory.mktemp("registry-state")


@pytest.fixture
def project(tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (roles, deploy/environments/, the drone-detection pipeline) using `store_dir`, with an empty audit log."""
    (tmp_path / "skyops-roles.yaml").write_text(TEAM_ROLES)
    (tmp_path / "deploy" / "environments").mkdir(parents=True)
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "drone-detection.yaml").write_text((ROOT / "pipelines" / "drone-detection.yaml").read_text())
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(store_dir))
    monkeypatch.delenv("SKYOPS_TRACKING_URI", raising=False)
    monkeypatch.delenv("SKYOPS_USER", raising=False)
    (store_dir / "audit.log").unlink(missing_ok=True)
    shutil.rmtree(store_dir / "deployments", ignore_errors=True)  # records of applies the emptied log no longer has
    return tmp_path


@pytest.fixture
def model(request: pytest.FixtureRequest) -> str:
    """A registered-model name of this test's own (each parametrization too), so tests can share one store."""
    readable = request.node.name.replace("_", "-").replace("[", "-").replace("]", "")[:50]
    return f"m-{readable}-{hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]}"


def governed(state_dir: Path, model: str) -> GovernedRegistry[Candidate]:
    """`model` in the store of `state_dir` behind the governed API: the team's roles (TEAM_ROLES), the state's audit log."""
    roles = state_dir / "roles"
    if not (roles / ROLES_FILE).is_file():  # written once, whole (processes registering at once read it)
        roles.mkdir(exist_ok=True)
        temporary = roles / f".{ROLES_FILE}.{os.getpid()}"
        temporary.write_text(TEAM_ROLES)
        temporary.replace(roles / ROLES_FILE)
    return GovernedRegistry(ModelRegistry(TrackingStore.local(state_dir), model), Governance(roles, state_dir / "audit.log"))


def register_version(state_dir: Path, model: str, map50_95: float, *, weights: bytes | None = None, approve: bool = False) -> int:
    """A training run with a weights artifact (weights/best.pt), registered pending by bob (a data scientist), audited.

    Args:
        weights: the content of best.pt; default: bytes of the run's own, so every call registers new weights.
        approve: then alice (an ML Engineer) approves it.
    """
    store = TrackingStore.local(state_dir)
    client = store.client
    run = client.create_run(store.experiment_id("registry-tests"))
    folder = state_dir / "weights-to-log" / run.info.run_id
    folder.mkdir(parents=True)
    (folder / "best.pt").write_bytes(weights if weights is not None else b"weights of " + run.info.run_id.encode())
    client.log_artifact(run.info.run_id, str(folder / "best.pt"), "weights")
    metrics = {"map50": map50_95 + 0.2, "map50_95": map50_95, "precision": 0.5, "recall": 0.5}
    candidate = Candidate(
        run_id=run.info.run_id,
        source=f"{run.info.artifact_uri}/weights",
        weights_sha256=hashlib.sha256((folder / "best.pt").read_bytes()).hexdigest(),
        metrics=metrics,
        card={"summary": "test"},
        gate={"passed": True, "reasons": []},
    )
    registry = governed(state_dir, model)
    done = registry.register("bob", candidate, ApprovalStatus.PENDING)
    if approve:
        registry.approve("alice", done.version, reason="test")
    return done.version
