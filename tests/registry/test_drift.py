"""Registry state the audit log does not explain (set with MLflow's own client, past skyops) is found by
`registry_drift` and refused by `deploy plan`; pointers that disagree with the audit log are errors
naming both sides; only succeeded records count."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from skyops.errors import StateFileError
from skyops.registry.audit import AuditLog, AuditRecord, Outcome
from skyops.registry.champion import champion_weights, pointer_path
from skyops.registry.drift import local_drift, registry_drift
from skyops.registry.gitops import deployed_path
from skyops.registry.ledger import replay
from skyops.registry.models import ModelRegistry
from skyops.training.tracking import TrackingStore

from .conftest import cli, governed, register_version


def seq_of(state: Path, action: str, *, index: int = -1) -> int:
    return [r.seq for r in AuditLog(state / "audit.log").outcomes() if r.action == action][index]


def drift(state: Path, model: str) -> list[str]:
    return registry_drift(ModelRegistry(TrackingStore.local(state), model), AuditLog(state / "audit.log").outcomes())


def desire(project: Path, model: str, version: int | None, env: str = "production", alias: str = "champion") -> None:
    (project / f"deploy/environments/{env}.yaml").write_text(f"environment: {env}\nmodel: {model}\nalias: {alias}\nversion: {version}\n")


@pytest.fixture
def champion(project: Path, store_dir: Path, model: str) -> tuple[int, int]:
    """(v1, v2) of `model`, both Approved through skyops; v1 promoted to @champion through skyops."""
    first, second = register_version(store_dir, model, 0.3, approve=True), register_version(store_dir, model, 0.4, approve=True)
    governed(store_dir, model).promote("alice", first)
    assert drift(store_dir, model) == []
    return first, second


def test_an_alias_set_with_mlflow_s_client_is_drift_and_deploy_plan_refuses(
    project: Path, store_dir: Path, model: str, champion: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = champion
    TrackingStore.local(store_dir).client.set_registered_model_alias(model, "champion", str(second))  # past skyops
    promoted = seq_of(store_dir, "promote")
    expected = f"{model} @champion is on v{second} in the registry, but the audit log's last promote says v{first} (seq {promoted})"
    assert drift(store_dir, model) == [expected]
    assert expected in local_drift(store_dir).problems
    code, out, err = cli(capsys, "audit", "verify")  # the chain is intact, but the registry is not what it explains
    assert code == 1 and f"drift: {expected}" in out.splitlines()
    assert err.startswith("error: the registry holds 1 thing(s) the audit log does not explain (listed above)\n")

    desire(project, model, second)
    code, out, err = cli(capsys, "deploy", "plan")
    assert code == 2 and out == ""
    assert err.splitlines()[:2] == [
        f"error: 1 problem in the desired state {project / 'deploy/environments/production.yaml'} (apply would refuse it):",
        f"  - {expected}",
    ]
    code, _, err = cli(capsys, "deploy", "apply", "--as", "alice")  # apply refuses the same, and the refusal is audited
    assert code == 2 and err.startswith(f"error: {expected}\n")
    last = list(AuditLog(store_dir / "audit.log").outcomes())[-1]
    assert (last.action, last.outcome) == ("deploy", "failed")

    governed(store_dir, model).promote("alice", second)  # the way back: a governed action, which records it
    assert drift(store_dir, model) == []
    assert cli(capsys, "deploy", "plan")[0] == 0


def test_an_approval_tag_set_with_mlflow_s_client_is_drift_and_deploy_plan_refuses(
    project: Path, store_dir: Path, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    version = register_version(store_dir, model, 0.3)
    TrackingStore.local(store_dir).client.set_model_version_tag(model, str(version), "skyops.approval", "Approved")  # past skyops
    registered = seq_of(store_dir, "register")
    expected = (
        f"{model} v{version} is Approved in the registry, but the audit log's last register says PendingManualApproval (seq {registered})"
    )
    assert drift(store_dir, model) == [expected]
    desire(project, model, version)
    code, _, err = cli(capsys, "deploy", "plan")
    assert code == 2 and f"  - {expected}\n" in err

    assert cli(capsys, "models", "approve", str(version), "--model", model, "--as", "alice")[0] == 0  # now on record
    assert drift(store_dir, model) == []
    code, out, _ = cli(capsys, "deploy", "plan")
    assert code == 0 and out == f"~ production: deploy {model} v{version} (now none)\n~ @champion: none -> v{version}\n"


def test_versions_made_or_deleted_past_skyops_are_drift(project: Path, store_dir: Path, model: str) -> None:
    kept, deleted = register_version(store_dir, model, 0.3), register_version(store_dir, model, 0.4)
    client = TrackingStore.local(store_dir).client
    client.delete_model_version(model, str(deleted))
    made = client.create_model_version(model, source="file:///elsewhere/weights", tags={"skyops.approval": "Approved"})
    assert drift(store_dir, model) == [
        f"{model} v{made.version} is in the registry, but the audit log has no register of it",
        f"{model} v{deleted} is not in the registry, but the audit log registered it (seq {seq_of(store_dir, 'register', index=1)}) "
        "and never deleted it",
    ]
    assert kept == 1


def test_only_succeeded_records_are_replayed(model: str) -> None:
    """Denied, failed and intent records (write-ahead: before the action) changed nothing skyops vouches for."""

    def record(seq: int, action: str, target: str, outcome: Any, **details: Any) -> AuditRecord:
        return AuditRecord(
            seq=seq,
            time="",
            actor="alice",
            role="ml-engineer",
            action=action,
            target=target,
            outcome=outcome,
            reason="",
            details=details,
            prev="",
            hash="",
        )

    records = [
        record(0, "register", model, Outcome.SUCCEEDED, version=1, status="PendingManualApproval", created=True),
        record(1, "approve", f"{model}:1", Outcome.DENIED),
        record(2, "approve", f"{model}:1", "intent"),  # an outcome value this code does not know: not an outcome
        record(3, "approve", f"{model}:1", Outcome.FAILED),
        record(4, "promote", f"{model}:1", "intent", previous=None),
        record(5, "register", f"{model}-other", Outcome.SUCCEEDED, version=7, status="Rejected"),  # another model
    ]
    state = replay(records, model)
    assert {v: f.value for v, f in state.statuses.items()} == {1: "PendingManualApproval"}
    assert state.aliases == {}
    legacy = replace(record(6, "register", f"{model}:2", Outcome.SUCCEEDED), reason="Rejected")  # as the register step wrote it before
    assert replay([*records, legacy], model).statuses[2].value == "Rejected"


def test_a_champion_pointer_the_audit_log_disagrees_with_is_an_error_naming_both_sides(
    project: Path, store_dir: Path, model: str, champion: tuple[int, int]
) -> None:
    first, second = champion
    assert champion_weights(store_dir, model) is not None
    registry = ModelRegistry(TrackingStore.local(store_dir), model)
    registry.client.set_registered_model_alias(model, "champion", str(second))  # past skyops, then the pointer follows it
    registry.sync_champion_pointer()
    pointer = pointer_path(store_dir, model)
    assert json.loads(pointer.read_text())["version"] == second  # registry and pointer agree: only the audit log tells
    with pytest.raises(StateFileError) as error:
        champion_weights(store_dir, model)
    assert (
        error.value.message
        == f"champion pointer {pointer} says v{second}; the audit log's last promote says v{first} (seq {seq_of(store_dir, 'promote')})"
    )
    assert error.value.hint.startswith("@champion was set outside skyops: promote the intended version, which records it")

    (store_dir / "audit.log").unlink()  # a log that never promoted anything
    with pytest.raises(StateFileError, match=rf"^champion pointer {pointer} says v{second}; the audit log never set @champion of {model}$"):
        champion_weights(store_dir, model)


def test_a_deployed_record_the_audit_log_disagrees_with_stops_plan_and_apply_rewrites_it(
    project: Path, store_dir: Path, model: str, champion: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = champion
    desire(project, model, first, env="staging", alias="staging")
    assert cli(capsys, "deploy", "apply", "--env", "staging", "--as", "alice")[0] == 0
    applied = seq_of(store_dir, "deploy")
    record = deployed_path(store_dir, "staging")
    record.write_text(json.dumps({**json.loads(record.read_text()), "version": second}))  # an edited record
    code, _, err = cli(capsys, "deploy", "plan", "--env", "staging")
    assert code == 2 and err.splitlines()[0] == (
        f"error: deployed record {record} says {model} v{second}; the audit log's last apply to staging says {model} v{first} (seq {applied})"
    )
    code, out, err = cli(capsys, "deploy", "apply", "--env", "staging", "--as", "alice")
    assert code == 0, err
    assert out.startswith(f"applied: staging: rewrite the damaged record: deployed record {record} says {model} v{second}")
    assert json.loads(record.read_text())["version"] == first
    assert cli(capsys, "deploy", "plan", "--env", "staging")[1] == f"staging: in sync ({model} v{first} @staging)\n"

    other = deployed_path(store_dir, "nowhere")
    other.write_text(record.read_text().replace('"staging"', '"nowhere"'))  # a record no apply wrote
    desire(project, model, first, env="nowhere", alias="staging")
    code, _, err = cli(capsys, "deploy", "plan", "--env", "nowhere")
    assert (
        code == 2 and err.splitlines()[0] == f"error: deployed record {other} says {model} v{first}; the audit log has no apply to nowhere"
    )


def test_apply_with_nothing_to_do_still_says_what_plan_refuses(
    project: Path, store_dir: Path, model: str, champion: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = champion
    desire(project, model, first)
    assert cli(capsys, "deploy", "apply", "--as", "alice")[0] == 0
    TrackingStore.local(store_dir).client.set_model_version_tag(model, str(second), "skyops.approval", "Rejected")  # past skyops
    code, out, err = cli(capsys, "deploy", "apply", "--as", "alice")
    assert code == 2 and out == ""
    assert f"  - {model} v{second} is Rejected in the registry, but the audit log's last approve says Approved" in err
