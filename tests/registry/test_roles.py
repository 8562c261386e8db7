"""Roles: the permission table, the role file, who is acting, and the audited gate."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path

import pytest

from skyops.errors import ConfigError, PermissionDenied
from skyops.registry.audit import AuditLog, Outcome
from skyops.registry.roles import PERMISSIONS, Action, Governance, Role, load_roles, resolve_identity, roles_allowed

RELEASE = [Action.APPROVE, Action.REJECT, Action.PROMOTE, Action.DEPLOY, Action.ROLLBACK, Action.DELETE]
SCIENCE = [Action.READ, Action.EXPLORE, Action.TRAIN, Action.REGISTER]

# the permission table


@pytest.mark.parametrize("action", SCIENCE)
def test_everyone_with_a_role_may_do_science(action: Action) -> None:
    assert roles_allowed(action)[-3:] == (Role.DATA_SCIENTIST, Role.ML_ENGINEER, Role.ADMIN)


@pytest.mark.parametrize("action", RELEASE)
def test_only_ml_engineers_and_admins_release(action: Action) -> None:
    assert roles_allowed(action) == (Role.ML_ENGINEER, Role.ADMIN)


def test_table_edges() -> None:
    assert roles_allowed(Action.MANAGE_ROLES) == (Role.ADMIN,)
    assert PERMISSIONS[Role.NONE] == {Action.READ}
    assert PERMISSIONS[Role.DATA_SCIENTIST] == set(SCIENCE)
    assert PERMISSIONS[Role.ADMIN] == set(Action)
    assert set(PERMISSIONS) == set(Role)


# the role file


def test_load_roles(write_roles: Callable[[str], Path]) -> None:
    roles = load_roles(write_roles("default_role: none\nusers:\n  alice: ml-engineer\n  ' bob ': data-scientist\n"))
    assert roles.exists and roles.default_role is Role.NONE
    assert dict(roles.users) == {"alice": Role.ML_ENGINEER, "bob": Role.DATA_SCIENTIST}
    assert roles.role_of("alice") is Role.ML_ENGINEER and roles.role_of("eve") is Role.NONE


def test_missing_role_file_makes_everyone_a_data_scientist(tmp_path: Path) -> None:
    roles = load_roles(tmp_path)
    assert not roles.exists and roles.source == tmp_path / "skyops-roles.yaml"
    assert roles.role_of("anyone") is Role.DATA_SCIENTIST


def test_defaults_when_keys_are_absent(write_roles: Callable[[str], Path]) -> None:
    roles = load_roles(write_roles("users: {carol: admin}\n"))
    assert roles.default_role is Role.DATA_SCIENTIST and roles.role_of("carol") is Role.ADMIN
    assert dict(load_roles(write_roles("default_role: ml-engineer\n")).users) == {}


def test_every_problem_of_the_role_file_at_once(write_roles: Callable[[str], Path]) -> None:
    project = write_roles("default_role: boss\nadmins: [x]\nusers:\n  carol: ml-enginer\n  3: admin\n")
    with pytest.raises(ConfigError, match=r"4 problems in role file .*project/skyops-roles.yaml:") as caught:
        load_roles(project)
    assert caught.value.problems == [
        "default_role: 'boss' is not a role; expected one of none, data-scientist, ml-engineer, admin",
        "unknown key 'admins'; expected default_role or users",
        "users.carol: 'ml-enginer' is not a role; expected one of none, data-scientist, ml-engineer, admin",
        "users: 3 is not a user name; expected a non-empty string",
    ]
    assert "examples/skyops-roles.yaml" in caught.value.hint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("users: [alice]\n", r"users: expected a mapping of user name to role, found list"),
        ("- alice\n", r"skyops-roles.yaml: expected a mapping with keys default_role and users, found list"),
        ("", r"skyops-roles.yaml: expected a mapping with keys default_role and users, found NoneType"),
        ("users: {alice: [\n", r"skyops-roles.yaml: not valid YAML"),
        ("default_role:\n", r"default_role: None is not a role"),
    ],
)
def test_malformed_role_files(write_roles: Callable[[str], Path], text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_roles(write_roles(text))


# who is acting


def test_identity_from_flag_then_env_then_os(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYOPS_USER", "from-env")
    assert resolve_identity(" alice ") == "alice"
    assert resolve_identity(None) == "from-env"
    monkeypatch.setenv("SKYOPS_USER", "  ")  # blank counts as unset, as in shells
    assert resolve_identity() == getpass.getuser()
    monkeypatch.delenv("SKYOPS_USER")
    assert resolve_identity() == getpass.getuser()


def test_blank_flag_is_refused() -> None:
    with pytest.raises(ConfigError, match="--as was given an empty user name"):
        resolve_identity("  ")


# the gate


def test_allowed_action_returns_the_role_and_audits_nothing(governance: Governance) -> None:
    assert governance.authorize("alice", Action.APPROVE, "model m v1") is Role.ML_ENGINEER
    assert governance.authorize("root", Action.MANAGE_ROLES, "roles") is Role.ADMIN
    assert governance.authorize("bob", Action.REGISTER, "model m") is Role.DATA_SCIENTIST
    assert list(governance.audit.records()) == []
    assert governance.can("alice", Action.DEPLOY) and not governance.can("bob", Action.DEPLOY)


def test_denied_action_is_audited_then_raised(governance: Governance) -> None:
    with pytest.raises(
        PermissionDenied, match=r"^bob \(role data-scientist\) may not approve model m v1: approve needs the role ml-engineer or admin$"
    ) as caught:
        governance.authorize("bob", Action.APPROVE, "model m v1", reason="looks good")
    assert caught.value.hint.startswith(
        "ask an ML Engineer to do it, or have an admin give bob a role (`skyops roles set bob ROLE --as ADMIN`) in "
    )
    assert caught.value.hint.endswith("project/skyops-roles.yaml")
    [record] = governance.audit.records()
    assert (record.actor, record.role, record.action, record.target, record.outcome, record.reason) == (
        "bob",
        "data-scientist",
        "approve",
        "model m v1",
        Outcome.DENIED,
        "looks good",
    )


def test_unknown_user_gets_the_default_role(governance: Governance) -> None:
    with pytest.raises(
        PermissionDenied, match=r"^eve \(role data-scientist, default_role of skyops-roles.yaml\) may not rollback endpoint prod"
    ):
        governance.authorize("eve", Action.ROLLBACK, "endpoint prod")


def test_default_role_none_allows_reading_only(write_roles: Callable[[str], Path], audit_log: AuditLog) -> None:
    governance = Governance(write_roles("default_role: none\nusers: {alice: ml-engineer}\n"), audit_log)
    assert governance.authorize("stranger", Action.READ, "model m") is Role.NONE
    for action in [*SCIENCE[1:], *RELEASE, Action.MANAGE_ROLES]:
        with pytest.raises(PermissionDenied, match=rf"^stranger \(role none, default_role of skyops-roles.yaml\) may not {action} model m"):
            governance.authorize("stranger", action, "model m")
    assert [r.action for r in audit_log.records()] == [a.value for a in [*SCIENCE[1:], *RELEASE, Action.MANAGE_ROLES]]
    assert {r.outcome for r in audit_log.records()} == {Outcome.DENIED}


def test_user_mapped_to_none_is_read_only(governance: Governance) -> None:
    with pytest.raises(
        PermissionDenied, match=r"^mallory \(role none\) may not train .*train needs the role data-scientist or ml-engineer or admin"
    ) as caught:
        governance.authorize("mallory", Action.TRAIN, "pipeline drone-detection")
    assert caught.value.hint.startswith(
        "ask someone with the role data-scientist or ml-engineer or admin to do it, or have an admin give mallory a role"
    )


def test_without_a_role_file_the_hint_says_to_create_it(tmp_path: Path, audit_log: AuditLog) -> None:
    governance = Governance(tmp_path, audit_log)
    with pytest.raises(PermissionDenied, match=r"^dev \(role data-scientist, the default, no skyops-roles.yaml\) may not deploy") as caught:
        governance.authorize("dev", Action.DEPLOY, "endpoint local")
    assert (
        caught.value.hint
        == f"ask an ML Engineer to do it, or create {tmp_path / 'skyops-roles.yaml'} giving dev a role (see examples/skyops-roles.yaml)"
    )


def test_action_block_writes_intent_then_success_with_details(governance: Governance) -> None:
    with governance.action("alice", Action.PROMOTE, "model m v2", reason="better mAP") as act:
        assert act.role is Role.ML_ENGINEER
        [intent] = governance.audit.records()  # written, before the block ran
        assert (intent.outcome, intent.details, act.intent) == (Outcome.INTENT, {}, intent)
        act.details["alias"] = "champion"
    intent, record = governance.audit.records()
    assert (record.outcome, record.role, record.reason, record.details) == (
        Outcome.SUCCEEDED,
        "ml-engineer",
        "better mAP",
        {"alias": "champion"},
    )
    assert record.intent == intent.ref and record.roles == intent.roles == governance.roles.digest


def test_action_block_audits_failure_and_reraises(governance: Governance) -> None:
    with pytest.raises(RuntimeError, match="endpoint unreachable"), governance.action("alice", Action.DEPLOY, "endpoint prod") as act:
        act.details["stage"] = "create"
        raise RuntimeError("endpoint unreachable")
    intent, record = governance.audit.records()
    assert (intent.outcome, record.outcome, record.intent) == (Outcome.INTENT, Outcome.FAILED, intent.ref)
    assert record.details == {"stage": "create", "error": "RuntimeError: endpoint unreachable"}


def test_denied_action_block_never_runs(governance: Governance) -> None:
    ran = []
    with pytest.raises(PermissionDenied, match="bob"), governance.action("bob", Action.DELETE, "model m v1"):
        ran.append(True)
    assert ran == []
    [denial] = governance.audit.records()  # one record: no intent for a denied action
    assert denial.outcome is Outcome.DENIED and denial.intent is None and denial.roles == governance.roles.digest


def test_begin_and_finish_are_the_two_halves(governance: Governance) -> None:
    act = governance.begin("root", Action.MANAGE_ROLES, "skyops-roles.yaml", intended={"bob": "ml-engineer"})
    assert act.intent is not None and act.intent.details == {"bob": "ml-engineer"} and act.role is Role.ADMIN
    act.details["done"] = True
    record = governance.finish(act)
    assert (record.role, record.seq, record.outcome, record.details, record.intent) == (
        "admin",
        1,
        Outcome.SUCCEEDED,
        {"done": True},
        act.intent.ref,
    )
    assert governance.audit.verify().ok and governance.audit.verify().dangling == ()
