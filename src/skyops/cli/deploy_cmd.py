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
    """Show what `apply` would change (exit 0 either way)."""
    from skyops.registry.gitops import load_desired, plan

    s = settings()
    desired = load_desired(s.project_dir, env)
    result = plan(desired, registry(desired.model), s.state_dir)
    if result.in_sync:
        print(f"{env}: in sync ({desired.model} v{desired.version} @{desired.alias})")
    for change in result.changes:
        print(f"~ {change}")


@app.command()
@env_option
@click.option("--as", "as_", help="Act as this user.")
def apply(env: str, as_: str | None) -> None:
    """Reconcile: move the alias, record the deployed state, audit it (ML Engineers only; Approved versions only)."""
    from skyops.registry.gitops import apply as apply_plan
    from skyops.registry.gitops import load_desired, plan

    s = settings()
    desired = load_desired(s.project_dir, env)
    reg = registry(desired.model)
    before = plan(desired, reg, s.state_dir, rewrite_damaged=True)  # a damaged record is rewritten, not fatal
    if before.in_sync:
        print(f"{env}: nothing to do, already {desired.model} v{desired.version} @{desired.alias}")
        return
    apply_plan(before, reg, governance(), actor(as_), s.state_dir)
    for change in before.changes:
        print(f"applied: {change}")
