"""`skyops deploy plan|apply|status`: reconcile the desired state in deploy/environments/ (GitOps).

An environment's `target` says where its version is served: `local` (the default: the registry's
alias and the deployed record, here) or `sagemaker` (an endpoint, through the AWS profile guard:
`deploy_sagemaker`). Each command dispatches on it first.

On this machine an environment's version is served behind one stable address, blue/green
(skyops.deploy_local; deploy/environments/README.md): `apply` starts it beside the old one, checks it,
switches, and rolls back when the check fails; `status` shows what runs where.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from skyops.cli.common import actor, governance, registry, settings
from skyops.cli.params import FiniteRange
from skyops.cli.usage import SkyopsGroup

if TYPE_CHECKING:
    from skyops.deploy_local import LocalDeploy
    from skyops.registry.audit import AuditRecord
    from skyops.registry.gitops import DesiredState
    from skyops.registry.models import ModelRegistry
    from skyops.settings import Settings

app = SkyopsGroup(
    "deploy",
    help="GitOps: deploy/environments/<env>.yaml holds the desired model version; plan shows the gap, apply closes it, "
    "status shows what runs where.",
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
    changes = result.changes + _local(s).plan(desired).changes
    if not changes:
        print(f"{env}: in sync ({desired.model} {_v(desired.version)} @{desired.alias})")
    for change in changes:
        print(f"~ {change}")


@app.command()
@env_option
@click.option("--as", "as_", help="Act as this user.")
@click.option(
    "--wait", type=FiniteRange(min=0), default=0.0, help="Seconds to wait for another deploy to the environment to end (0: refuse)."
)
def apply(env: str, as_: str | None, wait: float) -> None:
    """Reconcile: serve the version behind the environment's address (blue/green: started beside the old one,
    checked, switched; rolled back when its check fails), move the alias, record the deployed state, audit it
    (ML Engineers only; Approved versions only)."""
    import functools

    from skyops.monitoring.notify import registry_observer
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
    governed = GovernedRegistry(reg, governance(), observer=registry_observer(s))
    who, local = actor(as_), _local(s)
    with local.lock(desired, who, wait=wait):
        records = list(governed.governance.audit.records())
        before = plan(desired, reg, s.state_dir, records, rewrite_damaged=True)  # a damaged or contradicted record is rewritten
        serving = local.plan(desired)
        changes = before.changes + serving.changes
        if not changes:  # nothing to do, so nothing to audit; but not "fine" when plan would refuse
            refuse_problems(desired, reg, records)
            print(f"{env}: nothing to do, already {desired.model} {_v(desired.version)} @{desired.alias}")
            return
        governed.deploy(who, desired, s.state_dir, changes=changes, serve=functools.partial(local.apply, serving, who))
    for change in changes:
        print(f"applied: {change}")


@app.command()
@click.option("--env", "-e", default=None, help="Environment: a file in deploy/environments/. [default: every one]")
def status(env: str | None) -> None:
    """Show what runs where: each environment's address, the version it serves, its processes, health and last change
    (for a SageMaker endpoint: its config, capture, scaling, alarms, and how the last apply ended)."""
    from skyops.deploy_local.status import environment_status, lines
    from skyops.registry.gitops import ENVIRONMENTS, load_desired
    from skyops.targets import Target

    s = settings()
    names = [env] if env is not None else sorted(p.stem for p in (s.project_dir / ENVIRONMENTS).glob("*.yaml"))
    for name in names:
        desired = load_desired(s.project_dir, name)
        if desired.target is Target.SAGEMAKER:
            from skyops.cli.deploy_sagemaker import show_endpoint

            show_endpoint(desired)
            continue
        for line in lines(environment_status(s.state_dir, desired)):
            print(line)


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


def _local(s: Settings) -> LocalDeploy:
    """The local target: servers and a router per environment on this machine, a version's package found in the registry."""
    from skyops.cli.serve_cmd import registered_package
    from skyops.deploy_local import LocalDeploy

    return LocalDeploy(s.state_dir, s.project_dir, locate=lambda model, version: registered_package(model, str(version)))


def _v(version: int | None) -> str:
    return "no version" if version is None else f"v{version}"
