"""The audit log: the hash chain, tamper detection naming the first bad record, and concurrent writers."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyops.registry.audit import GENESIS, AuditLog, AuditLogError, Outcome, format_record, record_hash, verify


def _lines(log: AuditLog) -> list[bytes]:
    return log.path.read_bytes().splitlines(keepends=True)


def _rewrite(log: AuditLog, lines: list[bytes]) -> None:
    log.path.write_bytes(b"".join(lines))


def _edit(line: bytes, rehash: bool = False, **changes: object) -> bytes:
    fields = json.loads(line) | changes
    if rehash:
        fields["hash"] = record_hash(fields)
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode() + b"\n"


# the chain


def test_records_are_chained_canonical_json_lines(filled_log: AuditLog) -> None:
    records = list(filled_log.records())
    assert [r.seq for r in records] == [0, 1, 2, 3, 4]
    assert records[0].prev == GENESIS
    assert [r.prev for r in records[1:]] == [r.hash for r in records[:-1]]
    for line, record in zip(_lines(filled_log), records, strict=True):
        fields = json.loads(line)
        body = {k: v for k, v in fields.items() if k != "hash"}
        # the hash, computed here independently of the module: sha256 of sorted, space-free JSON
        assert fields["hash"] == hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        assert line == json.dumps(fields, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        assert record.to_dict() == fields
    assert records[3].target == "model m v3" and records[3].details == {"version": 3} and records[3].outcome is Outcome.SUCCEEDED
    assert records[0].time.endswith("+00:00")


def test_verify_intact_log_reports_count_and_head(filled_log: AuditLog) -> None:
    result = verify(filled_log.path)
    assert result.ok and result.records == 5 and result.problem is None
    assert result.head == list(filled_log.records())[-1].hash
    assert result.summary() == f"audit log {filled_log.path}: 5 records, chain intact, head {result.head[:16]}"


def test_missing_log_is_intact_and_empty(audit_log: AuditLog) -> None:
    result = audit_log.verify()
    assert result.ok and result.records == 0 and result.head == GENESIS
    assert list(audit_log.records()) == [] and audit_log.tail() == []


def test_tail_and_format_for_audit_show(filled_log: AuditLog) -> None:
    tail = filled_log.tail(2)
    assert [r.seq for r in tail] == [3, 4]
    line = format_record(tail[1])
    assert line.startswith("    4  ") and line.endswith('alice (ml-engineer)  approve  model m v4  succeeded  "note 4"')


def test_details_must_be_json(audit_log: AuditLog) -> None:
    with pytest.raises(TypeError, match="audit details of approve on m must be JSON"):
        audit_log.append(actor="a", role="admin", action="approve", target="m", outcome=Outcome.SUCCEEDED, details={"at": object()})
    with pytest.raises(TypeError, match="must be JSON"):
        audit_log.append(actor="a", role="admin", action="approve", target="m", outcome=Outcome.SUCCEEDED, details={"x": float("nan")})
    assert not audit_log.path.exists()


# tampering: verify names the first bad record


def test_edited_field_is_a_hash_mismatch(filled_log: AuditLog) -> None:
    lines = _lines(filled_log)
    lines[2] = _edit(lines[2], actor="mallory")
    _rewrite(filled_log, lines)
    result = verify(filled_log.path)
    assert not result.ok and result.records == 2
    assert result.problem is not None and (result.problem.line, result.problem.seq) == (3, 2)
    assert str(result.problem).startswith("line 3 (seq 2): hash mismatch: the record was edited after it was written")


def test_edited_and_rehashed_record_breaks_the_next_prev(filled_log: AuditLog) -> None:
    lines = _lines(filled_log)
    lines[2] = _edit(lines[2], rehash=True, outcome="denied")
    _rewrite(filled_log, lines)
    result = verify(filled_log.path)
    assert result.problem is not None
    assert str(result.problem).startswith("line 4 (seq 3): prev ")
    assert result.problem.message.endswith(
        "is not the hash of the record before it (" + json.loads(lines[2])["hash"][:16] + "): the record was forged or inserted"
    )


def test_deleted_record_is_a_seq_gap(filled_log: AuditLog) -> None:
    lines = _lines(filled_log)
    del lines[2]
    _rewrite(filled_log, lines)
    assert str(verify(filled_log.path).problem) == "line 3 (seq 3): seq 3 where seq 2 was expected: seq 2 deleted"
    del lines[0:2]
    _rewrite(filled_log, lines)
    assert str(verify(filled_log.path).problem) == "line 1 (seq 3): seq 3 where seq 0 was expected: seqs 0-2 deleted"


def test_swapped_records_are_out_of_order(filled_log: AuditLog) -> None:
    lines = _lines(filled_log)
    lines[2], lines[3] = lines[3], lines[2]
    _rewrite(filled_log, lines)
    assert (
        str(verify(filled_log.path).problem)
        == "line 3 (seq 3): seq 3 where seq 2 was expected: records are out of order (seq 2 is at line 4)"
    )


def test_duplicated_record_is_named(filled_log: AuditLog) -> None:
    lines = _lines(filled_log)
    lines.insert(2, lines[1])
    _rewrite(filled_log, lines)
    assert str(verify(filled_log.path).problem) == "line 3 (seq 1): seq 1 where seq 2 was expected: the record is duplicated or moved"


def test_forged_record_with_wrong_prev(filled_log: AuditLog) -> None:
    forged = {
        "seq": 5,
        "time": "2026-01-01T00:00:00.000000+00:00",
        "actor": "mallory",
        "role": "admin",
        "action": "deploy",
        "target": "model m v9",
        "outcome": "succeeded",
        "reason": "",
        "details": {},
        "prev": "f" * 64,
    }
    forged["hash"] = record_hash(forged)  # a self-consistent record: only the chain gives it away
    with filled_log.path.open("ab") as file:
        file.write(json.dumps(forged, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    result = verify(filled_log.path)
    assert result.records == 5
    assert str(result.problem).startswith("line 6 (seq 5): prev ffffffffffffffff is not the hash of the record before it")


def test_truncated_last_line(filled_log: AuditLog) -> None:
    data = filled_log.path.read_bytes()
    filled_log.path.write_bytes(data[:-20])
    result = verify(filled_log.path)
    assert result.problem is not None and (result.problem.line, result.problem.seq) == (5, None)
    assert result.problem.message.startswith("not a valid record, truncated (the last line has no newline): not JSON")
    filled_log.path.write_bytes(data[:-1])  # only the newline lost: the record parses but the write was cut short
    assert str(verify(filled_log.path).problem) == "line 5 (seq 4): truncated: the last line has no newline, so its write was cut short"


def test_garbled_and_incomplete_lines(filled_log: AuditLog) -> None:
    lines = _lines(filled_log)
    original = lines[1]
    lines[1] = b"\x00garbage\n"
    _rewrite(filled_log, lines)
    assert str(verify(filled_log.path).problem).startswith("line 2: not a valid record, garbled: not JSON")
    fields = json.loads(original)
    del fields["hash"]
    lines[1] = json.dumps(fields).encode() + b"\n"
    _rewrite(filled_log, lines)
    assert str(verify(filled_log.path).problem) == "line 2: not a valid record, garbled: missing field(s) hash"
    lines[1] = _edit(original, seq="1", details=[])
    _rewrite(filled_log, lines)
    assert str(verify(filled_log.path).problem) == "line 2: not a valid record, garbled: field(s) of the wrong type or value: details, seq"


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), new_byte=st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_is_detected(pristine_log_bytes: bytes, position: int, new_byte: int) -> None:
    position %= len(pristine_log_bytes)
    if pristine_log_bytes[position] == new_byte:
        new_byte = (new_byte + 1) % 256
    changed = bytearray(pristine_log_bytes)
    changed[position] = new_byte
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "audit.jsonl"
        path.write_bytes(bytes(changed))
        assert not verify(path).ok


@pytest.fixture(scope="module")
def pristine_log_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    log = AuditLog(tmp_path_factory.mktemp("pristine") / "audit.jsonl")
    for seq in range(3):
        log.append(
            actor="zoë", role="admin", action="deploy", target=f"endpoint {seq}", outcome=Outcome.FAILED, details={"n": seq, "ok": False}
        )
    return log.path.read_bytes()


# appending onto a damaged log is refused


def test_append_refuses_a_damaged_tail(filled_log: AuditLog) -> None:
    data = filled_log.path.read_bytes()
    kwargs = {"actor": "alice", "role": "ml-engineer", "action": "approve", "target": "m", "outcome": Outcome.SUCCEEDED}
    filled_log.path.write_bytes(data[:-1])
    with pytest.raises(AuditLogError, match=r"cannot append to audit log .*audit.jsonl: its last line is incomplete"):
        filled_log.append(**kwargs)  # type: ignore[arg-type]
    lines = data.splitlines(keepends=True)
    _rewrite(filled_log, [*lines[:-1], _edit(lines[-1], reason="changed")])
    with pytest.raises(AuditLogError, match=r"its last record \(seq 4\) was edited \(hash mismatch\)"):
        filled_log.append(**kwargs)  # type: ignore[arg-type]
    _rewrite(filled_log, [*lines, b"{}\n"])
    with pytest.raises(AuditLogError, match=r"its last line is not a record \(missing field\(s\) action, actor"):
        filled_log.append(**kwargs)  # type: ignore[arg-type]


def test_records_names_the_bad_line(filled_log: AuditLog) -> None:
    lines = _lines(filled_log)
    lines[3] = b"not json\n"
    _rewrite(filled_log, lines)
    with pytest.raises(AuditLogError, match=r"audit.jsonl, line 4: not JSON"):
        list(filled_log.records())


def test_appends_after_a_long_record_find_the_last_line(audit_log: AuditLog) -> None:
    # records longer than the 4 KiB block read backwards from the end
    for seq in range(3):
        audit_log.append(
            actor="bob",
            role="data-scientist",
            action="register",
            target="m",
            outcome=Outcome.SUCCEEDED,
            details={"blob": "x" * 9000 * (seq + 1)},
        )
    assert [r.seq for r in audit_log.records()] == [0, 1, 2]
    assert audit_log.verify().ok


# concurrent writers: processes and threads


def append_many(path: str, actor: str, count: int, threads: int) -> None:
    """Append `count` records from `threads` threads (runs in spawned processes too: top level on purpose)."""
    log = AuditLog(Path(path))

    def work(thread: int) -> None:
        for index in range(count // threads):
            log.append(actor=actor, role="ml-engineer", action="promote", target=f"{actor}-{thread}-{index}", outcome=Outcome.SUCCEEDED)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_concurrent_processes_and_threads_keep_one_chain(audit_log: AuditLog) -> None:
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=append_many, args=(str(audit_log.path), f"proc{n}", 50, 2)) for n in range(2)]
    for process in processes:
        process.start()
    append_many(str(audit_log.path), "parent", 20, 2)  # meanwhile, two threads of this process
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    records = list(audit_log.records())
    assert len(records) == 120
    assert [r.seq for r in records] == list(range(120))
    assert sorted(r.target for r in records) == sorted(
        [f"proc{n}-{t}-{i}" for n in range(2) for t in range(2) for i in range(25)]
        + [f"parent-{t}-{i}" for t in range(2) for i in range(10)]
    )
    result = audit_log.verify()
    assert result.ok and result.records == 120


# the write-ahead fields: roles and intent


def test_intent_and_roles_fields_are_chained_and_read_back(audit_log: AuditLog) -> None:
    intent = audit_log.append(actor="a", role="admin", action="deploy", target="m:1", outcome=Outcome.INTENT, roles="ab" * 32)
    outcome = audit_log.append(
        actor="a", role="admin", action="deploy", target="m:1", outcome=Outcome.SUCCEEDED, roles="ab" * 32, intent=intent.ref
    )
    first, second = (json.loads(line) for line in _lines(audit_log))
    assert (first["roles"], "intent" in first) == ("ab" * 32, False)
    assert second["intent"] == {"seq": 0, "hash": intent.hash} and second["hash"] == record_hash(second)
    assert list(audit_log.records()) == [intent, outcome] and outcome.to_dict() == second
    assert format_record(outcome).endswith("deploy  m:1  succeeded (intent 0)")
    assert format_record(intent, open_intent=True).endswith("deploy  m:1  intent, NO OUTCOME: may or may not have happened")
    with pytest.raises(ValueError, match="only a succeeded or failed outcome closes an intent, not denied"):
        audit_log.append(actor="a", role="admin", action="deploy", target="m:1", outcome=Outcome.DENIED, intent=intent.ref)


@pytest.mark.parametrize(
    ("changes", "wrong"),
    [
        ({"roles": 3}, "roles"),
        ({"intent": {"seq": 0, "hash": "x"}, "outcome": "denied"}, "intent"),
        ({"intent": {"seq": "0", "hash": "x"}}, "intent"),
        ({"intent": [0, "x"]}, "intent"),
    ],
)
def test_malformed_write_ahead_fields_are_garbled(filled_log: AuditLog, changes: dict[str, object], wrong: str) -> None:
    lines = _lines(filled_log)
    lines[1] = _edit(lines[1], rehash=True, **changes)
    _rewrite(filled_log, lines)
    assert str(verify(filled_log.path).problem) == f"line 2: not a valid record, garbled: field(s) of the wrong type or value: {wrong}"
