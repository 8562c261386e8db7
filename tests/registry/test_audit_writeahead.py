"""The write-ahead audit: no governed action without its intent on disk first; an intent without an outcome shows.

Faults are real where this machine allows: an immutable log (chattr +i, as root), a read-only one
(chmod, as another user), a full disk through the state folder's fault hook (SKYOPS_FAULT_INJECT), and
a process SIGKILLed between intent and outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from skyops.errors import PermissionDenied
from skyops.registry import audit as audit_module
from skyops.registry.audit import GENESIS, AuditLog, AuditLogError, Outcome, annotated_tail, dangling_message, record_hash, verify
from skyops.registry.models import ApprovalStatus, ModelRegistry
from skyops.registry.roles import Action, Governance
from skyops.training.tracking import TrackingStore

from .conftest import cli, register_version


@contextmanager
def unwritable(path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Make `path` refuse writes for real: immutable (chattr +i) as root, read-only (chmod) otherwise;
    where neither holds (root on a file system without the attribute), the log's open() fails as it would."""
    if os.geteuid() == 0 and shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        try:
            yield "immutable"
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    elif os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o444)
        try:
            yield "read-only"
        finally:
            path.chmod(mode)
    else:
        real_open = os.open

        def refuse(file: object, flags: int, *args: object) -> int:
            if Path(str(file)) == path and flags & (os.O_WRONLY | os.O_RDWR):
                raise PermissionError(1, "Operation not permitted", str(path))
            return real_open(file, flags, *args)  # type: ignore[arg-type]

        monkeypatch.setattr(audit_module.os, "open", refuse)
        yield "injected"


def _one_record(governance: Governance) -> None:
    with governance.action("alice", Action.APPROVE, "model m v1"):
        pass


# the intent cannot be written: the action does not happen


def test_an_unwritable_log_stops_the_action_before_it_runs(governance: Governance, tmp_path: Path, monkeypatch) -> None:
    _one_record(governance)  # the log exists, intact: two records
    before = governance.audit.path.read_bytes()
    observable = tmp_path / "deployed.txt"
    with (
        unwritable(governance.audit.path, monkeypatch),
        pytest.raises(AuditLogError) as caught,
        governance.action("alice", Action.DEPLOY, "model m v1@production", reason="release"),
    ):
        observable.write_text("deployed v1")
    assert not observable.exists()  # the block never ran
    assert caught.value.message.startswith(
        "not done: alice's deploy model m v1@production, because its intent could not be written first (cannot open the audit log "
    )
    assert "operation not permitted (EPERM)" in caught.value.message or "permission denied (EACCES)" in caught.value.message
    assert "lsattr" in caught.value.hint and caught.value.exit_code == 1
    assert governance.audit.path.read_bytes() == before
    assert verify(governance.audit.path).ok


def test_a_full_disk_stops_the_action_and_leaves_the_log_appendable(governance: Governance, monkeypatch, tmp_path: Path) -> None:
    _one_record(governance)
    before = governance.audit.path.read_bytes()
    monkeypatch.setenv("SKYOPS_FAULT_INJECT", f"ENOSPC:{governance.audit.path.name}")
    ran = []
    with (
        pytest.raises(AuditLogError, match=r"cannot write record 2 to the audit log .*: no space left on the device \(ENOSPC\)"),
        governance.action("alice", Action.PROMOTE, "model m v1"),
    ):
        ran.append(True)
    assert ran == [] and governance.audit.path.read_bytes() == before
    monkeypatch.delenv("SKYOPS_FAULT_INJECT")
    _one_record(governance)
    assert verify(governance.audit.path).records == 4


def test_a_torn_write_is_cut_off_so_the_log_still_chains(governance: Governance, monkeypatch) -> None:
    _one_record(governance)
    before = governance.audit.path.read_bytes()
    real_write = os.write

    def half_a_line(fd: int, data: bytes) -> int:  # a disk that fills up in the middle of the line
        return real_write(fd, data[: len(data) // 2])

    monkeypatch.setattr(audit_module.os, "write", half_a_line)
    ran = []
    with (
        pytest.raises(AuditLogError, match=r"cannot write record 2 to the audit log .*: no space left on the device"),
        governance.action("alice", Action.PROMOTE, "model m v1"),
    ):
        ran.append(True)
    assert ran == [] and governance.audit.path.read_bytes() == before
    monkeypatch.undo()
    _one_record(governance)
    assert verify(governance.audit.path).ok


def test_a_garbage_last_line_stops_the_action(governance: Governance) -> None:
    _one_record(governance)
    with governance.audit.path.open("ab") as file:
        file.write(b"\x00\x01 not a record\n")
    ran = []
    with (
        pytest.raises(AuditLogError, match=r"^not done: alice's approve model m v2, because .*its last line is not a record"),
        governance.action("alice", Action.APPROVE, "model m v2"),
    ):
        ran.append(True)
    assert ran == []


def test_a_denial_that_cannot_be_recorded_still_refuses(governance: Governance, monkeypatch) -> None:
    _one_record(governance)
    ran = []
    with (
        unwritable(governance.audit.path, monkeypatch),
        pytest.raises(PermissionDenied) as caught,
        governance.action("bob", Action.DELETE, "model m v1"),
    ):
        ran.append(True)
    assert ran == []
    assert caught.value.message.startswith(
        "bob (role data-scientist) may not delete model m v1: delete needs the role ml-engineer or admin; "
        "the denial could not be recorded either: cannot open the audit log "
    )


def test_an_outcome_that_cannot_be_written_leaves_the_intent_open(governance: Governance, monkeypatch) -> None:
    with (
        pytest.raises(AuditLogError, match=r"^alice's approve model m v1 succeeded, but its outcome could not be recorded \(intent seq 0"),
        governance.action("alice", Action.APPROVE, "model m v1"),
    ):
        monkeypatch.setenv("SKYOPS_FAULT_INJECT", f"ENOSPC:{governance.audit.path.name}")
    result = verify(governance.audit.path)
    assert result.ok and [r.seq for r in result.dangling] == [0]


def test_a_failing_block_keeps_its_own_error_when_the_outcome_is_lost(governance: Governance, monkeypatch) -> None:
    with pytest.raises(RuntimeError, match="endpoint unreachable") as caught, governance.action("alice", Action.DEPLOY, "endpoint prod"):
        monkeypatch.setenv("SKYOPS_FAULT_INJECT", f"ENOSPC:{governance.audit.path.name}")
        raise RuntimeError("endpoint unreachable")
    assert caught.value.__notes__[0].startswith("alice's deploy endpoint prod failed, but its outcome could not be recorded")


def test_an_immutable_log_keeps_the_version_pending(project: Path, store_dir: Path, capsys, model: str, monkeypatch) -> None:
    version = register_version(store_dir, model, 0.3)
    log = store_dir / "audit.log"
    assert cli(capsys, "models", "approve", str(version), "--as", "bob", "--model", model)[0] == 2  # a denial: the log exists
    registry = ModelRegistry(TrackingStore.local(store_dir), model)
    with unwritable(log, monkeypatch):
        code, _, err = cli(capsys, "models", "approve", str(version), "--as", "alice", "--model", model)
    assert code == 1 and err.startswith(
        f"error: not done: alice's approve {model}:{version}, because its intent could not be written first"
    )
    assert registry.get(version).status is ApprovalStatus.PENDING
    assert cli(capsys, "audit", "verify")[0] == 0


# a crash between intent and outcome


KILLED_IN_THE_BLOCK = """
import sys
from pathlib import Path
from skyops.registry.roles import Action, Governance

governance = Governance(Path(sys.argv[1]), Path(sys.argv[2]))
with governance.action("alice", Action.DEPLOY, "drone-detector:3@production", reason="release"):
    print("acting", flush=True)
    sys.stdin.read()  # blocks until the test kills this process
"""


def test_a_kill_between_intent_and_outcome_shows_in_verify_and_show(project: Path, store_dir: Path, capsys) -> None:
    log = store_dir / "audit.log"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_IN_THE_BLOCK, str(project), str(log)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"acting\n"
    finally:
        child.kill()
        child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    result = verify(log)
    assert result.ok and [(r.seq, r.actor, r.action, r.target) for r in result.dangling] == [
        (0, "alice", "deploy", "drone-detector:3@production")
    ]
    intent = result.dangling[0]
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 0
    assert (
        f"warning: intent without outcome: seq 0, alice, deploy, drone-detector:3@production, at {intent.time[:19]}: "
        "the action may or may not have happened; check drone-detector:3@production\n"
    ) in out
    code, out, _ = cli(capsys, "audit", "show")
    assert out.endswith('deploy  drone-detector:3@production  intent, NO OUTCOME: may or may not have happened  "release"\n')
    # a later action does not close it: it stays visible
    with Governance(project, log).action("alice", Action.APPROVE, "drone-detector:4"):
        pass
    assert [r.seq for r in verify(log).dangling] == [0]
    assert dangling_message(intent) in cli(capsys, "audit", "verify")[1]


# the record format: outcomes name their intent; old logs still verify


def test_an_outcome_must_close_an_open_intent_of_its_own(governance: Governance) -> None:
    _one_record(governance)
    log = governance.audit
    lines = log.path.read_bytes().splitlines(keepends=True)
    forged = json.loads(lines[1]) | {"action": "deploy", "prev": json.loads(lines[1])["prev"]}
    forged["hash"] = record_hash(forged)  # re-hashed: only the intent link gives it away
    log.path.write_bytes(lines[0] + json.dumps(forged).encode() + b"\n")
    result = verify(log.path)
    assert str(result.problem) == "line 2 (seq 1): its outcome closes intent seq 0 of alice approve model m v1, another action: forged"
    closes_nothing = json.loads(lines[1]) | {"intent": {"seq": 0, "hash": "f" * 64}}
    closes_nothing["hash"] = record_hash(closes_nothing)
    log.path.write_bytes(lines[0] + json.dumps(closes_nothing).encode() + b"\n")
    assert str(verify(log.path).problem).startswith("line 2 (seq 1): its outcome closes intent seq 0, which is not an open intent")


def test_a_log_written_before_intents_and_roles_hashes_still_verifies(audit_log: AuditLog) -> None:
    audit_log.path.parent.mkdir(parents=True)
    prev, lines = GENESIS, []
    for seq, outcome in enumerate(["succeeded", "denied", "failed"]):
        fields = {
            "seq": seq,
            "time": f"2026-01-0{seq + 1}T00:00:00.000000+00:00",
            "actor": "alice",
            "role": "ml-engineer",
            "action": "approve",
            "target": f"model m v{seq}",
            "outcome": outcome,
            "reason": "",
            "details": {},
            "prev": prev,
        }
        fields["hash"] = prev = record_hash(fields)
        lines.append(json.dumps(fields, sort_keys=True, separators=(",", ":")) + "\n")
    audit_log.path.write_text("".join(lines))
    result = verify(audit_log.path)
    assert result.ok and result.records == 3 and result.dangling == () and result.roles_changes == ()
    assert [r.roles for r in audit_log.records()] == [None, None, None]
    appended = audit_log.append(actor="a", role="admin", action="approve", target="m", outcome=Outcome.INTENT, roles="no-file")
    assert appended.seq == 3 and verify(audit_log.path).ok
    assert annotated_tail(audit_log.records(), 2)[0].endswith("approve  model m v2  failed")
