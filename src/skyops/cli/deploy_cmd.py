"""`skyops deploy plan|apply|status`: reconcile the desired state in deploy/environments/ (GitOps).

An environment's `target` says where its version is served: `local` (the default: the registry's
alias and the deployed record) or `sagemaker` (an endpoint, through the profile guard:
`skyops.aws.endpoint_deploy`). The SageMaker commands send requests only after the AWS guard accepts
the configured profile (SKYOPS_AWS_PROFILE, default `ab`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from skyops.cli.common import actor, governance, registry, settings
from skyops.cli.usage import SkyopsGroup

if TYPE_CHECKING:
    from skyops.aws.endpoint_deploy import EndpointDeployment
    from skyops.aws.model_packages import PackageGroupStore
    from skyops.registry.audit import AuditRecord
    from skyops.registry.gitops import DesiredState
    from skyops.registry.models import ModelRegistry

app = SkyopsGroup(
    "deploy",
    help="GitOps: deploy/environments/<env>.yaml holds the desired model version; plan shows the gap, apply closes it, status shows what runs where.",
    no_args_is_help=True,
)

env_option = click.option("--env", "-e", default="production", help="Environment: a file in deploy/environments/.")
REFUSED_HINT = "approve the version first (skyops models approve N), or put registry changes made outside skyops back through skyops"


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
        _plan_endpoint(desired)
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
    """Reconcile: move the alias, or deploy the SageMaker endpoint; audited (ML Engineers only; Approved versions only)."""
    from skyops.registry.gitops import load_desired, plan
    from skyops.registry.governed import GovernedRegistry
    from skyops.targets import Target

    s = settings()
    desired = load_desired(s.project_dir, env)
    if desired.target is Target.SAGEMAKER:
        _apply_endpoint(desired, actor(as_))
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
    """Show what runs where: the version each environment serves (for SageMaker: the endpoint, its config, capture, scaling, alarms)."""
    from skyops.registry.gitops import ENVIRONMENTS, load_desired
    from skyops.targets import Target

    s = settings()
    names = [env] if env is not None else sorted(p.stem for p in (s.project_dir / ENVIRONMENTS).glob("*.yaml"))
    for name in names:
        desired = load_desired(s.project_dir, name)
        if desired.target is Target.SAGEMAKER:
            _show_endpoint(desired)
        else:
            _show_local(desired)


def refuse_problems(desired: DesiredState, reg: ModelRegistry, records: Sequence[AuditRecord]) -> None:
    """Raise ConfigError, one line per problem, when apply would refuse `desired` (gitops.desired_problems)."""
    from skyops.errors import ConfigError, problems_error
    from skyops.registry.gitops import desired_problems

    problems = desired_problems(desired, reg, records)
    if problems:
        raise problems_error(ConfigError, f"the desired state {desired.source} (apply would refuse it)", problems, hint=REFUSED_HINT)


def _endpoint(desired: DesiredState) -> tuple[EndpointDeployment, PackageGroupStore]:
    """The environment's endpoint and its model's package group, through one guard (nothing is sent yet)."""
    from skyops.aws.endpoint_deploy import ROLE_ENV, EndpointDeployment
    from skyops.aws.model_packages import ModelPackages, PackageGroupStore
    from skyops.aws.session import AwsGuard

    packages = ModelPackages(AwsGuard.from_settings(settings()))
    return EndpointDeployment(packages, default_role_arn=os.environ.get(ROLE_ENV) or None), PackageGroupStore(packages, desired.model)


def _plan_endpoint(desired: DesiredState) -> None:
    from skyops.errors import ConfigError, problems_error
    from skyops.registry.gitops import version_problems

    deployment, store = _endpoint(desired)
    problems = deployment.problems(desired)  # no request
    problems += version_problems(desired, store.statuses())
    if problems:
        raise problems_error(ConfigError, f"the desired state {desired.source} (apply would refuse it)", problems, hint=REFUSED_HINT)
    result = deployment.plan(desired)
    if not result.changes:
        print(f"{desired.environment}: in sync ({_serves(desired, result.settings.endpoint)})")
    for change in result.changes:
        print(f"~ {change}")


def _apply_endpoint(desired: DesiredState, who: str) -> None:
    from skyops.registry.governed import GovernedRegistry

    deployment, store = _endpoint(desired)
    result = GovernedRegistry(store, governance()).deploy_to(who, desired, deployment)
    if not result.changes:
        print(f"{desired.environment}: nothing to do, already {_serves(desired, result.settings.endpoint)}")
    for change in result.changes:
        print(f"applied: {change}")


def _show_endpoint(desired: DesiredState) -> None:
    deployment, _ = _endpoint(desired)
    found = deployment.status(desired)
    head = f"{desired.environment}: SageMaker endpoint {found.endpoint}"
    if found.status is None:
        print(f"{head}: none (desired {desired.model} {_v(desired.version)})")
    else:
        print(f"{head}: {found.status}{' (' + found.failure_reason + ')' if found.failure_reason else ''}")
        serving = f"{desired.model} {_v(found.version)}" if found.version is not None else "a model not made from a package"
        print(f"  serving   {serving}{' (' + found.package_arn + ')' if found.package_arn else ''}; desired {_v(desired.version)}")
        print(f"  config    {found.config}: {found.instance_type}, {_count(found.instances)} now")
        print(f"  capture   {found.capture}")
        print(f"  scaling   {found.scaling}")
    print(f"  alarms    {', '.join(f'{name} {state}' for name, state in found.alarms.items())}")


def _show_local(desired: DesiredState) -> None:
    from skyops.registry.gitops import read_deployed

    record = read_deployed(settings().state_dir, desired.environment)
    wanted = f"desired {desired.model} {_v(desired.version)} @{desired.alias}"
    if record is None:
        print(f"{desired.environment}: local, nothing applied yet ({wanted})")
        return
    print(
        f"{desired.environment}: local, {record['model']} {_v(record['version'])} @{record['alias']} applied by {record.get('applied_by', '?')} ({wanted})"
    )


def _serves(desired: DesiredState, endpoint: str) -> str:
    if desired.version is None:
        return f"no SageMaker endpoint {endpoint}"
    return f"SageMaker endpoint {endpoint} serving {desired.model} v{desired.version}"


def _count(instances: int | None) -> str:
    return "? instances" if instances is None else f"{instances} instance{'s' if instances != 1 else ''}"


def _v(version: int | None) -> str:
    return "no version" if version is None else f"v{version}"
