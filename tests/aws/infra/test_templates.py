"""The CloudFormation templates themselves: cfn-lint and checkov clean, every skip explained, every resource tagged,
and each resource moto cannot make checked against botocore's request shape of the call CloudFormation makes for it.

moto 5.2.5 lacks SageMaker's CreateUserProfile altogether and, in its CloudFormation, AWS::SageMaker::Domain,
AWS::SageMaker::UserProfile, AWS::SageMaker::ModelPackageGroup, AWS::Budgets::Budget, AWS::S3::BucketPolicy and
AWS::SNS::TopicPolicy; the first test fails when that changes, so these tests can then be made real.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skyops.aws.infra import PERSONAS
from skyops.aws.infra_access import PROBES
from skyops.settings import DEFAULT_MODEL
from tests.sagemaker.constraints import constraint_problems

from .template import ACCOUNT, CORE, ROOT, STUDIO, TEMPLATES, Values, load_template, parameter_values, resolve

TAGS = ("Project", "Environment", "Owner", "CostCenter", "ManagedBy")
UNTAGGABLE = {
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
    "AWS::SNS::Subscription",
    "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SecurityGroupEgress",
}
NOT_IN_MOTO_CFN = {
    "AWS::SageMaker::Domain",
    "AWS::SageMaker::UserProfile",
    "AWS::SageMaker::ModelPackageGroup",
    "AWS::Budgets::Budget",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::TopicPolicy",
}
CHECKOV = ROOT / ".skyops" / "tools" / "checkov-venv" / "bin" / "checkov"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/skyops-dev-"


def _values(path: Path, given: dict[str, Any]) -> Values:
    stack = "skyops-dev-studio" if path == STUDIO else "skyops-dev"
    return Values(
        parameters=parameter_values(load_template(path), {"Owner": "ml-platform", "CostCenter": "cc-1234", **given}, stack),
        physical={
            "ArtifactBucket": f"skyops-dev-{ACCOUNT}-eu-west-1",
            "AlertsTopic": f"arn:aws:sns:eu-west-1:{ACCOUNT}:skyops-dev-alerts",
            "StudioSecurityGroup": "sg-0123456789abcdef0",
        },
        attributes={"Domain.DomainId": "d-0123456789ab", "ArtifactBucket.Arn": f"arn:aws:s3:::skyops-dev-{ACCOUNT}-eu-west-1"},
    )


def test_what_moto_lacks_is_still_lacking() -> None:
    from moto.cloudformation.parsing import resource_class_from_type
    from moto.sagemaker.responses import SageMakerResponse

    assert not hasattr(SageMakerResponse, "create_user_profile")
    assert {kind for kind in NOT_IN_MOTO_CFN if resource_class_from_type(kind) is None} == NOT_IN_MOTO_CFN


def test_cfn_lint_finds_nothing() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), *map(str, sorted(TEMPLATES.glob("*.yaml")))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@pytest.mark.slow  # about 20 s; `make lint` runs it too, CI's test-slow after `make lint` made the venv
@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov lives in its own venv: `make checkov` installs it")
def test_checkov_finds_nothing_and_each_skip_says_why() -> None:
    done = subprocess.run(
        [str(CHECKOV), "-d", str(TEMPLATES), "--framework", "cloudformation", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    assert report["summary"]["failed"] == 0 and done.returncode == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    skipped = report["results"]["skipped_checks"]
    assert skipped and all(len(check["check_result"]["suppress_comment"]) > 40 for check in skipped)


def test_every_checkov_skip_carries_its_reason_in_the_template() -> None:
    skips = []
    for path in (CORE, STUDIO):
        for name, resource in load_template(path)["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                skips.append((name, skip["id"]))
                assert len(skip.get("comment", "")) > 40, f"{path.name} {name} skips {skip['id']} without a reason"
    assert sorted(skips) == sorted(
        [
            ("ArtifactBucket", "CKV_AWS_18"),
            ("PipelineExecutionRole", "CKV_AWS_111"),
            ("DataScientistRole", "CKV_AWS_111"),
            ("MLEngineerRole", "CKV_AWS_111"),
            ("AlertsTopic", "CKV_AWS_26"),
            ("Domain", "CKV_AWS_187"),
        ]
    )


def test_every_resource_that_takes_tags_carries_the_projects_tags() -> None:
    from cfnlint.schema.manager import PROVIDER_SCHEMA_MANAGER

    untagged = set()
    for path in (CORE, STUDIO):
        template = load_template(path)
        values = _values(
            path, {"VpcId": "vpc-1", "SubnetIds": ["subnet-1"], "DataScientistRoleArn": ROLE + "x", "MLEngineerRoleArn": ROLE + "y"}
        )
        for name, resource in template["Resources"].items():
            properties = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource["Type"]).schema["properties"]
            key = next((k for k in ("Tags", "ResourceTags") if k in properties), None)
            if key is None:
                untagged.add(resource["Type"])
                continue
            tags = {t["Key"]: t["Value"] for t in resolve(resource["Properties"][key], values, template)}
            stack = values.parameters["_stack"]
            assert tags == {
                "Project": "skyops",
                "Environment": "dev",
                "Owner": "ml-platform",
                "CostCenter": "cc-1234",
                "ManagedBy": stack,
            }, name
    assert untagged == UNTAGGABLE


def _validate(service: str, operation: str, request: dict[str, Any]) -> list[str]:
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(request, shape)
    return ([report.generate_report()] if report.has_errors() else []) + constraint_problems(request, shape, "", {})


def _properties(path: Path, name: str, given: dict[str, Any]) -> dict[str, Any]:
    template = load_template(path)
    return resolve(template["Resources"][name]["Properties"], _values(path, given), template)


STUDIO_GIVEN = {
    "VpcId": "vpc-0123456789abcdef0",
    "SubnetIds": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
    "DataScientistRoleArn": ROLE + "data-scientist",
    "MLEngineerRoleArn": ROLE + "ml-engineer",
}


def test_the_studio_domain_and_profiles_are_valid_requests_one_per_persona_with_its_role() -> None:
    domain = _properties(STUDIO, "Domain", STUDIO_GIVEN)
    assert _validate("sagemaker", "CreateDomain", domain) == []
    assert (domain["VpcId"], domain["SubnetIds"], domain["AuthMode"]) == (STUDIO_GIVEN["VpcId"], STUDIO_GIVEN["SubnetIds"], "IAM")
    roles = {}
    for name in ("DataScientistProfile", "MLEngineerProfile"):
        profile = _properties(STUDIO, name, STUDIO_GIVEN)
        assert _validate("sagemaker", "CreateUserProfile", profile) == [], name
        roles[profile["UserProfileName"]] = profile["UserSettings"]["ExecutionRole"]
    assert roles == {persona: ROLE + persona for persona in PERSONAS}


def test_the_model_package_group_and_the_budget_are_valid_requests() -> None:
    group = _properties(CORE, "ModelPackageGroup", {})
    assert group["ModelPackageGroupName"] == DEFAULT_MODEL
    assert _validate("sagemaker", "CreateModelPackageGroup", group) == []
    budget = _properties(CORE, "MonthlyBudget", {})
    request = {**budget, "AccountId": ACCOUNT}
    request["Budget"] = {
        **budget["Budget"],
        "BudgetLimit": {**budget["Budget"]["BudgetLimit"], "Amount": str(budget["Budget"]["BudgetLimit"]["Amount"])},
    }
    assert _validate("budgets", "CreateBudget", request) == []
    assert {(n["Notification"]["NotificationType"], n["Notification"]["Threshold"]) for n in budget["NotificationsWithSubscribers"]} == {
        ("ACTUAL", 80),
        ("FORECASTED", 100),
    }


def test_the_bucket_refuses_plain_http_and_public_access() -> None:
    policy = _properties(CORE, "ArtifactBucketPolicy", {})
    assert _validate("s3", "PutBucketPolicy", {"Bucket": policy["Bucket"], "Policy": json.dumps(policy["PolicyDocument"])}) == []
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    bucket = _properties(CORE, "ArtifactBucket", {})
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}


def test_the_data_scientist_has_an_explicit_deny_for_each_privileged_probe() -> None:
    """check-access tries these; the Deny statements, not a missing Allow, must refuse them (test_access.py shows it)."""
    import fnmatch

    template = load_template(CORE)
    statements = template["Resources"]["DataScientistRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    denied = [
        action for s in statements if s["Effect"] == "Deny" for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    for probe in (p for p in PROBES if p.privileged):
        assert any(fnmatch.fnmatchcase(probe.action, pattern) for pattern in denied), probe.action
