"""Append-only, hash-chained, write-ahead audit log of governed actions (approve, promote, deploy, ...).

One record per line (the fields: `audit_record.py`). A governed action (`roles.Governance.action`)
writes an **intent** record, fsync'd, before it acts, and an outcome record (succeeded or failed,
naming the intent) after; when the intent cannot be written (a read-only or immutable log, a full
disk, a damaged last line) the action does not happen. A denial is one record, written before the
refusal. Every record carries the sha256 of the roles file in force.

What `skyops audit verify` detects (`audit_verify.py`):
- always: an edited, garbled, inserted, duplicated, reordered or deleted-in-the-middle record (the
  chain names the first bad one); an intent without an outcome (a warning: the action may or may not
  have happened); a roles file changed outside skyops (an information line);
- only with an anchor (`anchor.py`: `skyops audit anchor` / `--against HEAD:COUNT`): records cut off
  the end, an emptied or deleted log, a log rewritten with every record re-chained.
Nothing here stops someone who can write `.skyops/` and the anchor (and its git history) alike.

Writers in several threads and processes are serialized by an exclusive `flock` on the log itself: each
append reads the last record under the lock, then writes one line with a single `write` and an `fsync`;
a write that fails part way is cut back off (`ftruncate`) so the log stays appendable.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skyops.pipeline import faults
from skyops.registry.audit_record import (
    GENESIS,
    ROLES_NO_FILE,
    AuditLogError,
    AuditRecord,
    IntentRef,
    Outcome,
    canonical_json,
    format_record,
    parse_line,
    record_hash,
    short_roles,
    to_record,
)
from skyops.registry.audit_verify import AuditProblem, RolesChange, Trail, VerifyResult, dangling_message, verify

__all__ = [
    "GENESIS",
    "ROLES_NO_FILE",
    "AuditLog",
    "AuditLogError",
    "AuditProblem",
    "AuditRecord",
    "IntentRef",
    "Outcome",
    "RolesChange",
    "VerifyResult",
    "annotated_tail",
    "canonical_json",
    "dangling_message",
    "format_record",
    "record_hash",
    "short_roles",
    "verify",
]

_TAIL_BLOCK = 4096  # bytes read at a time, backwards, to find the last line
_WRITE_HINT = (
    "make the log writable again (a full disk: free space; a read-only mount; an immutable file: `lsattr`), then run `skyops audit verify`"
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
        roles: str | None = None,
        intent: IntentRef | None = None,
    ) -> AuditRecord:
        """Append one record, chained to the last one, durably (fsync) and safely under concurrent writers.

        Args:
            roles: the sha256 of the roles file in force (ROLES_NO_FILE for the defaults); None leaves it out.
            intent: the intent record a succeeded/failed outcome closes.

        Raises:
            AuditLogError: the record was not written: the log's last line is damaged or edited (appending
                would chain onto a bad record), or the file cannot be opened or written (read-only,
                immutable, full disk). A write that failed part way is cut back off.
            TypeError: `details` is not JSON; ValueError: `intent` given with an outcome that closes none
                (bugs in the caller).
        """
        try:
            details_copy = json.loads(canonical_json(dict(details or {})))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"audit details of {action} on {target} must be JSON (str, number, bool, list, dict): {exc}") from exc
        if intent is not None and Outcome(outcome) not in (Outcome.SUCCEEDED, Outcome.FAILED):
            raise ValueError(f"only a succeeded or failed outcome closes an intent, not {outcome}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise _write_error(self.path, "open", exc) from exc
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
            if roles is not None:
                fields["roles"] = str(roles)
            if intent is not None:
                fields["intent"] = intent.to_dict()
            fields["hash"] = record_hash(fields)
            self._write(fd, canonical_json(fields) + b"\n", fields["seq"])
        finally:
            os.close(fd)
        if created:
            try:
                _fsync_dir(self.path.parent)  # make the new file's directory entry durable too
            except OSError as exc:
                raise _write_error(self.path, "fsync the folder of", exc) from exc
        return to_record(fields)

    def _write(self, fd: int, line: bytes, seq: int) -> None:
        """Write one whole line (O_APPEND puts it at the end) and fsync it; on failure, cut off what was written."""
        size = os.fstat(fd).st_size
        try:
            faults.inject(self.path)  # tests: SKYOPS_FAULT_INJECT=ENOSPC:audit.log fails here, as a full disk would
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"only {written} of {len(line)} bytes were written")
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError as undo:
                raise _write_error(
                    self.path, f"write record {seq} (its partial line could not be cut off: {undo.strerror}) to", exc
                ) from exc
            raise _write_error(self.path, f"write record {seq} to", exc) from exc

    def records(self) -> Iterator[AuditRecord]:
        """Every record in file order; raises AuditLogError at the first line that is not a record."""
        if not self.path.exists():
            return
        try:
            with self.path.open("rb") as file:
                for number, line in enumerate(file, start=1):
                    try:
                        record, _ = parse_line(line.rstrip(b"\n"))
                    except ValueError as exc:
                        raise AuditLogError(
                            f"audit log {self.path}, line {number}: {exc}", hint="run `skyops audit verify` to check the whole chain"
                        ) from exc
                    yield record
        except OSError as exc:
            raise AuditLogError(f"cannot read the audit log {self.path}: {exc.strerror}", hint="make it readable for this user") from exc

    def outcomes(self) -> Iterator[AuditRecord]:
        """Every record that says how an action ended (succeeded, failed, denied): the intents left out."""
        return (record for record in self.records() if record.outcome is not Outcome.INTENT)

    def tail(self, count: int = 20) -> list[AuditRecord]:
        """The last `count` records, oldest first."""
        return list(deque(self.records(), maxlen=count))

    def verify(self) -> VerifyResult:
        return verify(self.path)


def annotated_tail(records: Iterable[AuditRecord], count: int) -> list[str]:
    """The last `count` records as `skyops audit show` prints them, oldest first.

    Each record is one `format_record` line; an intent no later record closes is marked NO OUTCOME,
    and a line before a record says when the roles hash changed there (`RolesChange`). The whole log
    is read, since a later record may close an intent. (`skyops audit verify` checks the chain.)
    """
    trail = Trail()
    window: deque[tuple[AuditRecord, RolesChange | None]] = deque(maxlen=count)
    for record in records:
        seen = len(trail.changes)
        trail.add(record)  # a forged outcome is verify's to report; here it is shown as written
        window.append((record, trail.changes[-1] if len(trail.changes) > seen else None))
    lines = []
    for record, change in window:
        if change is not None:
            lines.append(f"{'':>5}  -- {change}")
        lines.append(format_record(record, open_intent=record.seq in trail.open))
    return lines


def _write_error(path: Path, doing: str, exc: OSError) -> AuditLogError:
    known = faults.ENVIRONMENT_ERRNOS.get(exc.errno or 0)
    meaning = known[0] if known else (exc.strerror or str(exc))
    code = f" ({errno.errorcode[exc.errno]})" if exc.errno is not None and exc.errno in errno.errorcode else ""
    return AuditLogError(f"cannot {doing} the audit log {path}: {meaning}{code}", hint=_WRITE_HINT)


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
        record, computed = parse_line(last_line)
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
