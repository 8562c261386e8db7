"""Append-only, hash-chained audit log of governed actions (approve, promote, deploy, rollback, ...).

One record per line, each line the canonical JSON (sorted keys, no spaces) of:

    seq      0, 1, 2, ... in file order
    time     UTC, ISO 8601 with microseconds
    actor    who acted; role: their role when they acted ('none' when they had none)
    action   what they did; target: to what ('drone-detector:3', 'drone-detector@champion')
    outcome  denied (refused before acting) | succeeded | failed (the action raised)
    reason   the actor's note; details: an object of whatever the action wants kept
    prev     `hash` of the record before ('0' * 64 for the first)
    hash     sha256 of the canonical JSON of the record without `hash`

Editing, deleting, reordering or garbling a record breaks the chain, and `verify` names the first bad
record. A chain cannot catch someone who rewrites every record after the one they changed, or who cuts
records off the end: keep the head hash (`VerifyResult.head`) somewhere else to catch that too.

Writers in several threads and processes are serialized by an exclusive `flock` on the log itself: each
append reads the last record under the lock, then writes one line with a single `write` and an `fsync`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from skyops.errors import SkyopsError

GENESIS = "0" * 64  # `prev` of the first record
_TEXT_FIELDS = ("time", "actor", "role", "action", "target", "outcome", "reason", "prev", "hash")
_FIELDS = frozenset((*_TEXT_FIELDS, "seq", "details"))
_TAIL_BLOCK = 4096  # bytes read at a time, backwards, to find the last line


class Outcome(StrEnum):
    DENIED = "denied"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AuditLogError(SkyopsError):
    """The audit log cannot be read or appended to: a damaged line, or a file that cannot be written."""

    exit_code = 1


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One line of the audit log (see the module docstring for the fields)."""

    seq: int
    time: str
    actor: str
    role: str
    action: str
    target: str
    outcome: Outcome
    reason: str
    details: dict[str, Any]
    prev: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "target": self.target,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "details": self.details,
            "prev": self.prev,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class AuditProblem:
    """The first bad record of a log: its 1-based line number, its seq when readable, and what is wrong."""

    line: int
    seq: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (seq {self.seq})" if self.seq is not None else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class VerifyResult:
    """Args:
    path: the log checked.
    records: how many records are intact, counted from the start up to the first problem.
    head: the hash of the last intact record (GENESIS for none); store it elsewhere to detect a cut tail.
    problem: the first bad record, or None when the whole chain is intact.
    """

    path: Path
    records: int
    head: str
    problem: AuditProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def summary(self) -> str:
        if self.problem is None:
            return f"audit log {self.path}: {self.records} records, chain intact, head {self.head[:16]}"
        return f"audit log {self.path} is damaged at {self.problem} ({self.records} records before it are intact)"


def canonical_json(value: Any) -> bytes:
    """The one byte form that is hashed and written: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def record_hash(fields: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a record without its `hash` field."""
    body = {key: value for key, value in fields.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def format_record(record: AuditRecord) -> str:
    """One line for `skyops audit show`: '7  2026-05-01T10:00:00  alice (ml-engineer)  approve  model v3  succeeded  "note"'."""
    reason = f'  "{record.reason}"' if record.reason else ""
    return (
        f"{record.seq:>5}  {record.time[:19]}  {record.actor} ({record.role})  {record.action}  {record.target}  {record.outcome}{reason}"
    )


class AuditLog:
    """The audit log at `path` (created, with its folder, on the first append)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(
        self,
        *,
        actor: str,
        role: str,
        action: str,
        target: str,
        outcome: Outcome,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one record, chained to the last one, durably (fsync) and safely under concurrent writers.

        Raises:
            AuditLogError: the log's last line is damaged or edited (appending would chain onto a bad
                record), or the write was cut short.
            TypeError: `details` is not JSON (a bug in the caller).
        """
        try:
            details_copy = json.loads(canonical_json(dict(details or {})))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"audit details of {action} on {target} must be JSON (str, number, bool, list, dict): {exc}") from exc
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close(); blocks other threads and processes alike
            last = _last_record(fd, self.path)
            fields: dict[str, Any] = {
                "seq": 0 if last is None else last.seq + 1,
                "time": datetime.now(UTC).isoformat(timespec="microseconds"),
                "actor": str(actor),
                "role": str(role),
                "action": str(action),
                "target": str(target),
                "outcome": str(Outcome(outcome)),
                "reason": str(reason),
                "details": details_copy,
                "prev": GENESIS if last is None else last.hash,
            }
            fields["hash"] = record_hash(fields)
            line = canonical_json(fields) + b"\n"
            written = os.write(fd, line)  # one write of one whole line: O_APPEND puts it at the end
            if written != len(line):
                raise AuditLogError(
                    f"audit log {self.path}: only {written} of {len(line)} bytes of record {fields['seq']} were written",
                    hint="the disk may be full; run `skyops audit verify` once there is space",
                )
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)  # make the new file's directory entry durable too
        return _to_record(fields)

    def records(self) -> Iterator[AuditRecord]:
        """Every record in file order; raises AuditLogError at the first line that is not a record."""
        if not self.path.exists():
            return
        with self.path.open("rb") as file:
            for number, line in enumerate(file, start=1):
                try:
                    record, _ = _parse_line(line.rstrip(b"\n"))
                except ValueError as exc:
                    raise AuditLogError(
                        f"audit log {self.path}, line {number}: {exc}", hint="run `skyops audit verify` to check the whole chain"
                    ) from exc
                yield record

    def tail(self, count: int = 20) -> list[AuditRecord]:
        """The last `count` records, oldest first (for `skyops audit show`)."""
        return list(deque(self.records(), maxlen=count))

    def verify(self) -> VerifyResult:
        return verify(self.path)


def verify(path: Path) -> VerifyResult:
    """Check the whole chain of the log at `path` and name the first bad record.

    A record is bad when its line is not a complete record (truncated, garbled, missing fields), its
    hash does not match its content (edited), its seq is not the next one (deleted or reordered), or
    its `prev` is not the hash of the record before it (inserted, forged or rewritten). A missing log
    is intact with 0 records.
    """
    path = Path(path)
    if not path.exists():
        return VerifyResult(path=path, records=0, head=GENESIS)
    lines = path.read_bytes().split(b"\n")
    complete = lines[-1] == b""  # a write cut short leaves the last line without its newline
    if complete:
        lines.pop()
    parsed: list[tuple[AuditRecord, str] | str] = []
    where_seq: dict[int, int] = {}  # seq -> first line (1-based) holding it, to tell reordered from deleted
    for number, line in enumerate(lines, start=1):
        try:
            record, computed = _parse_line(line)
        except ValueError as exc:
            parsed.append(str(exc))
            continue
        parsed.append((record, computed))
        where_seq.setdefault(record.seq, number)

    expected, head = 0, GENESIS
    for number, item in enumerate(parsed, start=1):
        problem = _problem(number, item, expected, head, where_seq, cut_short=not complete and number == len(parsed))
        if problem is not None:
            return VerifyResult(path=path, records=expected, head=head, problem=problem)
        assert not isinstance(item, str)  # _problem reports every unparsed line
        expected, head = expected + 1, item[0].hash
    return VerifyResult(path=path, records=expected, head=head)


def _problem(
    number: int, item: tuple[AuditRecord, str] | str, expected: int, head: str, where_seq: Mapping[int, int], *, cut_short: bool
) -> AuditProblem | None:
    """What is wrong with line `number`, given the seq and hash the chain expects there (None: nothing)."""
    if isinstance(item, str):
        cause = "truncated (the last line has no newline)" if cut_short else "garbled"
        return AuditProblem(number, None, f"not a valid record, {cause}: {item}")
    record, computed = item
    if cut_short:
        return AuditProblem(number, record.seq, "truncated: the last line has no newline, so its write was cut short")
    if computed != record.hash:
        return AuditProblem(
            number,
            record.seq,
            f"hash mismatch: the record was edited after it was written (stored {record.hash[:16]}, computed {computed[:16]})",
        )
    if record.seq != expected:
        found = f"seq {record.seq} where seq {expected} was expected"
        if record.seq < expected:
            return AuditProblem(number, record.seq, f"{found}: the record is duplicated or moved")
        if where_seq.get(expected, 0) > number:
            return AuditProblem(number, record.seq, f"{found}: records are out of order (seq {expected} is at line {where_seq[expected]})")
        gone = f"seq {expected}" if record.seq == expected + 1 else f"seqs {expected}-{record.seq - 1}"
        return AuditProblem(number, record.seq, f"{found}: {gone} deleted")
    if record.prev != head:
        return AuditProblem(
            number,
            record.seq,
            f"prev {record.prev[:16]} is not the hash of the record before it ({head[:16]}): the record was forged or inserted",
        )
    return None


def _parse_line(line: bytes) -> tuple[AuditRecord, str]:
    """A record and the hash its content should have; ValueError saying what is wrong with the line."""
    try:
        fields = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from exc
    if not isinstance(fields, dict):
        raise ValueError(f"expected a JSON object, found {type(fields).__name__}")
    missing = sorted(_FIELDS - fields.keys())
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    wrong = [name for name in _TEXT_FIELDS if not isinstance(fields[name], str)]
    if not isinstance(fields["seq"], int) or isinstance(fields["seq"], bool) or fields["seq"] < 0:
        wrong.append("seq")
    if not isinstance(fields["details"], dict):
        wrong.append("details")
    if fields["outcome"] not in tuple(Outcome):
        wrong.append("outcome")
    if wrong:
        raise ValueError(f"field(s) of the wrong type or value: {', '.join(sorted(wrong))}")
    return _to_record(fields), record_hash(fields)


def _to_record(fields: Mapping[str, Any]) -> AuditRecord:
    return AuditRecord(
        seq=fields["seq"],
        time=fields["time"],
        actor=fields["actor"],
        role=fields["role"],
        action=fields["action"],
        target=fields["target"],
        outcome=Outcome(fields["outcome"]),
        reason=fields["reason"],
        details=fields["details"],
        prev=fields["prev"],
        hash=fields["hash"],
    )


def _last_record(fd: int, path: Path) -> AuditRecord | None:
    """The last record of the open log (None when empty), checked before anything is chained onto it."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    start, tail = size, b""
    while start > 0 and tail[:-1].rfind(b"\n") == -1:  # read backwards until the line before the last is in view
        step = min(_TAIL_BLOCK, start)
        start -= step
        tail = os.pread(fd, step, start) + tail
    hint = "run `skyops audit verify` to find the first bad record; keep the damaged log as evidence and start a new one"
    if not tail.endswith(b"\n"):
        raise AuditLogError(f"cannot append to audit log {path}: its last line is incomplete (a write was cut short)", hint=hint)
    last_line = tail[tail[:-1].rfind(b"\n") + 1 : -1]
    try:
        record, computed = _parse_line(last_line)
    except ValueError as exc:
        raise AuditLogError(f"cannot append to audit log {path}: its last line is not a record ({exc})", hint=hint) from exc
    if computed != record.hash:
        raise AuditLogError(f"cannot append to audit log {path}: its last record (seq {record.seq}) was edited (hash mismatch)", hint=hint)
    return record


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
