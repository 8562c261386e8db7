"""Changing `skyops-roles.yaml` as an audited action: `set_role` (behind `skyops roles set USER ROLE --as ADMIN`).

The change is a `manage-roles` action through `Governance.action`, so only an admin may make it,
and its intent record declares the exact change (`roles_before` -> `roles_after`, the file's sha256
before and after). `skyops audit verify` reads those declarations: a roles hash that changes as an
intent declared is a change made through skyops; any other change was made by hand.

The file is rewritten whole, atomically (temp file, fsync, rename), in one canonical form: comments
are not kept (the example file, examples/skyops-roles.yaml, explains the roles).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from skyops.errors import ConfigError
from skyops.pipeline import faults
from skyops.registry.audit_verify import ROLES_AFTER, ROLES_BEFORE
from skyops.registry.roles import ROLES_FILE, Action, Governance, Role, load_roles

_HEADER = (
    "# Who may do what in this project (the roles: examples/skyops-roles.yaml).\n"
    "# Written by `skyops roles set USER ROLE --as ADMIN`: change it that way, so the change is audited;\n"
    "# an edit by hand shows in `skyops audit verify` as a roles change made outside skyops.\n"
)


@dataclass(frozen=True)
class RoleChange:
    """What `set_role` did: `user`'s role `before` (None: not listed, so the default applied) and `after`,
    and the file's sha256 before and after (equal when nothing changed)."""

    user: str
    before: Role | None
    after: Role
    roles_before: str
    roles_after: str

    @property
    def changed(self) -> bool:
        return self.roles_before != self.roles_after


def render_roles(default_role: Role, users: Mapping[str, Role]) -> str:
    """The canonical text of a roles file (users in the order given)."""
    import yaml  # small, but only needed here

    body = {"default_role": str(default_role), "users": {name: str(role) for name, role in users.items()}}
    return _HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, default_flow_style=False)


def set_role(governance: Governance, actor: str, user: str, role: Role, *, reason: str = "") -> RoleChange:
    """Give `user` the role `role` in the project's roles file, as `actor`'s audited manage-roles action.

    Raises:
        PermissionDenied: `actor` is not an admin (audited as 'denied'; the file is untouched).
        AuditLogError: the intent could not be written (the file is untouched).
        ConfigError: the user name is blank; the change would leave no admin; the file changed while
            this ran (audited as 'failed').
    """
    user = user.strip()
    if not user:
        raise ConfigError("roles set: the user name is empty; expected a name such as alice", hint="skyops roles set alice ml-engineer")
    current = load_roles(governance.project_dir)
    users = dict(current.users)
    before = users.get(user)
    users[user] = role
    text = render_roles(current.default_role, users)
    after = current.digest if before is role else hashlib.sha256(text.encode("utf-8")).hexdigest()
    change = RoleChange(user=user, before=before, after=role, roles_before=current.digest, roles_after=after)
    intended = {"user": user, "role": str(role), ROLES_BEFORE: current.digest, ROLES_AFTER: after}
    with governance.action(actor, Action.MANAGE_ROLES, f"{ROLES_FILE}:{user}", reason=reason, intended=intended) as act:
        if governance.roles.digest != current.digest:
            raise ConfigError(f"{current.source} changed while `roles set` was running; nothing was written", hint="run the command again")
        act.details.update({"user": user, "from": None if before is None else str(before), "to": str(role)})
        if not change.changed:
            return change
        if Role.ADMIN not in users.values() and current.default_role is not Role.ADMIN:
            raise ConfigError(
                f"refused: giving {user} the role {role} would leave {current.source} without an admin, so nobody could change it again",
                hint="give another user the role admin first",
            )
        _write_atomic(current.source, text)
        act.details.update({ROLES_BEFORE: change.roles_before, ROLES_AFTER: change.roles_after})
    return change


def _write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path` (same mode), fsync it, rename it over `path`, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with faults.writing("the roles file", path):
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
    except BaseException:
        with contextlib.suppress(OSError):  # the original error says more than a failed clean-up
            tmp.unlink(missing_ok=True)
        raise
