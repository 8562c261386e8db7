"""The governed registry API called directly (no CLI) on a real MLflow store: roles, status rules, audit,
and no code outside the registry that writes to the store past it."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skyops.aws.model_packages import ModelPackages
from skyops.errors import ConfigError, PermissionDenied
from skyops.registry.audit import AuditLog
from skyops.registry.gitops import DesiredState
from skyops.registry.models import ApprovalStatus, ModelRegistry

from .conftest import governed, register_version

SRC = Path(__file__).resolve().parents[2] / "src" / "skyops"
RAW_WRITES = frozenset({"_register", "_set_status", "_set_alias", "_delete"})  # the stores' private writes
ALLOWED = (SRC / "registry", SRC / "aws" / "model_packages.py")  # where the stores and the governed registry live


def raw_write_calls(path: Path) -> list[str]:
    """'file:line name' of every call of a raw store write in the module at `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(SRC)}:{node.lineno} {node.func.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RAW_WRITES
    ]


def test_no_module_outside_the_registry_writes_to_a_store_past_the_governed_api() -> None:
    outside, inside = [], []
    for path in sorted(SRC.rglob("*.py")):
        calls = raw_write_calls(path)
        (inside if any(path == a or a in path.parents for a in ALLOWED) else outside).extend(calls)
    assert outside == []
    assert {call.split()[-1] for call in inside} == RAW_WRITES  # the scan sees them where they are made
    for name in ("register", "set_status", "set_alias", "promote", "rollback", "delete"):
        assert not hasattr(ModelRegistry, name), f"ModelRegistry.{name} is public again"
    for name in ("register", "approve", "reject"):
        assert not hasattr(ModelPackages, name), f"ModelPackages.{name} is public again"


def desired(model: str, version: int | None, alias: str = "champion") -> DesiredState:
    return DesiredState(environment="production", model=model, alias=alias, version=version, source="deploy/environments/production.yaml")


ACTIONS: dict[str, Callable[[Any, int, Path], object]] = {
    "approve": lambda api, v, _: api.approve("bob", v, reason="I trained it, it is good"),
    "reject": lambda api, v, _: api.reject("bob", v),
    "promote": lambda api, v, _: api.promote("bob", v),
    "rollback": lambda api, v, _: api.rollback("bob"),
    "delete": lambda api, v, _: api.delete("bob", v),
    "deploy": lambda api, v, state: api.deploy("bob", desired(api.name, v), state),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_a_data_scientist_calling_the_api_directly_is_denied_and_audited(store_dir: Path, model: str, action: str) -> None:
    (store_dir / "audit.log").unlink(missing_ok=True)
    first = register_version(store_dir, model, 0.3, approve=True)
    api = governed(store_dir, model)
    api.promote("alice", first)
    second = register_version(store_dir, model, 0.4, approve=True)
    registry = ModelRegistry(api.store.store, model)  # type: ignore[attr-defined]
    before = [(v.version, v.status, v.aliases) for v in registry.versions()]

    with pytest.raises(PermissionDenied, match=rf"^bob \(role data-scientist\) may not {'deploy' if action == 'deploy' else action} "):
        ACTIONS[action](api, second, store_dir)

    assert [(v.version, v.status, v.aliases) for v in registry.versions()] == before  # nothing changed
    last = list(AuditLog(store_dir / "audit.log").outcomes())[-1]
    assert (last.actor, last.role, last.action, last.outcome) == ("bob", "data-scientist", action, "denied")


def test_a_user_with_the_role_none_cannot_register(store_dir: Path, model: str) -> None:
    (store_dir / "audit.log").unlink(missing_ok=True)
    with pytest.raises(PermissionDenied, match=rf"^mallory \(role none\) may not register {model}: register needs the role "):
        governed(store_dir, model).register("mallory", None, ApprovalStatus.PENDING)  # type: ignore[arg-type]  # refused before it is read
    (record,) = AuditLog(store_dir / "audit.log").outcomes()
    assert (record.actor, record.role, record.action, record.outcome) == ("mallory", "none", "register", "denied")


def assert_refused(store_dir: Path, call: Callable[[], object], message: str) -> None:
    """`call` raises ConfigError(message), audited as the action's failure with that error."""
    with pytest.raises(ConfigError) as refused:
        call()
    assert refused.value.message == message
    last = list(AuditLog(store_dir / "audit.log").outcomes())[-1]
    assert (last.outcome, last.details["error"]) == ("failed", f"ConfigError: {message}")


def test_the_status_rules_refuse_for_everyone_and_the_refusal_is_audited(store_dir: Path, model: str) -> None:
    (store_dir / "audit.log").unlink(missing_ok=True)
    api = governed(store_dir, model)
    first, second = register_version(store_dir, model, 0.3, approve=True), register_version(store_dir, model, 0.4)
    pending = f"{model} v{second} is PendingManualApproval, not Approved: only an Approved version may be"
    assert_refused(store_dir, lambda: api.promote("alice", second), f"{pending} promoted")
    assert_refused(store_dir, lambda: api.deploy("alice", desired(model, second), store_dir), f"{pending} deployed")
    assert_refused(store_dir, lambda: api.rollback("root"), f"{model} cannot roll back: it has no @champion")
    api.promote("alice", first)
    assert_refused(store_dir, lambda: api.rollback("alice"), f"{model} cannot roll back: it has no @previous")
    assert_refused(
        store_dir,
        lambda: api.reject("alice", "champion"),
        f"{model} v{first} is the @champion, which stays Approved: roll back or promote another version before rejecting it",
    )

    api.approve("alice", second)
    api.promote("alice", second)  # v1 becomes @previous
    api.reject("alice", first)  # allowed: not the champion
    with pytest.raises(ConfigError, match=rf"^{model} v{first} is Rejected, not Approved: only an Approved version may be rolled back to$"):
        api.rollback("alice")
    registry = ModelRegistry(api.store.store, model)  # type: ignore[attr-defined]
    assert (registry.aliases(), registry.status(first)) == ({"champion": second, "previous": first}, "Rejected")


def test_what_each_succeeded_action_records(store_dir: Path, model: str) -> None:
    (store_dir / "audit.log").unlink(missing_ok=True)
    api = governed(store_dir, model)
    first = register_version(store_dir, model, 0.3, approve=True)
    second = register_version(store_dir, model, 0.4, approve=True)
    assert api.promote("alice", first).replaced is None
    move = api.promote("alice", second)
    assert (move.champion, move.replaced) == (second, first)
    back = api.rollback("alice", reason="false positives on roofs")
    assert (back.champion, back.replaced) == (first, second)
    api.deploy("alice", desired(model, second, alias="staging"), store_dir, changes=["@staging: none -> v2"])
    records = [(r.action, r.target, r.details) for r in AuditLog(store_dir / "audit.log").outcomes()]
    assert records[-4:] == [
        ("promote", f"{model}:{first}", {"previous": None}),
        ("promote", f"{model}:{second}", {"previous": first}),
        ("rollback", f"{model}@champion", {"from": second, "to": first}),
        (
            "deploy",
            f"{model}:{second}@production",
            {"environment": "production", "alias": "staging", "version": second, "changes": ["@staging: none -> v2"]},
        ),
    ]
    register = next(r for r in AuditLog(store_dir / "audit.log").outcomes() if r.action == "register")
    assert (register.actor, register.role, register.target, register.details["version"], register.details["created"]) == (
        "bob",
        "data-scientist",
        model,
        first,
        True,
    )
