"""`skyops deploy plan|apply`: reconcile the desired state in deploy/environments/ (GitOps)."""

from __future__ import annotations

import click

from skyops.cli.common import actor, governance, registry, settings
from skyops.cli.usage import SkyopsGroup

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
    from skyops.errors import ConfigError, problems_error
    from skyops.registry.gitops import desired_problems, load_desired, plan

    s = settings()
    desired = load_desired(s.project_dir, env)
    reg = registry(desired.model)
    records = list(governance().audit.records())
    problems = desired_problems(desired, reg, records)
    if problems:
        raise problems_error(
            ConfigError,
            f"the desired state {desired.source} (apply would refuse it)",
            problems,
            hint="approve the version first (skyops models approve N), or put registry changes made outside skyops back through skyops",
        )
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
    from skyops.registry.gitops import load_desired, plan
    from skyops.registry.governed import GovernedRegistry

    s = settings()
    desired = load_desired(s.project_dir, env)
    reg = registry(desired.model)
    governed = GovernedRegistry(reg, governance())
    before = plan(
        desired, reg, s.state_dir, list(governed.governance.audit.records()), rewrite_damaged=True
    )  # a damaged record is rewritten
    if before.in_sync:
        print(f"{env}: nothing to do, already {desired.model} {_v(desired.version)} @{desired.alias}")
        return
    governed.deploy(actor(as_), desired, s.state_dir, changes=before.changes)
    for change in before.changes:
        print(f"applied: {change}")


def _v(version: int | None) -> str:
    return "no version" if version is None else f"v{version}"
