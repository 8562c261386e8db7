"""Roles changes on record: every record carries the roles file's sha256; `skyops roles set` is an admin's audited
action; an edit by hand shows in `audit verify` and `audit show` as a change made outside skyops."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from skyops.errors import ConfigError
from skyops.registry.audit import ROLES_NO_FILE, AuditLog, Outcome, verify
from skyops.registry.roles import Action, Governance, Role, load_roles
from skyops.registry.roles_file import render_roles, set_role

from .conftest import TEAM_ROLES, cli


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _approve(project: Path, log: Path, actor: str = "alice") -> None:
    with Governance(project, log).action(actor, Action.APPROVE, "m:1"):
        pass


def test_every_record_carries_the_roles_hash_it_was_decided_under(tmp_path: Path, audit_log: AuditLog) -> None:
    governance = Governance(tmp_path, audit_log)  # no roles file: the defaults
    with governance.action("dev", Action.TRAIN, "pipeline drone-detection"):
        pass
    (tmp_path / "skyops-roles.yaml").write_text("users: {dev: ml-engineer}\n")
    with governance.action("dev", Action.APPROVE, "m:1"):  # read again for this decision: dev is an ML Engineer now
        pass
    roles = [r.roles for r in audit_log.records()]
    assert roles == [ROLES_NO_FILE, ROLES_NO_FILE, _sha256(tmp_path / "skyops-roles.yaml"), _sha256(tmp_path / "skyops-roles.yaml")]
    assert [r.role for r in audit_log.records()] == ["data-scientist", "data-scientist", "ml-engineer", "ml-engineer"]
    [change] = verify(audit_log.path).roles_changes
    assert str(change) == f"roles file changed outside skyops at seq 2: no file -> {roles[2][:12]}"


def test_roles_set_is_denied_for_a_data_scientist_and_audited(project: Path, store_dir: Path, capsys) -> None:
    before = (project / "skyops-roles.yaml").read_bytes()
    code, out, err = cli(capsys, "roles", "set", "bob", "ml-engineer", "--as", "bob", "--reason", "promote myself")
    assert (code, out) == (2, "")
    assert err.startswith(
        "error: bob (role data-scientist) may not manage-roles skyops-roles.yaml:bob: manage-roles needs the role admin\n"
    )
    assert (project / "skyops-roles.yaml").read_bytes() == before
    [denial] = AuditLog(store_dir / "audit.log").records()
    assert (denial.actor, denial.action, denial.target, denial.outcome, denial.reason, denial.roles) == (
        "bob",
        "manage-roles",
        "skyops-roles.yaml:bob",
        Outcome.DENIED,
        "promote myself",
        hashlib.sha256(before).hexdigest(),
    )


def test_roles_set_by_an_admin_is_an_audited_change_verify_explains(project: Path, store_dir: Path, capsys) -> None:
    roles_file, log = project / "skyops-roles.yaml", store_dir / "audit.log"
    old = _sha256(roles_file)
    code, out, _ = cli(capsys, "roles", "set", "bob", "ml-engineer", "--as", "root", "--reason", "joins the release team")
    new = _sha256(roles_file)
    assert code == 0 and out == f"bob: data-scientist -> ml-engineer (skyops-roles.yaml {old[:12]} -> {new[:12]}, audited)\n"
    assert load_roles(project).role_of("bob") is Role.ML_ENGINEER and load_roles(project).role_of("alice") is Role.ML_ENGINEER
    intent, outcome = AuditLog(log).records()
    assert (intent.outcome, intent.actor, intent.details) == (
        Outcome.INTENT,
        "root",
        {"user": "bob", "role": "ml-engineer", "roles_before": old, "roles_after": new},
    )
    assert outcome.outcome is Outcome.SUCCEEDED and outcome.intent == intent.ref and outcome.roles == old
    _approve(project, log, "bob")  # bob may approve now; the record carries the new hash
    assert [r.roles for r in AuditLog(log).records()][-1] == new
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0 and f"\ninfo: roles file changed at seq 2: {old[:12]} -> {new[:12]} (root's manage-roles, intent seq 0)\n" in out
    assert "outside skyops" not in out
    code, out, _ = cli(capsys, "roles", "set", "bob", "ml-engineer", "--as", "root")
    assert code == 0 and out == "bob already has the role ml-engineer: nothing changed\n"
    assert _sha256(roles_file) == new


def test_a_roles_file_edited_by_hand_shows_in_verify_and_show(project: Path, store_dir: Path, capsys) -> None:
    log = store_dir / "audit.log"
    _approve(project, log)
    old = _sha256(project / "skyops-roles.yaml")
    (project / "skyops-roles.yaml").write_text(TEAM_ROLES.replace("bob: data-scientist", "bob: admin"))
    new = _sha256(project / "skyops-roles.yaml")
    _approve(project, log)
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0 and f"\ninfo: roles file changed outside skyops at seq 2: {old[:12]} -> {new[:12]}\n" in out
    code, out, _ = cli(capsys, "audit", "show")
    shown = out.splitlines()
    assert shown[2] == f"       -- roles file changed outside skyops at seq 2: {old[:12]} -> {new[:12]}"
    assert shown[3].startswith("    2  ") and shown[3].endswith("alice (ml-engineer)  approve  m:1  intent")
    assert shown[4].endswith("approve  m:1  succeeded (intent 2)")


def test_roles_set_refuses_to_leave_no_admin_and_records_the_failure(project: Path, store_dir: Path, capsys) -> None:
    before = (project / "skyops-roles.yaml").read_bytes()
    code, _, err = cli(capsys, "roles", "set", "root", "ml-engineer", "--as", "root")
    assert code == 2 and err.startswith(
        f"error: refused: giving root the role ml-engineer would leave {project / 'skyops-roles.yaml'} without an admin"
    )
    assert (project / "skyops-roles.yaml").read_bytes() == before
    assert [r.outcome for r in AuditLog(store_dir / "audit.log").records()] == [Outcome.INTENT, Outcome.FAILED]


def test_roles_set_refuses_a_file_changed_while_it_ran(write_roles, audit_log: AuditLog, monkeypatch) -> None:
    project = write_roles(TEAM_ROLES)
    governance = Governance(project, audit_log)
    real_authorize = governance.authorize

    def edited_meanwhile(*args: object, **kwargs: object) -> Role:
        (project / "skyops-roles.yaml").write_text(TEAM_ROLES + "  dave: admin\n")  # someone saves by hand just now
        return real_authorize(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(governance, "authorize", edited_meanwhile)
    with pytest.raises(ConfigError, match=r"skyops-roles.yaml changed while `roles set` was running; nothing was written"):
        set_role(governance, "root", "bob", Role.ADMIN)
    assert load_roles(project).role_of("bob") is Role.DATA_SCIENTIST and load_roles(project).role_of("dave") is Role.ADMIN


def test_without_a_roles_file_nobody_may_set_roles(tmp_path: Path, audit_log: AuditLog) -> None:
    from skyops.errors import PermissionDenied

    with pytest.raises(PermissionDenied, match=r"^root \(role data-scientist, the default, no skyops-roles.yaml\) may not manage-roles"):
        set_role(Governance(tmp_path, audit_log), "root", "root", Role.ADMIN)
    assert not (tmp_path / "skyops-roles.yaml").exists()


def test_the_canonical_roles_file_reads_back(write_roles) -> None:
    users = {"alice": Role.ML_ENGINEER, "yes": Role.NONE, "zoë": Role.ADMIN}
    project = write_roles(render_roles(Role.NONE, users))
    roles = load_roles(project)
    assert (roles.default_role, dict(roles.users)) == (Role.NONE, users)


def test_roles_show_and_a_bad_role(project: Path, capsys) -> None:
    code, out, _ = cli(capsys, "roles", "show")
    digest = _sha256(project / "skyops-roles.yaml")
    assert code == 0 and out.startswith(
        f"roles file {project / 'skyops-roles.yaml'} (sha256 {digest[:12]})\ndefault_role: data-scientist\nusers:\n"
        "  alice: ml-engineer\n  bob: data-scientist\n  mallory: none\n  root: admin\npermissions:\n  none: read\n"
    )
    code, _, err = cli(capsys, "roles", "set", "bob", "boss", "--as", "root")
    assert code == 2 and err.startswith("error: ROLE boss: expected one of none, data-scientist, ml-engineer, admin\n")
