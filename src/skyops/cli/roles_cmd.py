"""`skyops roles show|set`: the project's skyops-roles.yaml, read, and changed as an admin's audited action."""

from __future__ import annotations

import click

from skyops.cli.common import actor, governance, settings
from skyops.cli.params import Choice, argument
from skyops.cli.usage import SkyopsGroup
from skyops.registry.roles import Role  # light: the heavy registry (MLflow) is not imported

ROLE_NAMES = tuple(role.value for role in Role)

app = SkyopsGroup(
    "roles",
    help="Who may do what: skyops-roles.yaml at the project root. `roles set` is an admin's audited manage-roles action; "
    "an edit by hand shows in `skyops audit verify` as a roles change made outside skyops.",
    no_args_is_help=True,
)


@app.command()
def show() -> None:
    """The roles file in force: its sha256 (as audit records carry it), the default role, each user's role, the permissions."""
    from skyops.registry.audit import short_roles
    from skyops.registry.roles import PERMISSIONS, load_roles

    roles = load_roles(settings().project_dir)
    if roles.exists:
        print(f"roles file {roles.source} (sha256 {short_roles(roles.digest)})")
    else:
        print(f"no roles file at {roles.source}: the defaults apply (audit records say 'no file')")
    print(f"default_role: {roles.default_role}")
    print("users:" if roles.users else "users: none listed")
    for user, role in sorted(roles.users.items()):
        print(f"  {user}: {role}")
    print("permissions:")
    for role, actions in PERMISSIONS.items():
        print(f"  {role}: {', '.join(sorted(actions))}")


@app.command("set")
@argument("user", metavar="USER", help="The user name (as --as, $SKYOPS_USER or the OS user gives it).")
@argument("role", metavar="ROLE", type=Choice(ROLE_NAMES), help=f"The new role: {', '.join(ROLE_NAMES)}.")
@click.option("--as", "as_", help="Act as this user, an admin (default: $SKYOPS_USER, else the OS user).")
@click.option("--reason", default="", show_default=False, help="Why: kept in the audit log.")
def set_(user: str, role: str, as_: str | None, reason: str) -> None:
    """Give USER the role ROLE (admins only): rewrites skyops-roles.yaml atomically, in canonical form (comments are not kept).

    The change is a `manage-roles` action in the audit log, its intent naming the file's sha256 before
    and after, so `skyops audit verify` tells it from an edit by hand. Denied for anyone but an admin
    (audited); refused when it would leave no admin.
    """
    from skyops.registry.audit import short_roles
    from skyops.registry.roles_file import set_role

    change = set_role(governance(), actor(as_), user, Role(role), reason=reason)
    if not change.changed:
        print(f"{change.user} already has the role {change.after}: nothing changed")
        return
    before = "the default role" if change.before is None else str(change.before)
    print(
        f"{change.user}: {before} -> {change.after} "
        f"(skyops-roles.yaml {short_roles(change.roles_before)} -> {short_roles(change.roles_after)}, audited)"
    )
