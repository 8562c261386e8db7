"""One record of the audit log: its fields, the one byte form that is hashed and written, and reading it back.

A record is one line, the canonical JSON (sorted keys, no spaces) of:

    seq      0, 1, 2, ... in file order
    time     UTC, ISO 8601 with microseconds
    actor    who acted; role: their role when they acted ('none' when they had none)
    action   what they did; target: to what ('drone-detector:3', 'drone-detector@champion')
    outcome  intent (about to act: written, and fsync'd, before the action runs)
             | succeeded | failed (the action raised) | denied (refused before acting: the only record)
    reason   the actor's note; details: an object of whatever the action wants kept
    roles    sha256 of the roles file the decision was made under (read for it), or "no-file" (defaults)
    intent   on a succeeded/failed record: {"seq", "hash"} of the intent record it closes
    prev     `hash` of the record before ('0' * 64 for the first)
    hash     sha256 of the canonical JSON of the record without `hash`

`roles` and `intent` are optional: records written before they existed (one outcome record per
action, written after it) read and verify as they always did; they just carry no roles hash and
close no intent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from skyops.errors import SkyopsError

GENESIS = "0" * 64  # `prev` of the first record
ROLES_NO_FILE = "no-file"  # the `roles` of a record written while the project had no roles file (defaults)
_TEXT_FIELDS = ("time", "actor", "role", "action", "target", "outcome", "reason", "prev", "hash")
_FIELDS = frozenset((*_TEXT_FIELDS, "seq", "details"))


class Outcome(StrEnum):
    INTENT = "intent"
    DENIED = "denied"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AuditLogError(SkyopsError):
    """The audit log cannot be read or appended to: a damaged line, or a file that cannot be written."""

    exit_code = 1


@dataclass(frozen=True)
class IntentRef:
    """The intent record an outcome closes: its seq and hash."""

    seq: int
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash}


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
    roles: str | None = None  # None: written before records carried the roles hash
    intent: IntentRef | None = None

    def to_dict(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
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
        if self.roles is not None:
            fields["roles"] = self.roles
        if self.intent is not None:
            fields["intent"] = self.intent.to_dict()
        return fields

    @property
    def ref(self) -> IntentRef:
        return IntentRef(self.seq, self.hash)


def canonical_json(value: Any) -> bytes:
    """The one byte form that is hashed and written: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def record_hash(fields: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a record without its `hash` field."""
    body = {key: value for key, value in fields.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def short_roles(digest: str | None) -> str:
    """A roles hash for people: its first 12 hex digits, 'no file' for the defaults, 'unknown' for old records."""
    if digest is None:
        return "unknown"
    return "no file" if digest == ROLES_NO_FILE else digest[:12]


def format_record(record: AuditRecord, *, open_intent: bool = False) -> str:
    """One line for `skyops audit show`: '7  2026-05-01T10:00:00  alice (ml-engineer)  approve  model v3  succeeded  "note"'.

    An outcome names the intent it closes ('succeeded (intent 6)'); `open_intent` marks an intent no
    outcome closes ('intent, NO OUTCOME: may or may not have happened').
    """
    outcome = str(record.outcome)
    if record.intent is not None:
        outcome += f" (intent {record.intent.seq})"
    elif open_intent:
        outcome += ", NO OUTCOME: may or may not have happened"
    reason = f'  "{record.reason}"' if record.reason else ""
    return f"{record.seq:>5}  {record.time[:19]}  {record.actor} ({record.role})  {record.action}  {record.target}  {outcome}{reason}"


def parse_line(line: bytes) -> tuple[AuditRecord, str]:
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
    if not _is_seq(fields["seq"]):
        wrong.append("seq")
    if not isinstance(fields["details"], dict):
        wrong.append("details")
    if fields["outcome"] not in tuple(Outcome):
        wrong.append("outcome")
    if "roles" in fields and not isinstance(fields["roles"], str):
        wrong.append("roles")
    if "intent" in fields:
        ref = fields["intent"]
        closes = fields["outcome"] in (Outcome.SUCCEEDED, Outcome.FAILED)
        if not (closes and isinstance(ref, dict) and _is_seq(ref.get("seq")) and isinstance(ref.get("hash"), str)):
            wrong.append("intent")
    if wrong:
        raise ValueError(f"field(s) of the wrong type or value: {', '.join(sorted(wrong))}")
    return to_record(fields), record_hash(fields)


def to_record(fields: Mapping[str, Any]) -> AuditRecord:
    ref = fields.get("intent")
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
        roles=fields.get("roles"),
        intent=None if ref is None else IntentRef(ref["seq"], ref["hash"]),
    )


def _is_seq(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
