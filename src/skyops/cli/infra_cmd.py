"""`skyops infra deploy|status|outputs|destroy|check-access|upload-notebooks`: one environment's AWS infrastructure.

Every command sends its requests through the profile guard (`skyops.aws.session`, profile `ab` or
SKYOPS_AWS_PROFILE), which refuses before the first request of any kind unless the profile is the one in use.
What gets created, the roles and their separation, and what deploy and destroy will and will not do:
docs/infrastructure.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from skyops.aws.infra import GITHUB_OIDC_PROVIDER_ARN, GITHUB_REPOSITORY
from skyops.cli.common import settings
from skyops.cli.params import IntegerRange, Matching
from skyops.cli.usage import SkyopsGroup

if TYPE_CHECKING:
    from skyops.aws.infra import InfraEnvironment
    from skyops.aws.infra_deploy import StackRequest
    from skyops.aws.infra_log import ActionLog
    from skyops.aws.infra_outputs import InfraOutputs
    from skyops.aws.infra_stacks import Stack, Stacks
    from skyops.aws.session import AwsGuard, GuardReport

app = SkyopsGroup(
    "infra",
    help="The AWS infrastructure of one environment: CloudFormation stacks (bucket, image repository, roles, Studio, alerts, "
    "budget), their outputs as SageMaker settings, access checks and a safe destroy. See docs/infrastructure.md.",
    no_args_is_help=True,
)

env_option = click.option(
    "--env", "env_name", help="Environment: stacks skyops-ENV and skyops-ENV-studio. [env: SKYOPS_INFRA_ENV; default: dev]"
)


def _environment(env_name: str | None) -> InfraEnvironment:
    from skyops.aws.infra import infra_environment

    return infra_environment(env_name)


def _guard() -> tuple[AwsGuard, GuardReport]:
    """The guard of the configured profile, checked: AwsGuardError here, before any request, unless it is right."""
    from skyops.aws.session import AwsGuard

    guard = AwsGuard.from_settings(settings())
    return guard, guard.check()


def _log(command: str, env: InfraEnvironment, report: GuardReport) -> ActionLog:
    from skyops.aws.infra_log import ActionLog

    return ActionLog(settings().state_dir, command=command, environment=env.name, profile=report.profile, region=report.region)


@app.command()
@env_option
@click.option("--owner", help="Owner tag of every resource (required on the first deploy; kept afterwards).")
@click.option("--cost-center", help="CostCenter tag of every resource (required on the first deploy; kept afterwards).")
@click.option("--model-group", help="Model package group. [default: drone-detector, then kept]")
@click.option("--budget-usd", type=IntegerRange(min=1), help="Monthly budget in USD. [default: 100, then kept]")
@click.option("--alert-email", help="E-mail address subscribed to the alerts topic. [default: none, then kept]")
@click.option("--trusted-principal", help="IAM principal ARN allowed to assume the persona roles. [default: the account, then kept]")
@click.option("--noncurrent-days", type=IntegerRange(min=1), help="Days an old object version is kept. [default: 30, then kept]")
@click.option(
    "--github-repo",
    type=Matching(GITHUB_REPOSITORY, "OWNER/NAME of a GitHub repository, e.g. acme/skyops ('' for none)", empty_ok=True),
    help="Repository on GitHub (OWNER/NAME) whose workflows get the CI role (output GitHubCiRoleArn); '' removes it. "
    "[default: none, then kept]",
)
@click.option(
    "--github-oidc-provider-arn",
    type=Matching(GITHUB_OIDC_PROVIDER_ARN, "the ARN of an IAM OIDC provider of token.actions.githubusercontent.com", empty_ok=True),
    help="The account's existing GitHub OIDC provider (another environment's output GitHubOidcProviderArn). "
    "[default: created with the CI role, then kept]",
)
@click.option("--vpc-id", help="VPC of the Studio domain: deploys the Studio stack (with --subnet-ids).")
@click.option("--subnet-ids", help="Comma-separated subnets of the Studio domain, in --vpc-id.")
@click.option("--plan", "plan_only", is_flag=True, help="Show what would change, change nothing.")
def deploy(
    env_name: str | None,
    owner: str | None,
    cost_center: str | None,
    model_group: str | None,
    budget_usd: int | None,
    alert_email: str | None,
    trusted_principal: str | None,
    noncurrent_days: int | None,
    github_repo: str | None,
    github_oidc_provider_arn: str | None,
    vpc_id: str | None,
    subnet_ids: str | None,
    plan_only: bool,
) -> None:
    """Create or update the environment's stacks through change sets: the core stack, then Studio when a VPC is given.

    Prints what each change set changes before executing it; a second deploy with nothing new changes nothing.
    """
    from skyops.aws.infra_deploy import DeployOptions, core_request, refuse_foreign, studio_request
    from skyops.aws.infra_outputs import fetch_outputs, save_outputs
    from skyops.aws.infra_stacks import Stacks

    env = _environment(env_name)
    options = DeployOptions(
        owner=owner,
        cost_center=cost_center,
        model_group=model_group,
        budget_usd=budget_usd,
        alert_email=alert_email,
        trusted_principal=trusted_principal,
        noncurrent_days=noncurrent_days,
        github_repo=github_repo,
        github_oidc_provider_arn=github_oidc_provider_arn,
        vpc_id=vpc_id,
        subnet_ids=[s.strip() for s in subnet_ids.split(",") if s.strip()] if subnet_ids else None,
    )
    guard, report = _guard()
    project, stacks, log = settings().project_dir, Stacks(guard), _log("deploy", env, report)
    print(f"environment {env.name}: profile {report.profile}, region {report.region}")
    existing = stacks.describe(env.core_stack)
    refuse_foreign(env, existing)
    core = _apply(stacks, core_request(project, env, options, existing), existing, plan_only, log)
    studio_existing = stacks.describe(env.studio_stack)
    refuse_foreign(env, studio_existing)
    if core is None:
        print(f"{env.studio_stack}: planned once {env.core_stack} exists (it needs the core stack's roles)")
    elif (studio := studio_request(project, env, options, core, studio_existing)) is None:
        print(f"{env.studio_stack}: not deployed: give --vpc-id and --subnet-ids for the SageMaker Studio domain")
    else:
        _apply(stacks, studio, studio_existing, plan_only, log)
    if plan_only:
        print("plan only: nothing was changed")
        return
    outputs = fetch_outputs(stacks, env, report)
    if outputs is not None:
        path = save_outputs(settings().state_dir, outputs)
        print(f"outputs  kept in {path}: `skyops sagemaker compile|upsert` use them (an option or SKYOPS_SAGEMAKER_* still wins)")
    print(f"next     skyops infra check-access --env {env.name}; skyops sagemaker upsert")


def _apply(stacks: Stacks, request: StackRequest, existing: Stack | None, plan_only: bool, log: ActionLog) -> Stack | None:
    """Plan one stack's change set, print it, execute it unless `plan_only`; the stack afterwards (None: not created)."""
    from skyops.aws.infra import InfraError

    plan = stacks.plan(request.stack, request.body, request.parameters, request.tags, existing)
    if plan.change_set is None:
        print(f"{request.stack}: no changes")
        log.write("deploy-stack", f"stack {request.stack}", "no changes")
        return existing
    count = len(plan.changes)
    if count:
        print(f"{request.stack}: {'create' if plan.creates else 'update'}, {count} resource change{'s' * (count != 1)}:")
    else:
        print(f"{request.stack}: update of its parameters, tags or outputs only (no resource changes)")
    for change in plan.changes:
        print(f"  {change.line}")
    if plan_only:
        stacks.discard(plan)
        log.write("deploy-stack", f"stack {request.stack}", "planned (dry run)", f"{count} resource changes")
        return existing
    log.write("deploy-stack", f"stack {request.stack}", "started", f"change set {plan.change_set}")
    try:
        stack = stacks.execute(plan)
    except InfraError as e:
        log.write("deploy-stack", f"stack {request.stack}", "failed", e.message)
        raise
    log.write("deploy-stack", f"stack {request.stack}", "done", stack.status)
    print(f"{request.stack}: {stack.status}")
    return stack


@app.command()
@env_option
def status(env_name: str | None) -> None:
    """Show each stack's status (and why a failed one failed) and where its outputs are kept."""
    from skyops.aws.infra_outputs import kept_outputs, outputs_path
    from skyops.aws.infra_stacks import Stacks, recovery

    env = _environment(env_name)
    guard, report = _guard()
    stacks = Stacks(guard)
    print(f"environment {env.name}: profile {report.profile}, region {report.region}")
    for name in env.stacks:
        stack = stacks.describe(name)
        if stack is None:
            print(f"{name:24} absent")
            continue
        owner = "" if env.owns(stack.tags, name) else f"  NOT skyops': {env.why_not_owned(stack.tags, name)}"
        print(f"{name:24} {stack.status}" + (f": {stack.reason}" if stack.reason else "") + owner)
        if stack.status.endswith(("_FAILED", "ROLLBACK_COMPLETE", "_IN_PROGRESS")):
            print(f"{'':24} {recovery(name, stack.status, report.profile)}")
    kept = kept_outputs(settings().state_dir, env)
    print(f"outputs  {'read ' + kept.read_at + ', kept in ' + str(outputs_path(settings().state_dir, env)) if kept else 'none kept'}")


@app.command()
@env_option
@click.option("--json", "as_json", is_flag=True, help="Print the outputs as JSON.")
def outputs(env_name: str | None, as_json: bool) -> None:
    """Read the stacks' outputs, keep them for `skyops sagemaker`, and print them with the settings they provide."""
    from skyops.aws.infra_outputs import fetch_outputs, outputs_path, sagemaker_defaults, save_outputs
    from skyops.aws.infra_stacks import Stacks

    env = _environment(env_name)
    guard, report = _guard()
    found = _require_outputs(fetch_outputs(Stacks(guard), env, report), env)
    save_outputs(settings().state_dir, found)
    if as_json:
        print(json.dumps(found.to_json(), indent=2, sort_keys=True))
        return
    for stack, values in ((env.core_stack, found.core), (env.studio_stack, found.studio)):
        for key, value in sorted(values.items()):
            print(f"{stack:24} {key:26} {value}")
    print("SageMaker settings from them (an option or the variable itself still wins):")
    for name, value in sorted(sagemaker_defaults(found).items()):
        print(f"  {name}={value}")
    print(f"kept in {outputs_path(settings().state_dir, env)}")


def _require_outputs(found: InfraOutputs | None, env: InfraEnvironment, *keys: str) -> InfraOutputs:
    """The outputs, holding `keys`; ConfigError saying how to get them otherwise."""
    from skyops.errors import ConfigError

    if found is None:
        raise ConfigError(
            f"environment {env.name} has no stack {env.core_stack} (or it has no outputs yet) in this account and region",
            hint=f"deploy it first: skyops infra deploy --env {env.name} --owner TEAM --cost-center CC",
        )
    if missing := [key for key in keys if not found.core.get(key)]:
        raise ConfigError(
            f"stack {env.core_stack} has no output {', '.join(missing)}: it was not made from infra/cloudformation/skyops-core.yaml",
            hint=f"deploy it again from the template: skyops infra deploy --env {env.name}",
        )
    return found


@app.command()
@env_option
@click.option("--yes", is_flag=True, help="Delete for real. Without it: a dry run that deletes nothing.")
def destroy(env_name: str | None, yes: bool) -> None:
    """Delete the environment's own stacks and tagged buckets (emptied first); refuse anything not skyops'.

    A dry run unless --yes. Every decision, with its reason, goes to .skyops/infra/actions.jsonl.
    """
    from skyops.aws.infra_destroy import Step, log_dry_run, plan_destroy, run_destroy
    from skyops.aws.infra_outputs import forget_outputs

    env = _environment(env_name)
    guard, report = _guard()
    log = _log("destroy" if yes else "destroy --dry-run", env, report)
    actions = plan_destroy(guard, env)
    print(f"environment {env.name}: profile {report.profile}, region {report.region}")
    if not actions:
        print("nothing of this environment found")
    for action in actions:
        print(f"{action.step.value:24} {action.resource}: {action.reason}")
    if not yes:
        log_dry_run(actions, log)
        print(f"dry run: nothing was deleted (decisions logged in {log.path}); delete with: skyops infra destroy --env {env.name} --yes")
        return
    run_destroy(guard, actions, log)
    forget_outputs(settings().state_dir, env)
    deleted = sum(a.step in (Step.DELETE_STACK, Step.DELETE_BUCKET) for a in actions)
    refused = sum(a.step is Step.REFUSE for a in actions)
    print(f"done: {deleted} deleted, {refused} refused and left untouched; log: {log.path}")


@app.command("check-access")
@env_option
@click.pass_context
def check_access_cmd(ctx: click.Context, env_name: str | None) -> None:
    """Try every privileged action as the Data Scientist and the ML Engineer (assume-role) and print who IAM allowed.

    Each probe targets a resource that does not exist, so nothing is made or changed. Exit 1 when the Data Scientist
    is allowed a privileged action, or the ML Engineer denied one.
    """
    from skyops.aws.infra_access import DATA_SCIENTIST, ML_ENGINEER, ProbeTarget, check_access, expected
    from skyops.aws.infra_outputs import fetch_outputs
    from skyops.aws.infra_stacks import Stacks

    env = _environment(env_name)
    guard, report = _guard()
    keys = ("DataScientistRoleArn", "MLEngineerRoleArn", "BucketName", "ModelPackageGroupName")
    found = _require_outputs(fetch_outputs(Stacks(guard), env, report), env, *keys)
    roles = {DATA_SCIENTIST: found.core["DataScientistRoleArn"], ML_ENGINEER: found.core["MLEngineerRoleArn"]}
    arn = roles[DATA_SCIENTIST].split(":")
    target = ProbeTarget(
        bucket=found.core["BucketName"],
        model_group=found.core["ModelPackageGroupName"],
        region=report.region,
        account=arn[4],
        partition=arn[1],
    )
    matrix = check_access(guard, roles, target)
    print(f"{'action':34} {'IAM action':32} " + " ".join(f"{p:16}" for p in matrix.personas))
    for probe, cells in matrix.rows:
        marks = " ".join(
            f"{cells[p].verdict.value + (' ok' if cells[p].verdict is expected(probe, p) else ' WRONG'):16}" for p in matrix.personas
        )
        print(f"{probe.what + (' *' if probe.privileged else ''):34} {probe.action:32} {marks}")
    print("* privileged: only the ML Engineer may do it")
    if problems := matrix.mismatches():
        for line in problems:
            print(f"wrong: {line}")
        ctx.exit(1)
    print(
        f"ok: the Data Scientist is denied each of {sum(probe.privileged for probe, _ in matrix.rows)} privileged actions, the ML Engineer allowed"
    )


@app.command("upload-notebooks")
@env_option
@click.option("--source", type=click.Path(path_type=Path, file_okay=False), help="Folder of <persona>/*.ipynb. [default: notebooks/]")
def upload_notebooks_cmd(env_name: str | None, source: Path | None) -> None:
    """Put notebooks/<persona>/*.ipynb in the bucket under each persona's prefix, then say how to open them in Studio."""
    from skyops.aws.infra_notebooks import find_notebooks, upload_notebooks
    from skyops.aws.infra_outputs import fetch_outputs, save_outputs
    from skyops.aws.infra_stacks import Stacks

    env = _environment(env_name)
    found = find_notebooks(source or settings().project_dir / "notebooks")  # exit 2 before any request when there are none
    guard, report = _guard()
    outputs = _require_outputs(fetch_outputs(Stacks(guard), env, report), env, "BucketName")
    save_outputs(settings().state_dir, outputs)
    bucket = outputs.core["BucketName"]
    for path, uri in upload_notebooks(guard.client("s3"), bucket, found):
        print(f"uploaded {path} -> {uri}")
    _print_studio_steps(outputs, sorted(found), bucket, report)


def _print_studio_steps(outputs: InfraOutputs, personas: Sequence[str], bucket: str, report: GuardReport) -> None:
    domain = outputs.studio.get("DomainId")
    print("open them in SageMaker Studio:")
    if domain is None:
        print(f"  (no Studio domain yet: skyops infra deploy --env {outputs.environment} --vpc-id VPC --subnet-ids SUBNET,SUBNET)")
    for persona in personas:
        print(f"  {persona}:")
        if domain is not None:
            print(
                f"    1. aws sagemaker create-presigned-domain-url --domain-id {domain} --user-profile-name {persona} "
                f"--profile {report.profile} --region {report.region}   (open the AuthorizedUrl it prints)"
            )
        print(f"    2. in Studio's terminal: aws s3 sync s3://{bucket}/notebooks/{persona}/ ~/notebooks/{persona}/")
        print(f"    3. open ~/notebooks/{persona}/ in the file browser; save your changes back with the same sync, reversed")
