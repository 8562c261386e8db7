"""`skyops deploy plan|apply|status` for an environment served by a SageMaker endpoint (`target: sagemaker`).

`deploy_cmd` dispatches here on the environment's target. Each command builds the endpoint and its
model's package group over one AWS guard, which accepts or refuses the configured profile
(SKYOPS_AWS_PROFILE, default `ab`) before the first request; `apply` goes through
`GovernedRegistry.deploy_to` (role, Approved version, audit), as a notebook would.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from skyops.cli.common import governance, settings

if TYPE_CHECKING:
    from skyops.aws.endpoint_deploy import EndpointDeployment
    from skyops.aws.model_packages import PackageGroupStore
    from skyops.registry.audit import AuditRecord
    from skyops.registry.gitops import DesiredState

REFUSED_HINT = "deploy an Approved version registered with its model.tar.gz; see deploy/environments/README.md for the settings"


def plan_endpoint(desired: DesiredState) -> None:
    """Print what apply would change; ConfigError (exit 2), one line per problem, when apply would refuse."""
    from skyops.errors import ConfigError, problems_error
    from skyops.registry.gitops import version_problems

    deployment, store = _endpoint(desired)
    problems = deployment.problems(desired)  # no request
    problems += version_problems(desired, store.statuses())
    result = None if problems else deployment.plan(desired)
    if result is not None:
        problems += result.refusals
    if problems or result is None:
        raise problems_error(ConfigError, f"the desired state {desired.source} (apply would refuse it)", problems, hint=REFUSED_HINT)
    if not result.changes:
        print(f"{desired.environment}: in sync ({_serves(desired, result.settings.endpoint)})")
    for change in result.changes:
        print(f"~ {change}")


def apply_endpoint(desired: DesiredState, who: str) -> None:
    """Deploy through the governed registry and print what was done."""
    from skyops.registry.governed import GovernedRegistry

    deployment, store = _endpoint(desired)
    result = GovernedRegistry(store, governance()).deploy_to(who, desired, deployment)
    if not result.changes:
        print(f"{desired.environment}: nothing to do, already {_serves(desired, result.settings.endpoint)}")
    for change in result.changes:
        print(f"applied: {change}")


def show_endpoint(desired: DesiredState) -> None:
    """Print what the environment's endpoint is and serves, and how the last apply to it ended (the audit log)."""
    deployment, _ = _endpoint(desired)
    found = deployment.status(desired)
    head = f"{desired.environment}: SageMaker endpoint {found.endpoint}"
    if found.status is None:
        print(f"{head}: none (desired {desired.model} {_v(desired.version)})")
    else:
        print(f"{head}: {found.status}{' (' + found.failure_reason + ')' if found.failure_reason else ''}")
        serving = f"{desired.model} {_v(found.version)}" if found.version is not None else "a model not made from a package"
        print(f"  serving     {serving}{' (' + found.package_arn + ')' if found.package_arn else ''}; desired {_v(desired.version)}")
        print(f"  config      {found.config}: {found.instance_type}, {_count(found.instances)} now")
        print(f"  capture     {found.capture}")
        print(f"  scaling     {found.scaling}")
    print(f"  alarms      {', '.join(f'{name} {state}' for name, state in found.alarms.items())}")
    for line in _last_apply(desired.environment):
        print(f"  {line}")


def _endpoint(desired: DesiredState) -> tuple[EndpointDeployment, PackageGroupStore]:
    """The environment's endpoint and its model's package group, through one guard (nothing is sent yet)."""
    from skyops.aws.endpoint_deploy import ROLE_ENV, EndpointDeployment
    from skyops.aws.model_packages import ModelPackages, PackageGroupStore
    from skyops.aws.session import AwsGuard

    packages = ModelPackages(AwsGuard.from_settings(settings()))
    return EndpointDeployment(packages, default_role_arn=os.environ.get(ROLE_ENV) or None), PackageGroupStore(packages, desired.model)


def _last_apply(environment: str) -> list[str]:
    """How the last apply of `environment` to SageMaker ended, from the audit log: what a failed one had made,
    or that one has an intent and no outcome (stopped part-way); nothing when there was none."""
    from skyops.registry.audit import AuditLog, Outcome
    from skyops.registry.audit_record import AuditLogError

    try:
        last = _last_record(AuditLog(settings().state_dir / "audit.log").records(), environment)
    except AuditLogError as exc:
        return [f"last apply  unknown: {exc.message}"]
    if last is None:
        return []
    said = f"last apply  {last.time} by {last.actor}: {last.target}"
    if last.outcome is Outcome.INTENT:
        return [
            f"{said} has no outcome (stopped part-way?): `skyops deploy plan` shows what is left, `skyops audit verify` the open intent"
        ]
    if last.outcome is Outcome.SUCCEEDED:
        return [f"{said} succeeded"]
    error = str(last.details.get("error", "")).splitlines()[0] if last.details.get("error") else ""
    lines = [f"{said} {last.outcome}{': ' + error if error else ''}"]
    if made := last.details.get("done"):
        lines.append(f"made then    {', '.join(str(step) for step in made)}")
    return lines


def _last_record(records: Iterable[AuditRecord], environment: str) -> AuditRecord | None:
    last = None
    for record in records:
        if record.action == "deploy" and record.target.rpartition("@")[2] == environment and record.details.get("target") == "sagemaker":
            last = record
    return last


def _serves(desired: DesiredState, endpoint: str) -> str:
    if desired.version is None:
        return f"no SageMaker endpoint {endpoint}"
    return f"SageMaker endpoint {endpoint} serving {desired.model} v{desired.version}"


def _count(instances: int | None) -> str:
    return "? instances" if instances is None else f"{instances} instance{'s' if instances != 1 else ''}"


def _v(version: int | None) -> str:
    return "no version" if version is None else f"v{version}"
