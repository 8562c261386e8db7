"""The governed registry through the CLI, on a real MLflow sqlite store: roles, audit, GitOps."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from skyops.registry.audit import AuditLog, verify
from skyops.registry.champion import champion_weights
from skyops.registry.models import ModelRegistry
from skyops.training.tracking import TrackingStore

from .conftest import cli, governed, register_version


def test_data_scientist_is_denied_and_every_denial_is_audited(project: Path, store_dir: Path, capsys, model: str) -> None:
    version = register_version(store_dir, model, 0.3)
    (project / "deploy/environments/production.yaml").write_text(
        f"environment: production\nmodel: {model}\nalias: champion\nversion: {version}\n"
    )
    for command in (["models", "approve", str(version)], ["models", "promote", str(version)], ["models", "rollback"]):
        code, _, err = cli(capsys, *command, "--as", "bob", "--model", model)
        assert code == 2
        assert err.startswith(f"error: bob (role data-scientist) may not {command[1]} ")
        assert "needs the role ml-engineer or admin" in err
    governed(store_dir, model).approve("alice", version, reason="for the deploy check")
    code, _, err = cli(capsys, "deploy", "apply", "--env", "production", "--as", "bob")
    assert code == 2 and "bob (role data-scientist) may not deploy" in err
    records = [json.loads(line) for line in (store_dir / "audit.log").read_text().splitlines()]
    records = [r for r in records if r["outcome"] != "intent"]  # the outcomes; each action also wrote its intent first
    assert [(r["actor"], r["action"], r["outcome"]) for r in records] == [
        ("bob", "register", "succeeded"),
        *[("bob", a, "denied") for a in ("approve", "promote", "rollback")],
        ("alice", "approve", "succeeded"),
        ("bob", "deploy", "denied"),
    ]


def test_ml_engineer_approves_promotes_and_rolls_back(project: Path, store_dir: Path, capsys, model: str) -> None:
    first, second = register_version(store_dir, model, 0.30), register_version(store_dir, model, 0.35)
    for version in (first, second):
        assert cli(capsys, "models", "approve", str(version), "--as", "alice", "--reason", "looks good", "--model", model)[0] == 0
        assert cli(capsys, "models", "promote", str(version), "--as", "alice", "--model", model)[0] == 0
    registry = ModelRegistry(TrackingStore.local(store_dir), model)
    assert (registry.by_alias("champion").version, registry.by_alias("previous").version) == (second, first)  # type: ignore[union-attr]
    code, out, _ = cli(capsys, "models", "rollback", "--as", "alice", "--reason", "false positives on roofs", "--model", model)
    assert code == 0 and out == f"@champion: v{second} -> v{first} (rolled back: false positives on roofs)\n"
    assert registry.by_alias("champion").version == first  # type: ignore[union-attr]
    assert champion_weights(store_dir, model) == (first, Path(registry.get(first).source.removeprefix("file://")))
    code, out, _ = cli(capsys, "models", "list", "--model", model)
    assert "@champion" in out and "Approved" in out
    assert verify(store_dir / "audit.log").ok
    _, history, _ = cli(capsys, "models", "history", "--model", model)
    assert "rollback" in history and "false positives on roofs" in history


def test_promote_refuses_a_version_that_is_not_approved(project: Path, store_dir: Path, capsys, model: str) -> None:
    version = register_version(store_dir, model, 0.3)
    code, _, err = cli(capsys, "models", "promote", str(version), "--as", "alice", "--model", model)
    assert code == 2 and err.splitlines() == [
        f"error: {model} v{version} is PendingManualApproval, not Approved: only an Approved version may be promoted",
        f"hint: an ML Engineer approves it first: skyops models approve {version} --model {model}",
    ]
    last = list(AuditLog(store_dir / "audit.log").outcomes())[-1]
    assert (last.action, last.outcome, last.details["error"]) == (
        "promote",
        "failed",
        f"ConfigError: {model} v{version} is PendingManualApproval, not Approved: only an Approved version may be promoted",
    )


def test_gitops_plan_apply_revert_apply_restores_the_previous_champion(project: Path, store_dir: Path, capsys, model: str) -> None:
    env_file = project / "deploy/environments/production.yaml"
    versions = [register_version(store_dir, model, 0.3), register_version(store_dir, model, 0.32)]
    registry = ModelRegistry(TrackingStore.local(store_dir), model)
    for v in versions:
        governed(store_dir, model).approve("alice", v)

    def desire(version: int) -> None:
        env_file.write_text(f"environment: production\nmodel: {model}\nalias: champion\nversion: {version}\n")

    desire(versions[0])
    assert cli(capsys, "deploy", "apply", "--as", "alice")[0] == 0
    desire(versions[1])
    _, planned, _ = cli(capsys, "deploy", "plan")
    assert f"~ @champion: v{versions[0]} -> v{versions[1]}" in planned
    assert cli(capsys, "deploy", "apply", "--as", "alice")[0] == 0
    assert registry.by_alias("previous").version == versions[0]  # type: ignore[union-attr]
    desire(versions[0])  # git revert
    assert cli(capsys, "deploy", "apply", "--as", "alice")[0] == 0
    assert registry.by_alias("champion").version == versions[0]  # type: ignore[union-attr]
    code, out, _ = cli(capsys, "deploy", "apply", "--as", "alice")
    assert code == 0 and out.startswith("production: nothing to do")


def test_apply_refuses_a_version_that_is_not_approved(project: Path, store_dir: Path, capsys, model: str) -> None:
    version = register_version(store_dir, model, 0.3)
    (project / "deploy/environments/production.yaml").write_text(
        f"environment: production\nmodel: {model}\nalias: champion\nversion: {version}\n"
    )
    code, _, err = cli(capsys, "deploy", "apply", "--as", "alice")
    assert code == 2 and err.splitlines()[0] == (
        f"error: {model} v{version} is PendingManualApproval, not Approved: only an Approved version may be deployed"
    )
    last = list(AuditLog(store_dir / "audit.log").outcomes())[-1]  # the refused apply is audited
    assert (last.actor, last.action, last.target, last.outcome) == ("alice", "deploy", f"{model}:{version}@production", "failed")
    assert ModelRegistry(TrackingStore.local(store_dir), model).by_alias("champion") is None
    assert (
        not (store_dir / "deployments" / "production.json").exists()
        or json.loads((store_dir / "deployments" / "production.json").read_text())["model"] != model
    )


def test_tampered_audit_log_fails_verify_naming_the_record(project: Path, store_dir: Path, capsys, model: str) -> None:
    version = register_version(store_dir, model, 0.3)
    for _ in range(2):
        cli(capsys, "models", "approve", str(version), "--as", "alice", "--model", model)
    assert cli(capsys, "audit", "verify")[0] == 0
    log = store_dir / "audit.log"
    lines = log.read_text().splitlines()
    lines[0] = lines[0].replace('"bob"', '"mallory"')  # the registration, by bob
    log.write_text("\n".join(lines) + "\n")
    code, _, err = cli(capsys, "audit", "verify")
    assert code == 1 and "line 1" in err and "seq 0" in err


def _register_in_process(state_dir: str, model: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(register_version(Path(state_dir), model, 0.3))  # audited by the governed registry


def test_two_concurrent_registrations_get_distinct_versions(project: Path, store_dir: Path, model: str) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_register_in_process, args=(str(store_dir), model, queue)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert sorted(queue.get(timeout=5) for _ in workers) == [1, 2]
    assert verify(store_dir / "audit.log").ok
