"""What the audit log says the registry should hold: a replay of the governed actions that succeeded.

The registry (MLflow's tags and aliases) and the pointer files beside it (`champions/<model>.json`,
`deployments/<env>.json`) can be changed by anyone who can write the store or the state folder. The
audit log is what skyops itself did. Replaying it says, for one model, which versions were registered
and with which approval status, where each alias was put, and, per environment, what was last
deployed; whatever differs from that was changed outside skyops (see `skyops.registry.drift`).

Only records whose `outcome` is "succeeded" are replayed: a denial, a failure or an intent (written
before the action, when it is not yet known whether it happened) changed nothing skyops vouches for.
Fields a record has beyond those read here are ignored.

The targets skyops writes (parsed by `parse_target`):

    register                    <model>        details: version, status, created
    approve / reject / delete   <model>:<version>
    promote                     <model>:<version>  details: previous (the champion it replaced, or null)
    rollback                    <model>@champion   details: from, to
    deploy                      <model>:<version or none>@<environment>  details: alias, version, previous
                                (to a SageMaker endpoint: target, endpoint, version, served_before: no alias)

MLflow-free and cheap: `skyops run` replays the log when it checks the champion pointer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from skyops.registry.audit import AuditRecord

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"  # a model or environment name: it goes into file names and targets
MODEL_NAME = re.compile(NAME)
_TARGET = re.compile(rf"^(?P<model>{NAME})(?::(?P<version>\d+|none|None))?(?:@(?P<at>{NAME}))?$")
SUCCEEDED = "succeeded"
APPROVED, REJECTED = "Approved", "Rejected"
CHAMPION, PREVIOUS = "champion", "previous"


@dataclass(frozen=True)
class Target:
    """A parsed audit target: the model, the version (None when the target names none) and what follows '@'."""

    model: str
    version: int | None
    at: str


def parse_target(target: str) -> Target | None:
    """The model, version and '@' part of a target skyops writes; None for other targets (a run, a file)."""
    m = _TARGET.match(target)
    if m is None:
        return None
    version = m.group("version")
    return Target(m.group("model"), int(version) if version and version.isdigit() else None, m.group("at") or "")


def model_of(target: str) -> str | None:
    """The model a target is about ('drone-detector:3@production' -> 'drone-detector'); None for other targets."""
    parsed = parse_target(target)
    return parsed.model if parsed is not None else None


@dataclass(frozen=True)
class Fact:
    """A value the audit log vouches for (a status, a version; None: removed), and the record that set it."""

    value: Any
    seq: int
    action: str

    def says(self, what: str) -> str:
        """'the audit log's last promote says v2 (seq 17)', for messages naming both sides."""
        return f"the audit log's last {self.action} says {what} (seq {self.seq})"


@dataclass
class AuditedModel:
    """One model as the audit log has it: registered versions, their statuses, its aliases."""

    name: str
    registered: dict[int, Fact] = field(default_factory=dict)  # version -> the register record (value: its status)
    statuses: dict[int, Fact] = field(default_factory=dict)  # version -> its approval status
    aliases: dict[str, Fact] = field(default_factory=dict)  # alias -> version (None: removed)

    def alias(self, alias: str) -> int | None:
        fact = self.aliases.get(alias)
        return None if fact is None else fact.value

    def describe_alias(self, alias: str) -> str:
        """What the log says about @alias, as a clause: "the audit log's last promote says v2 (seq 17)"."""
        fact = self.aliases.get(alias)
        if fact is None:
            return f"the audit log never set @{alias} of {self.name}"
        return fact.says("no version" if fact.value is None else f"v{fact.value}")


@dataclass(frozen=True)
class AuditedDeployment:
    """The last succeeded apply to one environment."""

    environment: str
    model: str
    alias: str
    version: int | None
    seq: int


def succeeded(records: Iterable[AuditRecord]) -> list[AuditRecord]:
    """The records of actions that happened (outcome "succeeded"), in log order."""
    return [r for r in records if str(r.outcome) == SUCCEEDED]


def replay(records: Iterable[AuditRecord], model: str) -> AuditedModel:
    """What the succeeded governed actions on `model` imply, mirroring what each action does to the registry."""
    state = AuditedModel(model)
    for record in succeeded(records):
        target = parse_target(record.target)
        if target is None or target.model != model:
            continue
        apply_record(state, record, target)
    return state


def apply_record(state: AuditedModel, record: AuditRecord, target: Target) -> None:
    """Advance `state` by one succeeded record (see the module docstring for what each action wrote)."""
    details, seq, action = record.details, record.seq, record.action
    version = _int(details.get("version"), target.version)
    if action == "register" and version is not None and details.get("created", True) is not False:
        status = str(details.get("status") or record.reason)  # records before skyops kept it in details had it as the reason
        state.registered[version] = state.statuses[version] = Fact(status, seq, action)
    elif action in ("approve", "reject") and version is not None:
        state.statuses[version] = Fact(APPROVED if action == "approve" else REJECTED, seq, action)
    elif action == "promote" and version is not None:
        _promote(state, version, details, seq, action)
    elif action == "rollback":
        to = _int(details.get("to"), None)
        if to is not None:
            state.aliases[CHAMPION] = Fact(to, seq, action)
            state.aliases[PREVIOUS] = Fact(None, seq, action)
    elif action == "deploy":
        alias = details.get("alias") or (CHAMPION if "previous" in details else None)  # older records named no alias
        if not isinstance(alias, str):
            return
        if version is None:
            state.aliases[alias] = Fact(None, seq, action)
        elif alias == CHAMPION:
            _promote(state, version, details, seq, action)
        else:
            state.aliases[alias] = Fact(version, seq, action)
    elif action == "delete" and version is not None:
        state.registered.pop(version, None)
        state.statuses.pop(version, None)
        for alias, fact in list(state.aliases.items()):
            if fact.value == version:
                state.aliases[alias] = Fact(None, seq, action)


def _promote(state: AuditedModel, version: int, details: dict[str, Any], seq: int, action: str) -> None:
    """@champion -> version; the champion it replaced (as the record names it) becomes @previous."""
    old = _int(details["previous"], None) if "previous" in details else state.alias(CHAMPION)
    if old is not None and old != version:
        state.aliases[PREVIOUS] = Fact(old, seq, action)
    state.aliases[CHAMPION] = Fact(version, seq, action)


def deployments(records: Iterable[AuditRecord]) -> dict[str, AuditedDeployment]:
    """Environment -> the last succeeded apply to it through the registry's alias (the local target).

    An apply to a SageMaker endpoint (details `target: sagemaker`) moves no alias and writes no deployed
    record: the endpoint says what it serves, so it is not what a deployed record is checked against.
    """
    found: dict[str, AuditedDeployment] = {}
    for record in succeeded(records):
        target = parse_target(record.target)
        if record.action != "deploy" or target is None or record.details.get("target", "local") != "local":
            continue
        environment = str(record.details.get("environment") or target.at)
        alias = str(record.details.get("alias") or CHAMPION)
        version = _int(record.details.get("version"), target.version)
        found[environment] = AuditedDeployment(environment, target.model, alias, version, record.seq)
    return found


def _int(value: Any, default: int | None) -> int | None:
    """A version from a record's details: an int (not a bool), else `default`."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default
