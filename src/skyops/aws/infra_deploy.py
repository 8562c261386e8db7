"""What `skyops infra deploy` asks CloudFormation for: each stack's template, parameters and tags, in full.

A parameter not given on the command line keeps the value the stack has (read with DescribeStacks and passed again
explicitly), else the template's default; Owner and CostCenter have none, so the first deploy must name them. The
same command run twice therefore asks for the same stacks twice, and the second change set is empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from skyops.aws.infra import CORE_TEMPLATE, STUDIO_TEMPLATE, InfraEnvironment, InfraError, template_path
from skyops.aws.infra_stacks import Stack
from skyops.errors import ConfigError, problems_error
from skyops.settings import DEFAULT_MODEL

# The core template's parameters skyops sets, and their defaults (the template's own).
CORE_DEFAULTS = {
    "ModelPackageGroupName": DEFAULT_MODEL,
    "MonthlyBudgetUsd": "100",
    "AlertEmail": "",
    "TrustedPrincipalArn": "",
    "NoncurrentVersionDays": "30",
    "GitHubRepository": "",
    "GitHubOidcProviderArn": "",
}


@dataclass(frozen=True, kw_only=True)
class DeployOptions:
    """What the command line gave; None: keep the stack's value (or the default on the first deploy)."""

    owner: str | None = None
    cost_center: str | None = None
    model_group: str | None = None
    budget_usd: int | None = None
    alert_email: str | None = None
    trusted_principal: str | None = None
    noncurrent_days: int | None = None
    github_repo: str | None = None  # OWNER/NAME ('': none); validated by the CLI against the template's pattern
    github_oidc_provider_arn: str | None = None
    vpc_id: str | None = None
    subnet_ids: Sequence[str] | None = None


@dataclass(frozen=True)
class StackRequest:
    """One stack as a deploy asks for it."""

    stack: str
    template: Path
    parameters: Mapping[str, str]
    tags: Mapping[str, str]

    @property
    def body(self) -> str:
        return self.template.read_text(encoding="utf-8")


def core_request(project_dir: Path, env: InfraEnvironment, options: DeployOptions, existing: Stack | None) -> StackRequest:
    """The core stack's request.

    Raises:
        ConfigError: Owner or CostCenter missing on the first deploy (every problem at once).
    """
    given = {
        "Owner": options.owner,
        "CostCenter": options.cost_center,
        "ModelPackageGroupName": options.model_group,
        "MonthlyBudgetUsd": None if options.budget_usd is None else str(options.budget_usd),
        "AlertEmail": options.alert_email,
        "TrustedPrincipalArn": options.trusted_principal,
        "NoncurrentVersionDays": None if options.noncurrent_days is None else str(options.noncurrent_days),
        "GitHubRepository": options.github_repo,
        "GitHubOidcProviderArn": options.github_oidc_provider_arn,
    }
    kept = dict(existing.parameters) if existing is not None else {}
    values = {"Environment": env.name}
    problems = []
    for key, value in given.items():
        chosen = value if value is not None else kept.get(key, CORE_DEFAULTS.get(key))
        if chosen is None or (key in ("Owner", "CostCenter") and not chosen.strip()):
            flag = "--owner" if key == "Owner" else "--cost-center"
            problems.append(f"{flag} is required for the first deploy of {env.core_stack} (the {key} tag of every resource)")
        else:
            values[key] = chosen
    if problems:
        raise problems_error(
            ConfigError, f"skyops infra deploy --env {env.name}", problems, hint="e.g. --owner ml-platform --cost-center cc-1234"
        )
    tags = env.tags(env.core_stack, values["Owner"], values["CostCenter"])
    return StackRequest(env.core_stack, template_path(project_dir, CORE_TEMPLATE), values, tags)


def studio_request(
    project_dir: Path, env: InfraEnvironment, options: DeployOptions, core: Stack, existing: Stack | None
) -> StackRequest | None:
    """The Studio stack's request, or None when neither a VPC is given nor the stack exists (Studio is optional).

    Raises:
        ConfigError: a VPC without subnets or subnets without a VPC, on the first Studio deploy.
        InfraError: the core stack lacks the persona roles' outputs (it is not skyops' core stack).
    """
    kept = dict(existing.parameters) if existing is not None else {}
    vpc = options.vpc_id or kept.get("VpcId")
    subnets = ",".join(options.subnet_ids) if options.subnet_ids else kept.get("SubnetIds")
    if vpc is None and subnets is None:
        return None
    if not vpc or not subnets:
        missing = "--subnet-ids" if vpc else "--vpc-id"
        raise ConfigError(
            f"the Studio domain of {env.name} needs a VPC and its subnets: {missing} is missing",
            hint="give both, e.g. --vpc-id vpc-0abc --subnet-ids subnet-0a,subnet-0b",
        )
    roles = {key: core.outputs.get(key) for key in ("DataScientistRoleArn", "MLEngineerRoleArn")}
    if missing_roles := [key for key, value in roles.items() if not value]:
        raise InfraError(
            f"stack {core.name} has no output {', '.join(missing_roles)}: the Studio profiles need the persona roles",
            hint=f"deploy the core stack from infra/cloudformation/{CORE_TEMPLATE} first: skyops infra deploy --env {env.name}",
        )
    values = {
        "Environment": env.name,
        "Owner": core.parameters.get("Owner", ""),
        "CostCenter": core.parameters.get("CostCenter", ""),
        "VpcId": vpc,
        "SubnetIds": subnets,
        "DataScientistRoleArn": str(roles["DataScientistRoleArn"]),
        "MLEngineerRoleArn": str(roles["MLEngineerRoleArn"]),
    }
    tags = env.tags(env.studio_stack, values["Owner"], values["CostCenter"])
    return StackRequest(env.studio_stack, template_path(project_dir, STUDIO_TEMPLATE), values, tags)


def refuse_foreign(env: InfraEnvironment, stack: Stack | None) -> None:
    """InfraError when a stack of skyops' name exists without skyops' tags: deploy never changes another's stack."""
    if stack is not None and not env.owns(stack.tags, stack.name):
        raise InfraError(
            f"stack {stack.name} exists but is not skyops': {env.why_not_owned(stack.tags, stack.name)}",
            hint="skyops changes only the stacks it created; choose another environment name with --env",
        )
