"""Checking the audit log: the chain, the intents, the roles hash, and the anchors.

`verify` reads the whole log once and reports:

1. **Fails** (`ok` False) at the first bad record: a line that is not a complete record (truncated,
   garbled, missing fields), a hash that does not match the content (edited), a seq that is not the
   next one (deleted, duplicated or reordered), a `prev` that is not the hash of the record before
   (inserted or forged), an outcome that closes no open intent of its own action (forged).
2. **Fails** when an anchor is given and the log does not match it: shorter than the anchor's count
   (records cut off, the log emptied or deleted), or a record at that count with another hash (the
   log rewritten and re-chained, e.g. without its denials). Without an anchor none of these shows.
3. **Warns** about every intent no outcome closes: the process died (or still runs) between the
   intent and the outcome, so the action may or may not have happened.
4. **Informs** where the roles hash changes between records: through skyops (an intent of
   `skyops roles set` declared that exact change) or outside skyops (the file was edited by hand).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from skyops.registry.anchor import Anchor
from skyops.registry.audit_record import GENESIS, AuditRecord, Outcome, parse_line, short_roles

ROLES_BEFORE, ROLES_AFTER = "roles_before", "roles_after"  # the details of an intent that changes the roles file


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
class RolesChange:
    """The roles hash changed at record `seq`; `by` is the intent that declared the change (None: outside skyops)."""

    seq: int
    before: str
    after: str
    by: AuditRecord | None

    def __str__(self) -> str:
        change = f"{short_roles(self.before)} -> {short_roles(self.after)}"
        if self.by is None:
            return f"roles file changed outside skyops at seq {self.seq}: {change}"
        return f"roles file changed at seq {self.seq}: {change} ({self.by.actor}'s {self.by.action}, intent seq {self.by.seq})"


def dangling_message(intent: AuditRecord) -> str:
    """The warning for an intent no outcome closes."""
    return (
        f"intent without outcome: seq {intent.seq}, {intent.actor}, {intent.action}, {intent.target}, at {intent.time[:19]}: "
        f"the action may or may not have happened; check {intent.target}"
    )


class Trail:
    """Follows records in order: which intents are still open, and where the roles hash changes."""

    def __init__(self) -> None:
        self.open: dict[int, AuditRecord] = {}  # seq -> intent no outcome has closed yet
        self.changes: list[RolesChange] = []
        self._roles: str | None = None  # the last roles hash seen
        self._declared: dict[tuple[str, str], AuditRecord] = {}  # (before, after) -> the intent that announced it

    def add(self, record: AuditRecord) -> str | None:
        """Take the next record; what is wrong with it (an outcome closing no open intent of its own), or None."""
        problem = self._close(record)
        if problem is None:
            self._follow_roles(record)
        return problem

    def _close(self, record: AuditRecord) -> str | None:
        if record.outcome is Outcome.INTENT:
            self.open[record.seq] = record
            return None
        ref = record.intent
        if ref is None:
            return None  # a denial, or an outcome written before intents existed
        intent = self.open.get(ref.seq)
        if intent is None or intent.hash != ref.hash:
            return f"its outcome closes intent seq {ref.seq}, which is not an open intent with hash {ref.hash[:16]}: the record was forged"
        if (intent.actor, intent.action, intent.target) != (record.actor, record.action, record.target):
            return f"its outcome closes intent seq {ref.seq} of {intent.actor} {intent.action} {intent.target}, another action: forged"
        del self.open[ref.seq]
        return None

    def _follow_roles(self, record: AuditRecord) -> None:
        if record.roles is None:
            return  # written before records carried the roles hash
        if self._roles is not None and record.roles != self._roles:
            self.changes.append(RolesChange(record.seq, self._roles, record.roles, self._declared.pop((self._roles, record.roles), None)))
        self._roles = record.roles
        before, after = record.details.get(ROLES_BEFORE), record.details.get(ROLES_AFTER)
        if record.outcome is Outcome.INTENT and isinstance(before, str) and isinstance(after, str):
            self._declared[(before, after)] = record


@dataclass(frozen=True)
class VerifyResult:
    """Args:
    path: the log checked.
    records: how many records are intact, counted from the start up to the first problem.
    head: the hash of the last intact record (GENESIS for none): with `records`, what an anchor pins.
    problem: the first bad record, or None when the whole chain is intact.
    dangling: intents no outcome closes (warnings: the action may or may not have happened).
    roles_changes: where the roles hash changed (information; outside skyops is worth a look).
    anchor_failures: one line per anchor the log does not match; anchors_matched: one per anchor it does.
    """

    path: Path
    records: int
    head: str
    problem: AuditProblem | None = None
    dangling: tuple[AuditRecord, ...] = ()
    roles_changes: tuple[RolesChange, ...] = ()
    anchor_failures: tuple[str, ...] = ()
    anchors_matched: tuple[str, ...] = ()
    anchored: bool = False  # at least one anchor was checked

    @property
    def ok(self) -> bool:
        return self.problem is None and not self.anchor_failures

    def summary(self) -> str:
        if self.problem is not None:
            return f"audit log {self.path} is damaged at {self.problem} ({self.records} records before it are intact)"
        if self.anchor_failures:
            return f"audit log {self.path} does not match its anchor: " + "; ".join(self.anchor_failures)
        return f"audit log {self.path}: {self.records} records, chain intact, head {self.head[:16]}"


def verify(path: Path, *, anchors: Sequence[Anchor] = ()) -> VerifyResult:
    """Check the whole log at `path` (see the module docstring); a missing log is intact with 0 records.

    Args:
        anchors: what the log must match (the anchor file, `--against HEAD[:COUNT]`); none: truncation,
            deletion and re-chaining cannot be told from an honest log.
    """
    path = Path(path)
    exists = path.exists()
    lines = path.read_bytes().split(b"\n") if exists else [b""]
    complete = lines[-1] == b""  # a write cut short leaves the last line without its newline
    if complete:
        lines.pop()
    parsed: list[tuple[AuditRecord, str] | str] = []
    where_seq: dict[int, int] = {}  # seq -> first line (1-based) holding it, to tell reordered from deleted
    for number, line in enumerate(lines, start=1):
        try:
            record, computed = parse_line(line)
        except ValueError as exc:
            parsed.append(str(exc))
            continue
        parsed.append((record, computed))
        where_seq.setdefault(record.seq, number)

    trail = Trail()
    hashes: list[str] = []  # of the intact records, in order
    problem: AuditProblem | None = None
    for number, item in enumerate(parsed, start=1):
        problem = _problem(
            number, item, len(hashes), hashes[-1] if hashes else GENESIS, where_seq, cut_short=not complete and number == len(parsed)
        )
        if problem is not None:
            break
        assert not isinstance(item, str)  # _problem reports every unparsed line
        record = item[0]
        message = trail.add(record)
        if message is not None:
            problem = AuditProblem(number, record.seq, message)
            break
        hashes.append(record.hash)

    log = "the log" + (" (missing)" if not exists else " (empty)" if not lines else "")
    failures, matched = [], []
    for anchor in anchors:
        failure = anchor.check(hashes, log)
        if failure is None:
            matched.append(anchor.matched())
        else:
            failures.append(failure)
    return VerifyResult(
        path=path,
        records=len(hashes),
        head=hashes[-1] if hashes else GENESIS,
        problem=problem,
        dangling=tuple(trail.open.values()),
        roles_changes=tuple(trail.changes),
        anchor_failures=tuple(failures),
        anchors_matched=tuple(matched),
        anchored=bool(anchors),
    )


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
