"""`skyops deploy plan|apply|status`: reconcile the desired state in deploy/environments/ (GitOps).

An environment's `target` says where its version is served: `local` (the default: the registry's
alias and the deployed record, here) or `sagemaker` (an endpoint, through the AWS profile guard:
`deploy_sagemaker`). Each command dispatches on it first.
"""

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
    help="GitOps: deploy/environments/<env>.yaml holds the desired model version; plan shows the gap, apply closes it, status shows what runs where.",
    no_args_is_help=True,
)

env_option = click.option("--env", "-e", default="production", help="Environment: a file in deploy/environments/.")


@app.command("plan")
@env_option
def plan_(env: str) -> None:
    """Show what `apply` would change. Exits 2, one line per problem, on a desired state apply would refuse:
    a version that does not exist or is not Approved, or registry state the audit log does not explain."""
    from skyops.registry.gitops import load_desired, plan
    from skyops.targets import Target

    s = settings()
    desired = load_desired(s.project_dir, env)
    if desired.target is Target.SAGEMAKER:
        from skyops.cli.deploy_sagemaker import plan_endpoint

        plan_endpoint(desired)
        return
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
    """Reconcile: move the alias and record the deployed state, or deploy the SageMaker endpoint; audited
    (ML Engineers only; Approved versions only)."""
    from skyops.registry.gitops import load_desired, plan
    from skyops.registry.governed import GovernedRegistry
    from skyops.targets import Target

    s = settings()
    desired = load_desired(s.project_dir, env)
    if desired.target is Target.SAGEMAKER:
        from skyops.cli.deploy_sagemaker import apply_endpoint

        apply_endpoint(desired, actor(as_))
        return
    reg = registry(desired.model)
    governed = GovernedRegistry(reg, governance())
    records = list(governed.governance.audit.records())
    before = plan(desired, reg, s.state_dir, records, rewrite_damaged=True)  # a damaged or contradicted record is rewritten
    if before.in_sync:  # nothing to do, so nothing to audit; but not "fine" when plan would refuse
        refuse_problems(desired, reg, records)
        print(f"{env}: nothing to do, already {desired.model} {_v(desired.version)} @{desired.alias}")
        return
    governed.deploy(actor(as_), desired, s.state_dir, changes=before.changes)
    for change in before.changes:
        print(f"applied: {change}")


@app.command()
@click.option("--env", "-e", default=None, help="Environment: a file in deploy/environments/. [default: every one]")
def status(env: str | None) -> None:
    """Show what runs where: the version each environment serves (for SageMaker: the endpoint, its config, capture,
    scaling, alarms, and how the last apply ended)."""
    from skyops.registry.gitops import ENVIRONMENTS, load_desired, read_deployed
    from skyops.targets import Target

    s = settings()
    for name in [env] if env is not None else sorted(p.stem for p in (s.project_dir / ENVIRONMENTS).glob("*.yaml")):
        desired = load_desired(s.project_dir, name)
        if desired.target is Target.SAGEMAKER:
            from skyops.cli.deploy_sagemaker import show_endpoint

            show_endpoint(desired)
            continue
        record, wanted = read_deployed(s.state_dir, name), f"desired {desired.model} {_v(desired.version)} @{desired.alias}"
        if record is None:
            print(f"{name}: local, nothing applied yet ({wanted})")
        else:
            print(
                f"{name}: local, {record['model']} {_v(record['version'])} @{record['alias']} applied by {record.get('applied_by', '?')} ({wanted})"
            )


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
