"""`skyops deploy plan|apply`: reconcile the desired state in deploy/environments/ (GitOps)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from skyops.cli.common import actor, governance, registry, settings
from skyops.cli.usage import SkyopsGroup

if TYPE_CHECKING:
    from skyops.registry.audit import AuditRecord
    from skyops.registry.gitops import DesiredState
    from skyops.registry.models import ModelRegistry

app = SkyopsGroup(
    "deploy",
    help="GitOps: deploy/environments/<env>.yaml holds the desired model version; plan shows the gap, apply closes it.",
    no_args_is_help=True,
)

env_option = click.option("--env", "-e", default="production", help="Environment: a file in deploy/environments/.")


@app.command("plan")
@env_option
def plan_(env: str) -> None:
    """Show what `apply` would change. Exits 2, one line per problem, on a desired state apply would refuse:
    a version that does not exist or is not Approved, or registry state the audit log does not explain."""
    from skyops.registry.gitops import load_desired, plan

    s = settings()
    desired = load_desired(s.project_dir, env)
    reg = registry(desired.model)
    records = list(governance().audit.records())
    refuse_problems(desired, reg, records)
    result = plan(desired, reg, s.state_dir, records)
    if result.in_sync:
        print(f"{env}: in sync ({desired.model} {_v(desired.version)} @{desired.alias})")
    for change in result.changes:
        print(f"~ {change}")


@app.command()
@env_option
@click.option("--as", "as_", help="Act as this user.")
def apply(env: str, as_: str | None) -> None:
    """Reconcile: move the alias, record the deployed state, audit it (ML Engineers only; Approved versions only)."""
    from skyops.monitoring.notify import registry_observer
    from skyops.registry.gitops import load_desired, plan
    from skyops.registry.governed import GovernedRegistry

    s = settings()
    desired = load_desired(s.project_dir, env)
    reg = registry(desired.model)
    governed = GovernedRegistry(reg, governance(), observer=registry_observer(s))
    records = list(governed.governance.audit.records())
    before = plan(desired, reg, s.state_dir, records, rewrite_damaged=True)  # a damaged or contradicted record is rewritten
    if before.in_sync:  # nothing to do, so nothing to audit; but not "fine" when plan would refuse
        refuse_problems(desired, reg, records)
        print(f"{env}: nothing to do, already {desired.model} {_v(desired.version)} @{desired.alias}")
        return
    governed.deploy(actor(as_), desired, s.state_dir, changes=before.changes)
    for change in before.changes:
        print(f"applied: {change}")


def refuse_problems(desired: DesiredState, reg: ModelRegistry, records: Sequence[AuditRecord]) -> None:
    """Raise ConfigError, one line per problem, when apply would refuse `desired` (gitops.desired_problems)."""
    from skyops.errors import ConfigError, problems_error
    from skyops.registry.gitops import desired_problems

    problems = desired_problems(desired, reg, records)
    if problems:
        raise problems_error(
            ConfigError,
            f"the desired state {desired.source} (apply would refuse it)",
            problems,
            hint="approve the version first (skyops models approve N), or put registry changes made outside skyops back through skyops",
        )


def _v(version: int | None) -> str:
    return "no version" if version is None else f"v{version}"
