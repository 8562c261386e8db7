"""`skyops infra deploy|status|outputs` against the moto server: change sets, their summary, idempotence, refusals.

moto's CloudFormation makes the buckets, roles, repository, topic and rules of the core template; the resources it
skips are listed in conftest.py and checked against botocore's request shapes in test_templates.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import MotoServer

from .conftest import COST_CENTER, DEPLOY, OWNER, Cli, admin
from .template import ACCOUNT, REGION

pytestmark = pytest.mark.usefixtures("cfn_outputs")

BUCKET = f"skyops-dev-{ACCOUNT}-{REGION}"
TAGS = {"Project": "skyops", "Environment": "dev", "Owner": OWNER, "CostCenter": COST_CENTER, "ManagedBy": "skyops-dev"}


def _tags(tag_list: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tag_list}


def test_deploy_creates_the_core_stack_then_a_second_deploy_changes_nothing(cli: Cli, moto: MotoServer, project: Path) -> None:
    code, out, err = cli(*DEPLOY)
    assert code == 0, err
    assert "skyops-dev: create, 17 resource changes:" in out  # moto lists the conditional ones too (e-mail, GitHub CI)
    assert "  Add      DataScientistRole                AWS::IAM::Role" in out.splitlines()
    assert "skyops-dev: CREATE_COMPLETE" in out
    assert "skyops-dev-studio: not deployed: give --vpc-id and --subnet-ids" in out
    s3, iam = admin(moto, "s3"), admin(moto, "iam")
    assert _tags(s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"]) == TAGS
    rule = s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert sorted(r["RoleName"] for r in iam.list_roles()["Roles"]) == [
        f"skyops-dev-{r}" for r in ("data-scientist", "ml-engineer", "pipeline")
    ]
    for role in ("pipeline", "data-scientist", "ml-engineer"):
        assert _tags(iam.get_role(RoleName=f"skyops-dev-{role}")["Role"]["Tags"]) == TAGS
    repository = admin(moto, "ecr").describe_repositories(repositoryNames=["skyops-dev"])["repositories"][0]
    assert repository["imageTagMutability"] == "IMMUTABLE"
    events = admin(moto, "events")
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:skyops-dev-alerts"
    for rule_name in ("pipeline-failed", "model-package-state", "drift-detected", "governance"):
        assert [t["Arn"] for t in events.list_targets_by_rule(Rule=f"skyops-dev-{rule_name}")["Targets"]] == [topic]
    drift = json.loads(events.describe_rule(Name="skyops-dev-drift-detected")["EventPattern"])
    assert drift == {"source": ["skyops"], "detail-type": ["drift.detected"]}
    stack = admin(moto, "cloudformation").describe_stacks(StackName="skyops-dev")["Stacks"][0]
    assert _tags(stack["Tags"]) == TAGS and stack["Outputs"]
    kept = json.loads((project / "infra" / "dev.json").read_text())
    assert kept["core"]["BucketName"] == BUCKET and (kept["profile"], kept["region"]) == ("ab", REGION)

    moto.counter.operations.clear()
    code, out, err = cli("infra", "deploy")  # Owner and CostCenter kept from the stack
    assert code == 0, err
    assert "skyops-dev: no changes" in out.splitlines()
    assert "ExecuteChangeSet" not in moto.operations and "DeleteChangeSet" in moto.operations
    log = [json.loads(line) for line in (project / "infra" / "actions.jsonl").read_text().splitlines()]
    assert [(r["action"], r["outcome"]) for r in log] == [
        ("deploy-stack", "started"),
        ("deploy-stack", "done"),
        ("deploy-stack", "no changes"),
    ]


def test_a_changed_parameter_is_summarised_and_applied(cli: Cli, moto: MotoServer, project: Path) -> None:
    assert cli(*DEPLOY)[0] == 0
    code, out, err = cli("infra", "deploy", "--budget-usd", "250", "--plan")
    assert code == 0, err
    assert "skyops-dev: update" in out and "plan only: nothing was changed" in out
    params = admin(moto, "cloudformation").describe_stacks(StackName="skyops-dev")["Stacks"][0]["Parameters"]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in params}["MonthlyBudgetUsd"] == "100"
    code, out, err = cli("infra", "deploy", "--budget-usd", "250")
    assert code == 0 and "skyops-dev: UPDATE_COMPLETE" in out, err
    params = admin(moto, "cloudformation").describe_stacks(StackName="skyops-dev")["Stacks"][0]["Parameters"]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in params}["MonthlyBudgetUsd"] == "250"
    assert "skyops-dev: no changes" in cli("infra", "deploy")[1]  # the new budget is kept


def test_a_plan_of_a_new_environment_leaves_no_stack_behind(cli: Cli, moto: MotoServer, project: Path) -> None:
    code, out, err = cli(*DEPLOY, "--plan")
    assert code == 0, err
    assert "skyops-dev: create, 17 resource changes:" in out and "plan only: nothing was changed" in out
    assert admin(moto, "cloudformation").list_stacks(StackStatusFilter=["REVIEW_IN_PROGRESS", "CREATE_COMPLETE"])["StackSummaries"] == []
    assert not (project / "infra" / "dev.json").exists()


def test_the_first_deploy_names_owner_and_cost_center_before_any_request(cli: Cli, moto: MotoServer, project: Path) -> None:
    code, _out, err = cli("infra", "deploy")
    assert code == 2
    assert err.splitlines()[:3] == [
        "error: 2 problems in skyops infra deploy --env dev:",
        "  - --cost-center is required for the first deploy of skyops-dev (the CostCenter tag of every resource)",
        "  - --owner is required for the first deploy of skyops-dev (the Owner tag of every resource)",
    ]
    assert moto.operations == ["DescribeStacks"]  # only the look for an existing stack whose values it would keep


def test_a_stack_of_that_name_that_is_not_skyops_is_never_changed(cli: Cli, moto: MotoServer, project: Path) -> None:
    foreign = "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n"
    admin(moto, "cloudformation").create_stack(StackName="skyops-dev", TemplateBody=foreign, Tags=[{"Key": "Project", "Value": "other"}])
    code, _out, err = cli(*DEPLOY)
    assert code == 1
    assert err.splitlines() == [
        "error: stack skyops-dev exists but is not skyops': Project='other', no Environment tag, no ManagedBy tag: not skyops' dev environment "
        "(expected Project=skyops, Environment=dev, ManagedBy=skyops-dev)",
        "hint: skyops changes only the stacks it created; choose another environment name with --env",
    ]
    assert "CreateChangeSet" not in moto.operations


def test_a_stack_left_rolled_back_is_refused_with_the_way_out(cli: Cli, moto: MotoServer, project: Path) -> None:
    assert cli(*DEPLOY)[0] == 0
    from moto.cloudformation.models import cloudformation_backends

    next(iter(cloudformation_backends[ACCOUNT][REGION].stacks.values())).status = "ROLLBACK_COMPLETE"  # a create that failed
    code, _out, err = cli("infra", "deploy")
    assert code == 1
    assert err.splitlines() == [
        "error: stack skyops-dev is ROLLBACK_COMPLETE and cannot be changed now",
        "hint: the stack failed to be created and holds nothing but its record: fix the cause above, remove it with "
        "`skyops infra destroy --env dev --yes` (skyops' own stacks only), then deploy again",
    ]


def test_status_and_outputs(cli: Cli, moto: MotoServer, project: Path) -> None:
    code, out, err = cli("infra", "status")
    assert code == 0 and out.splitlines()[1:] == [
        "skyops-dev               absent",
        "skyops-dev-studio        absent",
        "outputs  none kept",
    ], err
    assert cli(*DEPLOY)[0] == 0
    (project / "infra" / "dev.json").unlink()
    code, out, err = cli("infra", "outputs")
    assert code == 0, err
    assert f"skyops-dev               BucketName                 {BUCKET}" in out.splitlines()
    assert f"  SKYOPS_SAGEMAKER_BUCKET={BUCKET}" in out.splitlines()
    assert f"  SKYOPS_SAGEMAKER_ROLE_ARN=arn:aws:iam::{ACCOUNT}:role/skyops-dev-pipeline" in out.splitlines()
    assert (project / "infra" / "dev.json").exists()
    code, out, err = cli("infra", "status")
    assert code == 0 and out.splitlines()[1] == "skyops-dev               CREATE_COMPLETE", err


def test_an_update_that_rolls_back_names_the_failed_resource_and_the_way_out(
    cli: Cli, moto: MotoServer, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto never fails a change set's execution: here it ends as CloudFormation ends a failed update."""
    from moto.cloudformation.models import CloudFormationBackend, Event

    assert cli(*DEPLOY)[0] == 0

    def execute_and_roll_back(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        stack = next(iter(self.stacks.values()))
        reason = "Resource handler returned message: Budget limit must be at least 10 USD"
        stack.events.append(Event(stack.stack_id, stack.name, "MonthlyBudget", "b", "AWS::Budgets::Budget", "UPDATE_FAILED", reason, None))
        stack.status = "UPDATE_ROLLBACK_COMPLETE"

    monkeypatch.setattr(CloudFormationBackend, "execute_change_set", execute_and_roll_back)
    code, out, err = cli("infra", "deploy", "--budget-usd", "5")
    assert code == 1, out
    assert err.splitlines() == [
        "error: stack skyops-dev ended UPDATE_ROLLBACK_COMPLETE: MonthlyBudget (AWS::Budgets::Budget): "
        "Resource handler returned message: Budget limit must be at least 10 USD",
        "hint: the stack is back as it was before this deploy: fix the cause above, then deploy again",
    ]
    last = json.loads((project / "infra" / "actions.jsonl").read_text().splitlines()[-1])
    assert (last["action"], last["outcome"]) == ("deploy-stack", "failed") and "MonthlyBudget" in last["reason"]


def test_check_access_and_outputs_without_a_stack_say_to_deploy(cli: Cli, moto: MotoServer, project: Path) -> None:
    for command in ("check-access", "outputs"):
        code, _, err = cli("infra", command)
        assert code == 2
        assert err.splitlines() == [
            "error: environment dev has no stack skyops-dev (or it has no outputs yet) in this account and region",
            "hint: deploy it first: skyops infra deploy --env dev --owner TEAM --cost-center CC",
        ]
