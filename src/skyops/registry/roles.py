"""Who may do what: personas, actions, the permission table, the project's role file, and the gate.

    governance = Governance(project_dir, state_dir / "audit.log")
    actor = resolve_identity(args.as_user)                  # --as, else SKYOPS_USER, else the OS user
    with governance.action(actor, Action.APPROVE, "drone-detector:3", reason=note) as act:
        ...                                                 # do the approval
        act.details["stage"] = "Approved"

The gate is write-ahead: a denied actor gets one 'denied' record and PermissionDenied before the
block; an allowed one gets an 'intent' record (fsync'd) before the block runs, and a 'succeeded'
or 'failed' record (with the error text) naming that intent after it. When the intent cannot be
written the block never runs (AuditLogError); when even a denial cannot be written the action is
still refused. `begin` / `finish` are the same two halves for an action that does not fit one block.

Roles come from `skyops-roles.yaml` at the project root (see examples/skyops-roles.yaml), read again
for every decision, and every record carries the sha256 of the file the decision was made under:

    default_role: data-scientist     # or ml-engineer, admin, none (read only)
    users: {alice: ml-engineer, bob: data-scientist}

Without that file everyone is a data scientist, so nobody can approve until someone writes it.
`skyops roles set USER ROLE --as ADMIN` changes it as an audited `manage-roles` action; an edit by
hand shows in `skyops audit verify` as a roles change made outside skyops.

This is a guard rail for honest people and a record that shows tampering, not security: anyone who
can write `.skyops/` and the project can rewrite the log and the roles file, and anyone can claim a
name with `--as`. In AWS the same split is IAM's to enforce, with roles that cannot be claimed.
"""

from __future__ import annotations

import getpass
import hashlib
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from skyops.errors import ConfigError, PermissionDenied, problems_error
from skyops.registry.audit import ROLES_NO_FILE, AuditLog, AuditLogError, AuditRecord, Outcome

ROLES_FILE = "skyops-roles.yaml"
USER_ENV = "SKYOPS_USER"


class Role(StrEnum):
    NONE = "none"  # no role assigned (an unknown user when default_role is none): read only
    DATA_SCIENTIST = "data-scientist"
    ML_ENGINEER = "ml-engineer"
    ADMIN = "admin"


class Action(StrEnum):
    READ = "read"
    EXPLORE = "explore"
    TRAIN = "train"
    REGISTER = "register"  # a new model version, always pending approval
    APPROVE = "approve"
    REJECT = "reject"
    PROMOTE = "promote"
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    DELETE = "delete"
    MANAGE_ROLES = "manage-roles"


_SCIENCE = frozenset({Action.READ, Action.EXPLORE, Action.TRAIN, Action.REGISTER})
_RELEASE = frozenset({Action.APPROVE, Action.REJECT, Action.PROMOTE, Action.DEPLOY, Action.ROLLBACK, Action.DELETE})

# The permission table. In AWS, IAM policies are to draw the same line (no templates for them in this repository yet).
PERMISSIONS: Mapping[Role, frozenset[Action]] = MappingProxyType(
    {
        Role.NONE: frozenset({Action.READ}),
        Role.DATA_SCIENTIST: _SCIENCE,
        Role.ML_ENGINEER: _SCIENCE | _RELEASE,
        Role.ADMIN: frozenset(Action),
    }
)


def roles_allowed(action: Action) -> tuple[Role, ...]:
    """The roles that may do `action`, in table order: roles_allowed(Action.APPROVE) -> (ml-engineer, admin)."""
    return tuple(role for role, actions in PERMISSIONS.items() if action in actions)


@dataclass(frozen=True)
class RoleMap:
    """The parsed role file. `exists` is False when the project has none (everyone gets `default_role`).

    `digest` is the sha256 of the bytes parsed (ROLES_NO_FILE without a file): what audit records carry.
    """

    source: Path
    exists: bool
    default_role: Role = Role.DATA_SCIENTIST
    users: Mapping[str, Role] = field(default_factory=dict)
    digest: str = ROLES_NO_FILE

    def role_of(self, actor: str) -> Role:
        return self.users.get(actor, self.default_role)


def load_roles(project_dir: Path) -> RoleMap:
    """Read and validate `skyops-roles.yaml` at the project root; every problem is reported at once.

    Raises:
        ConfigError: the file is not YAML, not a mapping, has unknown keys, or names an unknown role.
    """
    import yaml  # small, but only needed here

    path = Path(project_dir) / ROLES_FILE
    try:
        raw = path.read_bytes()  # read once: the digest is of the very bytes parsed
    except FileNotFoundError:
        return RoleMap(source=path, exists=False)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})", hint="make it readable for this user") from exc
    hint = "see examples/skyops-roles.yaml: `default_role: data-scientist` and `users: {alice: ml-engineer}`"
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}", hint=hint) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with keys default_role and users, found {type(data).__name__}", hint=hint)

    problems = [f"unknown key {key!r}; expected default_role or users" for key in data if key not in ("default_role", "users")]
    default_role = _role(data.get("default_role", Role.DATA_SCIENTIST.value), "default_role", problems)
    users_data = data.get("users") or {}
    users: dict[str, Role] = {}
    if not isinstance(users_data, dict):
        problems.append(f"users: expected a mapping of user name to role, found {type(users_data).__name__}")
        users_data = {}
    for name, role_name in users_data.items():
        if not isinstance(name, str) or not name.strip():
            problems.append(f"users: {name!r} is not a user name; expected a non-empty string")
            continue
        users[name.strip()] = _role(role_name, f"users.{name}", problems)
    if problems:
        raise problems_error(ConfigError, f"role file {path}", problems, hint=hint)
    digest = hashlib.sha256(raw).hexdigest()
    return RoleMap(source=path, exists=True, default_role=default_role, users=MappingProxyType(users), digest=digest)


def _role(value: Any, key: str, problems: list[str]) -> Role:
    if isinstance(value, str) and value in tuple(Role):
        return Role(value)
    problems.append(f"{key}: {value!r} is not a role; expected one of {', '.join(Role)}")
    return Role.NONE


def resolve_identity(explicit: str | None = None) -> str:
    """Who is acting: `--as NAME` when given, else $SKYOPS_USER (when non-empty), else the OS user.

    Raises:
        ConfigError: `--as` is blank, or no name can be found at all.
    """
    if explicit is not None:
        if not explicit.strip():
            raise ConfigError("--as was given an empty user name; expected a name such as alice", hint="pass --as NAME")
        return explicit.strip()
    from_env = os.environ.get(USER_ENV, "").strip()
    if from_env:
        return from_env
    try:
        return getpass.getuser()
    except (OSError, KeyError) as exc:  # no LOGNAME/USER and no passwd entry (e.g. a container's random uid)
        raise ConfigError(
            f"cannot tell who is acting: no --as, no ${USER_ENV}, and the OS user is unknown ({exc})",
            hint=f"pass --as NAME or set {USER_ENV}=NAME",
        ) from exc


@dataclass
class GovernedAction:
    """An authorized action in progress; put what the audit record should keep into `details`.

    `intent` is its intent record (written before the action ran); `roles` the roles hash it was decided under.
    """

    actor: str
    role: Role
    action: Action
    target: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    intent: AuditRecord | None = None
    roles: str = ROLES_NO_FILE


class Governance:
    """The gate in front of every governed action: checks the actor's role, audits intent and outcome.

    Args:
        project_dir: the project root holding `skyops-roles.yaml` (read here, and again for each decision).
        audit_log: the audit log, or its path.
    """

    def __init__(self, project_dir: Path, audit_log: AuditLog | Path) -> None:
        self.project_dir = Path(project_dir)
        self.roles = load_roles(self.project_dir)
        self.audit = audit_log if isinstance(audit_log, AuditLog) else AuditLog(audit_log)

    def role_of(self, actor: str) -> Role:
        return self.roles.role_of(actor)

    def can(self, actor: str, action: Action) -> bool:
        """Whether `actor` may do `action` (no audit record: for showing what a user can do)."""
        return action in PERMISSIONS[self.role_of(actor)]

    def authorize(self, actor: str, action: Action, target: str, *, reason: str = "") -> Role:
        """The actor's role when they may do `action`, under the roles file as it is now; else audit 'denied' and raise.

        Allowed actions are not audited here: `action(...)` (or `begin`/`finish`) writes their intent and outcome.

        Raises:
            PermissionDenied: the actor's role does not allow the action (the denial is audited first;
                if it cannot be, the message says so and the action is refused all the same).
            ConfigError: the roles file has become unreadable or invalid.
        """
        self.roles = load_roles(self.project_dir)  # the file in force now, not when this object was made
        role = self.role_of(actor)
        if action in PERMISSIONS[role]:
            return role
        denied = f"{actor} ({self._describe_role(actor, role)}) may not {action} {target}: {action} needs the role {' or '.join(roles_allowed(action))}"
        try:
            self.audit.append(
                actor=actor, role=role, action=action, target=target, outcome=Outcome.DENIED, reason=reason, roles=self.roles.digest
            )
        except AuditLogError as exc:
            raise PermissionDenied(f"{denied}; the denial could not be recorded either: {exc.message}", hint=exc.hint) from exc
        raise PermissionDenied(denied, hint=self._denied_hint(actor, action))

    def begin(
        self, actor: str, action: Action, target: str, *, reason: str = "", intended: Mapping[str, Any] | None = None
    ) -> GovernedAction:
        """Authorize, then write the intent record (fsync'd): only then may the caller act, and `finish` after.

        Args:
            intended: what the action is about to do, kept in the intent record's details.

        Raises:
            PermissionDenied: the actor may not (audited as 'denied').
            AuditLogError: the intent could not be written: the caller must not act.
        """
        role = self.authorize(actor, action, target, reason=reason)
        digest = self.roles.digest
        try:
            intent = self.audit.append(
                actor=actor, role=role, action=action, target=target, outcome=Outcome.INTENT, reason=reason, details=intended, roles=digest
            )
        except AuditLogError as exc:
            raise AuditLogError(
                f"not done: {actor}'s {action} {target}, because its intent could not be written first ({exc.message})", hint=exc.hint
            ) from exc
        return GovernedAction(actor=actor, role=role, action=action, target=target, reason=reason, intent=intent, roles=digest)

    def finish(self, act: GovernedAction, error: BaseException | None = None) -> AuditRecord:
        """Write the outcome of a begun action: 'succeeded', or 'failed' with `error`'s text; it names the intent.

        Raises:
            AuditLogError: the outcome could not be written; the action's intent stays open, so
                `skyops audit verify` warns that it may or may not have happened.
        """
        outcome, details = Outcome.SUCCEEDED, dict(act.details)
        if error is not None:
            outcome, details["error"] = Outcome.FAILED, f"{type(error).__name__}: {error}"
        try:
            return self.audit.append(
                actor=act.actor,
                role=act.role,
                action=act.action,
                target=act.target,
                outcome=outcome,
                reason=act.reason,
                details=details,
                roles=act.roles,
                intent=None if act.intent is None else act.intent.ref,
            )
        except AuditLogError as exc:
            seq = "?" if act.intent is None else act.intent.seq
            raise AuditLogError(
                f"{act.actor}'s {act.action} {act.target} {outcome}, but its outcome could not be recorded "
                f"(intent seq {seq} stays open): {exc.message}",
                hint=exc.hint,
            ) from exc

    @contextmanager
    def action(
        self, actor: str, action: Action, target: str, *, reason: str = "", intended: Mapping[str, Any] | None = None
    ) -> Iterator[GovernedAction]:
        """Authorize, write the intent, run the block, then write 'succeeded', or 'failed' with the error when it raised.

        Raises:
            PermissionDenied: before the block runs, when the actor may not (audited as 'denied').
            AuditLogError: before the block runs, when the intent cannot be written; or after a block that
                succeeded, when its outcome cannot be (a block that raised keeps its own exception, with a note).
        """
        act = self.begin(actor, action, target, reason=reason, intended=intended)
        try:
            yield act
        except BaseException as exc:  # audit interrupts too, then let them through unchanged
            try:
                self.finish(act, exc)
            except AuditLogError as lost:
                exc.add_note(lost.message)
            raise
        self.finish(act)

    def _describe_role(self, actor: str, role: Role) -> str:
        if actor in self.roles.users:
            return f"role {role}"
        origin = f"default_role of {ROLES_FILE}" if self.roles.exists else f"the default, no {ROLES_FILE}"
        return f"role {role}, {origin}"

    def _denied_hint(self, actor: str, action: Action) -> str:
        who = "an ML Engineer" if action in _RELEASE else f"someone with the role {' or '.join(roles_allowed(action))}"
        ask = f"ask {who} to do it"
        if self.roles.exists:
            return f"{ask}, or have an admin give {actor} a role (`skyops roles set {actor} ROLE --as ADMIN`) in {self.roles.source}"
        return f"{ask}, or create {self.roles.source} giving {actor} a role (see examples/skyops-roles.yaml)"
