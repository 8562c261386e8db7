"""The register step's script on a real MLflow store: it registers through the governed registry as the
run's user, weights are registered once, and a cached registration is re-checked against the registry
before it is reported again."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from skyops.cli import main as cli_main
from skyops.errors import ConfigError, PermissionDenied, StateFileError
from skyops.registry.acting import governance_for
from skyops.registry.audit import AuditLog
from skyops.registry.governed import GovernedRegistry
from skyops.registry.ledger import model_of
from skyops.registry.models import ModelRegistry
from skyops.registry.roles import ROLES_FILE
from skyops.serving import package
from skyops.steps.register.script import RegisterConfig, main, recheck
from skyops.training.evaluate import write_evaluation
from skyops.training.tracking import TrackingStore, local_tracking_uri

from .conftest import evaluation_document, write_package

Trained = Callable[[bytes], tuple[Path, Path]]


ROLES = "default_role: none\nusers: {alice: ml-engineer, bob: data-scientist}\n"


@pytest.fixture
def model(request: pytest.FixtureRequest) -> str:
    return "reg-" + request.node.name.replace("_", "-").replace("[", "-").replace("]", "")[:50]


@pytest.fixture(autouse=True)
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project `skyops run` was started in (SKYOPS_PROJECT_DIR): alice ml-engineer, bob data-scientist, anyone else none."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / ROLES_FILE).write_text(ROLES)
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(folder))
    return folder


def env_of(state: Path, registry: str = "local", user: str = "bob") -> dict[str, str]:
    """The step's env as the local engine gives it (`registry`: SKYOPS_REGISTRY, which the engine sets; `user`: who started the run)."""
    return {
        "SKYOPS_STATE_DIR": str(state),
        "SKYOPS_TRACKING_URI": "",
        "SKYOPS_RUN_ID": "run-1",
        "SKYOPS_USER": user,
        "SKYOPS_REGISTRY": registry,
    }


def register(model_dir: Path, evaluation: Path, out: Path, state: Path, model: str, package: Path | None = None) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    inputs = {"model": model_dir, "evaluation": evaluation} | ({"package": package} if package else {})
    main(inputs, {"registration": out}, env_of(state), RegisterConfig(model_name=model))
    result: dict[str, Any] = json.loads((out / "registration.json").read_text())
    return result


def test_a_rerun_with_the_same_weights_does_not_register_them_again(
    trained: Trained, step_state: Path, model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir, evaluation = trained(b"weights of one training run")
    first = register(model_dir, evaluation, tmp_path / "first", step_state, model)
    out = capsys.readouterr().out
    assert out.startswith(f"decision on {model} ({first['weights_sha256'][:12]}): PendingManualApproval; gate passed:\n")
    assert out.endswith(f"registered {model}:1 as PendingManualApproval\n")
    assert (first["version"], first["created"], first["status"]) == (1, True, "PendingManualApproval")

    # The same weights again (say evaluate re-ran against a new champion, so register missed its cache).
    again = register(model_dir, evaluation, tmp_path / "again", step_state, model)
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (
        f"{model}: these weights are already registered as v1 (PendingManualApproval); not registered again "
        "(the version keeps the decision it was registered with)"
    )
    assert (again["version"], again["created"], again["mlflow_run_id"], again["source"]) == (
        1,
        False,
        first["mlflow_run_id"],
        first["source"],
    )
    registry = ModelRegistry(TrackingStore.local(step_state), model)
    assert [v.version for v in registry.versions()] == [1]
    audited = [r for r in AuditLog(step_state / "audit.log").outcomes() if model_of(r.target) == model]
    assert [(r.action, r.outcome, r.details["version"], r.details["created"]) for r in audited] == [
        ("register", "succeeded", 1, True),
        ("register", "succeeded", 1, False),  # the attempt is recorded too: it found the version, and changed nothing
    ]


def test_an_evaluation_of_other_weights_is_refused(trained: Trained, step_state: Path, model: str, tmp_path: Path) -> None:
    model_dir, _ = trained(b"weights X")
    _, other = trained(b"weights Y")
    with pytest.raises(ConfigError, match=r"^evaluation.json scored weights [0-9a-f]{12}, but the model to register is [0-9a-f]{12} "):
        register(model_dir, other, tmp_path / "out", step_state, model)


def test_a_model_folder_without_best_pt_is_refused(trained: Trained, step_state: Path, model: str, tmp_path: Path) -> None:
    model_dir, evaluation = trained(b"weights Z")
    (model_dir / "best.pt").rename(model_dir / "last.pt")
    with pytest.raises(ConfigError, match=r"input 'model' \(.*\) has no best.pt"):
        register(model_dir, evaluation, tmp_path / "out", step_state, model)


def test_recheck_holds_while_the_version_exists_and_fails_once_it_is_deleted(
    trained: Trained, step_state: Path, model: str, tmp_path: Path, project: Path
) -> None:
    model_dir, evaluation = trained(b"weights to delete")
    register(model_dir, evaluation, tmp_path / "out", step_state, model)
    outputs = {"registration": tmp_path / "out"}
    assert recheck(outputs, env_of(step_state)) is None
    GovernedRegistry(ModelRegistry(TrackingStore.local(step_state), model), governance_for(project, step_state)).delete("alice", 1)
    assert recheck(outputs, env_of(step_state)) == f"the registry no longer has {model} v1 (deleted)"


def test_recheck_fails_when_the_registry_moved_or_is_gone(trained: Trained, step_state: Path, model: str, tmp_path: Path) -> None:
    model_dir, evaluation = trained(b"weights in one store")
    done = register(model_dir, evaluation, tmp_path / "out", step_state, model)
    outputs = {"registration": tmp_path / "out"}
    elsewhere = tmp_path / "another-state"
    assert recheck(outputs, env_of(elsewhere)) == (
        f"{model} v1 was registered in {local_tracking_uri(step_state)}, but this run's registry is {local_tracking_uri(elsewhere)}"
    )
    # A registration whose store has since been deleted (same URI, no database any more).
    gone = tmp_path / "gone-state"
    (tmp_path / "out" / "registration.json").write_text(json.dumps({**done, "tracking_uri": local_tracking_uri(gone)}))
    assert recheck(outputs, env_of(gone)) == f"the registry {gone.resolve() / 'mlflow.db'} that holds {model} v1 no longer exists"
    assert not gone.exists()


def test_recheck_fails_when_the_version_now_comes_from_another_run(trained: Trained, step_state: Path, model: str, tmp_path: Path) -> None:
    model_dir, evaluation = trained(b"weights of run A")
    done = register(model_dir, evaluation, tmp_path / "out", step_state, model)
    (tmp_path / "out" / "registration.json").write_text(json.dumps({**done, "mlflow_run_id": "0" * 32}))
    assert recheck({"registration": tmp_path / "out"}, env_of(step_state)) == (
        f"{model} v1 in the registry now comes from MLflow run {done['mlflow_run_id']}, not {'0' * 32}"
    )


@pytest.mark.parametrize("content", ["", "{", '{"model": "m"}'])
def test_recheck_of_a_damaged_record_is_a_reason_to_run_again(tmp_path: Path, step_state: Path, content: str) -> None:
    (tmp_path / "registration.json").write_text(content)
    reason = recheck({"registration": tmp_path}, env_of(step_state))
    assert reason is not None and reason.startswith(f"registration record {tmp_path / 'registration.json'} ")


def test_recheck_on_the_embedded_store_does_not_import_mlflow(trained: Trained, step_state: Path, model: str, tmp_path: Path) -> None:
    model_dir, evaluation = trained(b"weights checked cheaply")
    register(model_dir, evaluation, tmp_path / "out", step_state, model)
    code = (
        "import sys; from pathlib import Path; from skyops.steps.register.script import recheck; "
        f"print(recheck({{'registration': Path({str(tmp_path / 'out')!r})}}, {env_of(step_state)!r}), 'mlflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout == "None False\n"


def test_a_register_after_a_changed_evaluation_keeps_the_versions_decision(
    trained: Trained, step_state: Path, model: str, tmp_path: Path
) -> None:
    model_dir, evaluation = trained(b"weights judged twice")
    register(model_dir, evaluation, tmp_path / "first", step_state, model)
    doc = json.loads((evaluation / "evaluation.json").read_text())
    write_evaluation(evaluation_document(doc["model"]["weights_sha256"], map50=0.01), tmp_path / "poor" / "evaluation.json")
    config = RegisterConfig(model_name=model, min_map50=0.3)  # this time the gate fails
    (tmp_path / "second").mkdir()
    main({"model": model_dir, "evaluation": tmp_path / "poor"}, {"registration": tmp_path / "second"}, env_of(step_state), config)
    second = json.loads((tmp_path / "second" / "registration.json").read_text())
    assert second["created"] is False and second["gate"]["passed"] is False  # this run's decision, in its record
    version = ModelRegistry(TrackingStore.local(step_state), model).get(1)
    assert version.gate["passed"] is True and version.status.value == "PendingManualApproval"  # the version's own, untouched


def test_the_decision_and_card_are_written_on_every_registry_and_only_local_registers(
    trained: Trained, step_state: Path, model: str, tmp_path: Path
) -> None:
    model_dir, evaluation = trained(b"weights decided twice")
    config = RegisterConfig(model_name=model, min_map50=0.9)  # the fixture's evaluation has mAP50 0.5: rejected
    decided = {}
    for registry in ("sagemaker", "local"):
        out = tmp_path / registry
        out.mkdir()
        main({"model": model_dir, "evaluation": evaluation}, {"registration": out}, env_of(step_state, registry), config)
        decided[registry] = json.loads((out / "decision.json").read_text())
        assert json.loads((out / "card.json").read_text()) == decided[registry]["card"]
        assert (out / "registration.json").is_file() is (registry == "local")
        if registry == "sagemaker":
            assert ModelRegistry(TrackingStore.local(step_state), model).versions() == []  # decided, registered nothing
    for decision in decided.values():
        assert (decision["model"], decision["status"], decision["reasons"][0]) == (model, "Rejected", "mAP50 0.500 < 0.900 (absolute bar)")
    assert decided["sagemaker"]["gate"] == decided["local"]["gate"]
    (version,) = ModelRegistry(TrackingStore.local(step_state), model).versions()
    assert version.status.value == "Rejected" and version.gate == decided["local"]["gate"]


def test_an_unknown_registry_is_refused(trained: Trained, step_state: Path, model: str, tmp_path: Path) -> None:
    model_dir, evaluation = trained(b"weights for nobody")
    with pytest.raises(ConfigError, match=r"^SKYOPS_REGISTRY is 'mlflow'; expected one of local, sagemaker$"):
        main({"model": model_dir, "evaluation": evaluation}, {"registration": tmp_path}, env_of(step_state, "mlflow"), RegisterConfig())


def test_the_registration_is_audited_as_the_run_s_user_with_their_role(
    trained: Trained, step_state: Path, model: str, tmp_path: Path
) -> None:
    model_dir, evaluation = trained(b"weights of bob's run")
    done = register(model_dir, evaluation, tmp_path / "out", step_state, model)
    (record,) = [r for r in AuditLog(step_state / "audit.log").outcomes() if model_of(r.target) == model]
    assert (record.actor, record.role, record.action, record.target, record.outcome) == (
        "bob",
        "data-scientist",
        "register",
        model,
        "succeeded",
    )
    assert record.reason == "pipeline run run-1"
    assert (record.details["version"], record.details["status"], record.details["weights_sha256"]) == (
        1,
        "PendingManualApproval",
        done["weights_sha256"],
    )
    assert done["registered_by"] == {"user": "bob", "role": "data-scientist"}


def test_a_user_without_the_register_permission_registers_nothing_and_the_refusal_is_audited(
    trained: Trained, step_state: Path, model: str, tmp_path: Path
) -> None:
    model_dir, evaluation = trained(b"weights of mallory's run")
    (tmp_path / "out").mkdir()
    with pytest.raises(PermissionDenied, match=rf"^mallory \(role none, default_role of skyops-roles.yaml\) may not register {model}: "):
        main(
            {"model": model_dir, "evaluation": evaluation},
            {"registration": tmp_path / "out"},
            env_of(step_state, user="mallory"),
            RegisterConfig(model_name=model),
        )
    assert ModelRegistry(TrackingStore.local(step_state), model).versions() == []
    (record,) = [r for r in AuditLog(step_state / "audit.log").outcomes() if model_of(r.target) == model]
    assert (record.actor, record.role, record.action, record.outcome) == ("mallory", "none", "register", "denied")


def test_the_exported_package_goes_on_record_with_its_files(
    trained: Trained, step_state: Path, model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = b"weights exported with an int8 model"
    model_dir, evaluation = trained(weights)
    exported = write_package(tmp_path / "package", weights, int8=True)
    archive_sha256 = hashlib.sha256((exported / "model.tar.gz").read_bytes()).hexdigest()
    done = register(model_dir, evaluation, tmp_path / "out", step_state, model, package=exported)
    assert f"package: onnx, int8, torch (model.tar.gz sha256 {archive_sha256[:12]})" in capsys.readouterr().out
    decision = json.loads((tmp_path / "out" / "decision.json").read_text())
    assert decision["package"] == {"artifacts": ["onnx", "int8", "torch"], "sha256": archive_sha256}
    assert (done["artifacts"], done["package_sha256"]) == (["onnx", "int8", "torch"], archive_sha256)

    version = ModelRegistry(TrackingStore.local(step_state), model).get(done["version"])
    assert (version.artifacts, version.package_sha256) == (("onnx", "int8", "torch"), archive_sha256)
    logged = Path(unquote(urlparse(version.package_uri).path))  # the embedded store's artifacts are files
    assert package.read_metadata(logged).artifact_names == ("onnx", "int8", "torch")  # every file there, digests checked
    assert sorted(p.name for p in logged.iterdir()) == sorted(p.name for p in package.model_dir(exported).iterdir())

    again = register(model_dir, evaluation, tmp_path / "again", step_state, model, package=exported)
    assert (again["created"], again["artifacts"], again["package_sha256"]) == (False, ["onnx", "int8", "torch"], archive_sha256)

    monkeypatch.setenv("SKYOPS_STATE_DIR", str(step_state))
    capsys.readouterr()
    try:
        cli_main(["models", "show", str(done["version"]), "--model", model])
    except SystemExit as exited:  # the CLI may end with sys.exit(0)
        assert exited.code in (0, None)
    shown = capsys.readouterr().out.splitlines()
    assert shown[-2:] == [
        f"artifacts: onnx, int8, torch  (package model.tar.gz sha256 {archive_sha256})",
        f"package: {version.package_uri}",
    ]


def test_a_version_without_a_package_records_no_artifacts(trained: Trained, step_state: Path, model: str, tmp_path: Path) -> None:
    model_dir, evaluation = trained(b"weights never exported")
    done = register(model_dir, evaluation, tmp_path / "out", step_state, model)
    version = ModelRegistry(TrackingStore.local(step_state), model).get(done["version"])
    assert (version.artifacts, version.package_sha256, version.package_uri) == ((), "", "")
    assert json.loads((tmp_path / "out" / "decision.json").read_text())["package"] is None


def test_a_package_of_other_weights_is_refused(trained: Trained, step_state: Path, model: str, tmp_path: Path) -> None:
    model_dir, evaluation = trained(b"weights A")
    other = write_package(tmp_path / "package", b"weights B")
    with pytest.raises(
        ConfigError, match=r"^the package .* was exported from weights [0-9a-f]{12}, but the model to register is [0-9a-f]{12}$"
    ):
        register(model_dir, evaluation, tmp_path / "out", step_state, model, package=other)
    assert ModelRegistry(TrackingStore.local(step_state), model).versions() == []


def test_a_damaged_package_is_refused_and_nothing_is_registered(trained: Trained, step_state: Path, model: str, tmp_path: Path) -> None:
    weights = b"weights with a damaged package"
    model_dir, evaluation = trained(weights)
    exported = write_package(tmp_path / "package", weights)
    (package.model_dir(exported) / "model.onnx").write_bytes(b"changed after export")
    with pytest.raises(StateFileError, match=r"^model package .*/model: model.onnx has sha256 [0-9a-f]{12}…, metadata.json records "):
        register(model_dir, evaluation, tmp_path / "out", step_state, model, package=exported)
    assert ModelRegistry(TrackingStore.local(step_state), model).versions() == []
