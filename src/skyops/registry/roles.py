"""Who may do what: personas, actions, the permission table, the project's role file, and the gate.

    governance = Governance(project_dir, state_dir / "audit.log")
    actor = resolve_identity(args.as_user)                  # --as, else SKYOPS_USER, else the OS user
    with governance.action(actor, Action.APPROVE, "drone-detector:3", reason=note) as act:
        ...                                                 # do the approval
        act.details["stage"] = "Approved"
    # audited: 'denied' (and PermissionDenied raised) before the block runs, else 'succeeded' after it,
    # or 'failed' with the exception text when the block raised

Roles come from `skyops-roles.yaml` at the project root (see examples/skyops-roles.yaml):

    default_role: data-scientist     # or ml-engineer, admin, none (read only)
    users: {alice: ml-engineer, bob: data-scientist}

Without that file everyone is a data scientist, so nobody can approve until someone writes it.
This is a guard rail for honest people, not security: anyone can claim a name with `--as`. In AWS the
same split is enforced by IAM roles, which cannot be claimed.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from skyops.errors import ConfigError, PermissionDenied, problems_error
from skyops.registry.audit import AuditLog, AuditRecord, Outcome

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
    """The parsed role file. `exists` is False when the project has none (everyone gets `default_role`)."""

    source: Path
    exists: bool
    default_role: Role = Role.DATA_SCIENTIST
    users: Mapping[str, Role] = field(default_factory=dict)

    def role_of(self, actor: str) -> Role:
        return self.users.get(actor, self.default_role)


def load_roles(project_dir: Path) -> RoleMap:
    """Read and validate `skyops-roles.yaml` at the project root; every problem is reported at once.

    Raises:
        ConfigError: the file is not YAML, not a mapping, has unknown keys, or names an unknown role.
    """
    import yaml  # small, but only needed here

    path = Path(project_dir) / ROLES_FILE
    if not path.is_file():
        return RoleMap(source=path, exists=False)
    hint = "see examples/skyops-roles.yaml: `default_role: data-scientist` and `users: {alice: ml-engineer}`"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
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
    return RoleMap(source=path, exists=True, default_role=default_role, users=MappingProxyType(users))


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
    """An authorized action in progress; put what the audit record should keep into `details`."""

    actor: str
    role: Role
    action: Action
    target: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


class Governance:
    """The gate in front of every governed action: checks the actor's role, audits the outcome.

    Args:
        project_dir: the project root holding `skyops-roles.yaml` (read once, here).
        audit_log: the audit log, or its path.
    """

    def __init__(self, project_dir: Path, audit_log: AuditLog | Path) -> None:
        self.roles = load_roles(project_dir)
        self.audit = audit_log if isinstance(audit_log, AuditLog) else AuditLog(audit_log)

    def role_of(self, actor: str) -> Role:
        return self.roles.role_of(actor)

    def can(self, actor: str, action: Action) -> bool:
        """Whether `actor` may do `action` (no audit record: for showing what a user can do)."""
        return action in PERMISSIONS[self.role_of(actor)]

    def authorize(self, actor: str, action: Action, target: str, *, reason: str = "") -> Role:
        """The actor's role when they may do `action`; else audit a 'denied' record and raise.

        Allowed actions are not audited here: the caller records the outcome once the action is done
        (`record`), or uses `action(...)`, which does both.

        Raises:
            PermissionDenied: the actor's role does not allow the action (the denial is audited first).
        """
        role = self.role_of(actor)
        if action in PERMISSIONS[role]:
            return role
        self.audit.append(actor=actor, role=role, action=action, target=target, outcome=Outcome.DENIED, reason=reason)
        raise PermissionDenied(
            f"{actor} ({self._describe_role(actor, role)}) may not {action} {target}: "
            f"{action} needs the role {' or '.join(roles_allowed(action))}",
            hint=self._denied_hint(actor, action),
        )

    def record(
        self,
        actor: str,
        action: Action,
        target: str,
        *,
        outcome: Outcome,
        reason: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Audit the outcome of an action, with the actor's current role."""
        return self.audit.append(
            actor=actor, role=self.role_of(actor), action=action, target=target, outcome=outcome, reason=reason, details=details
        )

    @contextmanager
    def action(self, actor: str, action: Action, target: str, *, reason: str = "") -> Iterator[GovernedAction]:
        """Authorize, run the block, and audit 'succeeded', or 'failed' with the error when it raised.

        Raises:
            PermissionDenied: before the block runs, when the actor may not (audited as 'denied').
        """
        role = self.authorize(actor, action, target, reason=reason)
        act = GovernedAction(actor=actor, role=role, action=action, target=target, reason=reason)
        try:
            yield act
        except BaseException as exc:  # audit interrupts too, then let them through unchanged
            details = {**act.details, "error": f"{type(exc).__name__}: {exc}"}
            self.audit.append(actor=actor, role=role, action=action, target=target, outcome=Outcome.FAILED, reason=reason, details=details)
            raise
        self.audit.append(
            actor=actor, role=role, action=action, target=target, outcome=Outcome.SUCCEEDED, reason=reason, details=act.details
        )

    def _describe_role(self, actor: str, role: Role) -> str:
        if actor in self.roles.users:
            return f"role {role}"
        origin = f"default_role of {ROLES_FILE}" if self.roles.exists else f"the default, no {ROLES_FILE}"
        return f"role {role}, {origin}"

    def _denied_hint(self, actor: str, action: Action) -> str:
        who = "an ML Engineer" if action in _RELEASE else f"someone with the role {' or '.join(roles_allowed(action))}"
        ask = f"ask {who} to do it"
        if self.roles.exists:
            return f"{ask}, or have an admin change {actor}'s role in {self.roles.source}"
        return f"{ask}, or create {self.roles.source} giving {actor} a role (see examples/skyops-roles.yaml)"
