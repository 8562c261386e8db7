"""Small named fixtures of the `skyops infra` tests: the project and state folder, the CLI in this process, the moto
server with what moto 5.2.5's CloudFormation lacks, IAM enforced on it, and a deployed environment.

What moto 5.2.5 does not do, and what stands in for it here (docs/infrastructure.md says the same):
- ExecuteChangeSet leaves a stack's outputs as they were (none for a new stack) and keeps its old parameter values
  for the next change set to compare with: `cfn_outputs` sets both after moto's own execution, as CloudFormation
  has them once a change set has run.
- A change set's Changes list only resources added or removed, not those a new parameter value modifies.
- Its CloudFormation skips AWS::S3::BucketPolicy, AWS::SNS::TopicPolicy, AWS::SageMaker::ModelPackageGroup,
  AWS::SageMaker::Domain, AWS::SageMaker::UserProfile and AWS::Budgets::Budget (a warning, no resource), and applies
  only the encryption and tags of an AWS::S3::Bucket. test_templates.py checks those resources' properties against
  botocore's request shapes of the calls CloudFormation makes for them.
- Inline policies of a role made by its CloudFormation are stored in a form its IAM authorizer cannot read (Python's
  repr, not JSON): `iam_enforced` puts the template's own policy documents on the stack's roles with the IAM API.
- Its IAM authorizer names a CloudWatch request's action after the signing name (`monitoring:DeleteAlarms`);
  IAM's is `cloudwatch:DeleteAlarms`, the name policies use: `iam_enforced` renames it. It also fails a trust
  policy with a statement for a service principal beside one for an IAM principal (a TypeError, then a denial
  for the other statement's principal), which is why the persona roles trust both in one statement.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from skyops.cli import main as skyops_main
from tests.aws.conftest import AwsFiles, MotoServer

from .template import ACCOUNT, CORE, REGION, ROOT, Values, load_template, parameter_values, policies, resolve

OWNER, COST_CENTER = "ml-platform", "cc-1234"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:user/deployer"
ROLES = ("PipelineExecutionRole", "DataScientistRole", "MLEngineerRole")


@dataclass
class Cli:
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> tuple[int, str, str]:
        """Run `skyops ARGS` in this process: (exit code, stdout, stderr)."""
        code = 0
        try:
            skyops_main(list(args))
        except SystemExit as e:
            code = int(e.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This repository as the project (its infra/ and pipelines/), the state folder in tmp_path; no SKYOPS_SAGEMAKER_*."""
    import os

    for name in [n for n in os.environ if n.startswith(("SKYOPS_SAGEMAKER_", "SKYOPS_INFRA_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(ROOT))
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def cfn_outputs(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's ExecuteChangeSet followed by what it forgets: the stack's parameters and outputs, from the change set."""
    from moto.cloudformation.models import CloudFormationBackend

    original = CloudFormationBackend.execute_change_set

    def execute_change_set(self: Any, change_set_name: str, stack_name: str | None = None) -> None:
        original(self, change_set_name, stack_name)
        change_set = self.change_sets.get(change_set_name) or next(
            c for c in self.change_sets.values() if c.change_set_name == change_set_name
        )
        stack = self.stacks[change_set.stack_id]
        stack.parameters = change_set.parameters
        stack._parse_template()
        stack.output_map = stack._create_output_map()

    monkeypatch.setattr(CloudFormationBackend, "execute_change_set", execute_change_set)


def admin(moto: MotoServer, service: str, keys: tuple[str, str] = ("setup", "setup")) -> Any:
    """A plain boto3 client for the test's own setup and inspection (not skyops' code, so not through the guard)."""
    import boto3

    return boto3.client(service, region_name=REGION, endpoint_url=moto.url, aws_access_key_id=keys[0], aws_secret_access_key=keys[1])


def _reset_auth(moto: MotoServer, count: str) -> None:
    """From the next request on, moto checks every request after the first `count` ("0": all; "inf": none)."""
    request = urllib.request.Request(
        f"{moto.url}/moto-api/reset-auth", data=count.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(request, timeout=10).close()


@dataclass(frozen=True)
class Enforced:
    """IAM is enforced; profile ab holds the keys of IAM user `deployer` (allowed everything)."""

    keys: tuple[str, str]

    def client(self, moto: MotoServer, service: str) -> Any:
        return admin(moto, service, self.keys)


@pytest.fixture
def iam_enforced(moto: MotoServer, aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> Iterator[Enforced]:
    """moto's IAM authorizer on for this test (every request signed by a known key and allowed by its policies)."""
    from moto.iam.access_control import IAMRequestBase

    authorize = IAMRequestBase.__init__

    def named_as_iam_names_it(self: Any, *args: Any, **kwargs: Any) -> None:
        authorize(self, *args, **kwargs)
        if self._action.startswith("monitoring:"):
            self._action = "cloudwatch:" + self._action.removeprefix("monitoring:")

    monkeypatch.setattr(IAMRequestBase, "__init__", named_as_iam_names_it)
    iam = admin(moto, "iam")
    iam.create_user(UserName="deployer")
    allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_user_policy(UserName="deployer", PolicyName="administrator", PolicyDocument=json.dumps(allow_all))
    key = iam.create_access_key(UserName="deployer")["AccessKey"]
    keys = (key["AccessKeyId"], key["SecretAccessKey"])
    text = aws_files.credentials.read_text()
    text = text.replace("aws_access_key_id = testing-ab", f"aws_access_key_id = {keys[0]}", 1)
    aws_files.credentials.write_text(text.replace("aws_secret_access_key = testing-ab", f"aws_secret_access_key = {keys[1]}", 1))
    _reset_auth(moto, "0")
    try:
        yield Enforced(keys)
    finally:
        _reset_auth(moto, "inf")


def core_values(outputs: dict[str, str], topic_arn: str = "", repository_arn: str = "") -> Values:
    """What the core template's functions resolve to for a deployed stack (its outputs)."""
    template = load_template(CORE)
    bucket = outputs["BucketName"]
    given = {"Environment": outputs["Environment"], "Owner": OWNER, "CostCenter": COST_CENTER, "TrustedPrincipalArn": DEPLOYER}
    return Values(
        parameters=parameter_values(template, given, f"skyops-{outputs['Environment']}"),
        physical={"ArtifactBucket": bucket, "AlertsTopic": topic_arn},
        attributes={
            "ArtifactBucket.Arn": f"arn:aws:s3:::{bucket}",
            "ImageRepository.Arn": repository_arn,
            "PipelineExecutionRole.Arn": outputs["PipelineExecutionRoleArn"],
        },
    )


def put_template_policies(iam: Any, outputs: dict[str, str], topic_arn: str, repository_arn: str) -> None:
    """The template's inline policy documents on the stack's roles, through the IAM API (see the module docstring)."""
    template, values = load_template(CORE), core_values(outputs, topic_arn, repository_arn)
    for role in ROLES:
        name = resolve(template["Resources"][role]["Properties"]["RoleName"], values, template)
        for policy, document in policies(template, role, values).items():
            iam.put_role_policy(RoleName=name, PolicyName=policy, PolicyDocument=json.dumps(document))


DEPLOY = ("infra", "deploy", "--owner", OWNER, "--cost-center", COST_CENTER)


@pytest.fixture
def separated(cli: Cli, moto: MotoServer, project: Path, iam_enforced: Enforced) -> dict[str, Any]:
    """The core stack deployed with IAM enforced; its roles hold the template's policies."""
    code, _, err = cli(*DEPLOY, "--trusted-principal", DEPLOYER)
    assert code == 0, err
    outputs = json.loads((project / "infra" / "dev.json").read_text())["core"]
    repository = iam_enforced.client(moto, "ecr").describe_repositories(repositoryNames=["skyops-dev"])["repositories"][0]
    put_template_policies(iam_enforced.client(moto, "iam"), outputs, outputs["AlertsTopicArn"], repository["repositoryArn"])
    return {**outputs, "RepositoryArn": repository["repositoryArn"]}
