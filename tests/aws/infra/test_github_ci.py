"""The GitHub CI role of the core template (vars.AWS_CI_ROLE_ARN of .github/workflows/train.yml and deploy.yml).

Made only for a repository (`skyops infra deploy --github-repo OWNER/NAME`), with the account's OIDC provider of
token.actions.githubusercontent.com unless one is given; trusted only through that provider, for the repository's
main branch, its deployment environments and its pull requests; allowed nothing but to assume the ML Engineer role,
whose trust names it. The template's conditions and documents are read as rendered (template.py); moto's
CloudFormation makes the role from a given provider (it cannot make an AWS::IAM::OIDCProvider), and its IAM authorizer
shows what the role's own policy allows (on roles made with the IAM API: conftest.py says why).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from skyops.aws.infra import GITHUB_OIDC_PROVIDER_ARN, GITHUB_REPOSITORY
from tests.aws.conftest import MotoServer

from .conftest import COST_CENTER, DEPLOY, DEPLOYER, OWNER, Cli, Enforced, admin
from .template import ACCOUNT, CORE, Values, created, load_template, outputs, parameter_values, resolve

REPO = "acme/skyops"
PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
MADE_PROVIDER = "the ARN of the provider this stack makes"  # what Ref GitHubOidcProvider gives, told apart from PROVIDER
CI_ROLE = f"arn:aws:iam::{ACCOUNT}:role/skyops-dev-github-ci"
ML_ENGINEER = f"arn:aws:iam::{ACCOUNT}:role/skyops-dev-ml-engineer"
ACCOUNT_ROOT = f"arn:aws:iam::{ACCOUNT}:root"
GITHUB = ("GitHubOidcProvider", "GitHubCiRole")
SUBJECTS = [f"repo:{REPO}:ref:refs/heads/main", f"repo:{REPO}:environment:*", f"repo:{REPO}:pull_request"]


def _values(**given: str) -> Values:
    template = load_template(CORE)
    return Values(
        parameters=parameter_values(template, {"Owner": OWNER, "CostCenter": COST_CENTER, **given}, "skyops-dev"),
        physical={"GitHubOidcProvider": MADE_PROVIDER},
        attributes={"GitHubCiRole.Arn": CI_ROLE},
    )


def _properties(name: str, values: Values, *keys: str) -> dict[str, Any]:
    """The resource's properties (only `keys` when given: the others may need values these tests do not give)."""
    template = load_template(CORE)
    found = template["Resources"][name]["Properties"]
    return resolve({key: found[key] for key in keys} if keys else found, values, template)


def _ml_engineer_principals(values: Values) -> Any:
    (statement,) = _properties("MLEngineerRole", values, "AssumeRolePolicyDocument")["AssumeRolePolicyDocument"]["Statement"]
    return statement["Principal"]["AWS"]


def test_without_a_repository_nothing_of_github_is_made() -> None:
    template = load_template(CORE)
    for values in (_values(), _values(GitHubOidcProviderArn=PROVIDER)):
        assert not set(GITHUB) & created(template, values)
        assert not {"GitHubCiRoleArn", "GitHubOidcProviderArn"} & outputs(template, values)
        assert _ml_engineer_principals(values) == ACCOUNT_ROOT


def test_a_repository_makes_the_provider_and_a_role_trusted_only_through_it_for_main_environments_and_pull_requests() -> None:
    template, values = load_template(CORE), _values(GitHubRepository=REPO)
    assert set(GITHUB) <= created(template, values)
    assert {"GitHubCiRoleArn", "GitHubOidcProviderArn"} <= outputs(template, values)
    provider = _properties("GitHubOidcProvider", values)
    assert (provider["Url"], provider["ClientIdList"]) == ("https://token.actions.githubusercontent.com", ["sts.amazonaws.com"])
    role = _properties("GitHubCiRole", values)
    assert (role["RoleName"], role["MaxSessionDuration"]) == ("skyops-dev-github-ci", 3600)
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Federated": MADE_PROVIDER},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
                "StringLike": {"token.actions.githubusercontent.com:sub": SUBJECTS},
            },
        }
    ]
    ((policy,),) = [role["Policies"]]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Sid": "ActAsTheMLEngineer", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ML_ENGINEER}
    ]
    assert _ml_engineer_principals(values) == [ACCOUNT_ROOT, CI_ROLE]


def test_a_given_provider_is_trusted_and_none_is_made() -> None:
    template, values = load_template(CORE), _values(GitHubRepository=REPO, GitHubOidcProviderArn=PROVIDER)
    assert "GitHubCiRole" in created(template, values) and "GitHubOidcProvider" not in created(template, values)
    assert "GitHubCiRoleArn" in outputs(template, values) and "GitHubOidcProviderArn" not in outputs(template, values)
    (statement,) = _properties("GitHubCiRole", values)["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Federated": PROVIDER}


def test_the_ml_engineer_trusts_the_ci_role_beside_a_trusted_principal_only_when_there_is_one() -> None:
    assert _ml_engineer_principals(_values(TrustedPrincipalArn=DEPLOYER, GitHubRepository=REPO)) == [DEPLOYER, CI_ROLE]
    assert _ml_engineer_principals(_values(TrustedPrincipalArn=DEPLOYER)) == DEPLOYER


def test_the_cli_checks_the_templates_own_patterns() -> None:
    parameters = load_template(CORE)["Parameters"]
    assert parameters["GitHubRepository"]["AllowedPattern"] == "^$|" + GITHUB_REPOSITORY.pattern
    assert parameters["GitHubOidcProviderArn"]["AllowedPattern"] == "^$|" + GITHUB_OIDC_PROVIDER_ARN.pattern
    good = ["acme/skyops", "Acme-Corp/sky.ops_2", "a/b", "a" * 39 + "/" + "r" * 100]
    bad = ["acme", "acme/", "/skyops", "acme/sky ops", "-acme/x", "ac--me/x", "a/b/c", "a" * 40 + "/x", "acme/" + "r" * 101]
    assert [bool(GITHUB_REPOSITORY.match(value)) for value in good + bad] == [True] * len(good) + [False] * len(bad)
    assert GITHUB_OIDC_PROVIDER_ARN.match(PROVIDER)
    assert not GITHUB_OIDC_PROVIDER_ARN.match(PROVIDER.replace("token.actions", "tokenXactions"))


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--github-repo", "acme", "OWNER/NAME of a GitHub repository, e.g. acme/skyops ('' for none)"),
        (
            "--github-oidc-provider-arn",
            "arn:aws:iam::1:oidc-provider/x",
            "the ARN of an IAM OIDC provider of token.actions.githubusercontent.com",
        ),
    ],
)
def test_a_bad_value_is_refused_before_any_request(
    cli: Cli, moto: MotoServer, project: Path, option: str, value: str, expected: str
) -> None:
    code, out, err = cli(*DEPLOY, option, value)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0] == f"error: {option} {value}: expected {expected}"
    assert len(lines) == 2 and lines[1].startswith(f"hint: {option}: ")
    assert moto.operations == []


@pytest.mark.usefixtures("cfn_outputs")
def test_deploy_with_a_repository_makes_the_ci_role_the_ml_engineer_trusts_and_outputs_its_arn(
    cli: Cli, moto: MotoServer, project: Path
) -> None:
    code, out, err = cli(*DEPLOY, "--github-repo", REPO, "--github-oidc-provider-arn", PROVIDER)
    assert code == 0, err
    assert "skyops-dev: create, 17 resource changes:" in out  # moto's change set lists each resource, its Condition met or not
    assert "  Add      GitHubCiRole                     AWS::IAM::Role" in out.splitlines()
    iam = admin(moto, "iam")
    role = iam.get_role(RoleName="skyops-dev-github-ci")["Role"]
    assert (
        role["AssumeRolePolicyDocument"]
        == _properties("GitHubCiRole", _values(GitHubRepository=REPO, GitHubOidcProviderArn=PROVIDER))["AssumeRolePolicyDocument"]
    )
    assert role["MaxSessionDuration"] == 3600
    assert {t["Key"]: t["Value"] for t in role["Tags"]}["ManagedBy"] == "skyops-dev"
    trust = iam.get_role(RoleName="skyops-dev-ml-engineer")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"]["AWS"] == [ACCOUNT_ROOT, role["Arn"]]

    code, out, err = cli("infra", "outputs")
    assert code == 0, err
    assert f"skyops-dev               GitHubCiRoleArn            {role['Arn']}" in out.splitlines()
    code, out, err = cli("infra", "deploy")  # the repository and the provider are kept
    assert code == 0 and "skyops-dev: no changes" in out.splitlines(), err

    # '' asks for no repository (CloudFormation then removes the role; moto keeps a resource whose Condition turns false)
    code, out, err = cli("infra", "deploy", "--github-repo", "")
    assert code == 0, err
    params = admin(moto, "cloudformation").describe_stacks(StackName="skyops-dev")["Stacks"][0]["Parameters"]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in params}["GitHubRepository"] == ""


def _as_its_role(principal: str) -> str:
    """An assumed-role session's ARN as the role's: IAM matches a role principal against its sessions, moto does not."""
    session = re.fullmatch(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+", principal)
    return f"arn:{session[1]}:iam::{session[2]}:role/{session[3]}" if session else principal


def test_iam_lets_the_ci_role_become_the_ml_engineer_and_nothing_else(
    moto: MotoServer, iam_enforced: Enforced, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.access_control import IAMPolicyStatement

    check = IAMPolicyStatement._check_principal
    monkeypatch.setattr(IAMPolicyStatement, "_check_principal", lambda self, p: check(self, p) or check(self, _as_its_role(p)))
    authorize = ActionAuthenticatorMixin._authenticate_and_authorize_normal_action

    def web_identity_is_unsigned(self: Any, resource: str = "*") -> None:
        """STS takes AssumeRoleWithWebIdentity unsigned (the token is the credential); moto's authorizer fails it."""
        if self._get_action() != "AssumeRoleWithWebIdentity" or "Authorization" in self.headers:
            authorize(self, resource)

    monkeypatch.setattr(ActionAuthenticatorMixin, "_authenticate_and_authorize_normal_action", web_identity_is_unsigned)
    iam = iam_enforced.client(moto, "iam")
    provider = iam.create_open_id_connect_provider(Url="https://token.actions.githubusercontent.com", ClientIDList=["sts.amazonaws.com"])
    values = _values(GitHubRepository=REPO, GitHubOidcProviderArn=provider["OpenIDConnectProviderArn"])
    ci = _properties("GitHubCiRole", values)
    iam.create_role(RoleName=ci["RoleName"], AssumeRolePolicyDocument=json.dumps(ci["AssumeRolePolicyDocument"]), MaxSessionDuration=3600)
    for policy in ci["Policies"]:
        iam.put_role_policy(RoleName=ci["RoleName"], PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"]))
    ml = _properties("MLEngineerRole", values, "RoleName", "AssumeRolePolicyDocument")
    iam.create_role(RoleName=ml["RoleName"], AssumeRolePolicyDocument=json.dumps(ml["AssumeRolePolicyDocument"]))
    trusts_the_ci_role = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": CI_ROLE}, "Action": "sts:AssumeRole"}],
    }
    iam.create_role(RoleName="skyops-dev-data-scientist", AssumeRolePolicyDocument=json.dumps(trusts_the_ci_role))

    github = boto3.client("sts", region_name="eu-west-1", endpoint_url=moto.url, config=Config(signature_version=UNSIGNED))
    session = github.assume_role_with_web_identity(RoleArn=CI_ROLE, RoleSessionName="skyops-1", WebIdentityToken="a.github.jwt")
    keys = session["Credentials"]
    as_ci = boto3.Session(
        aws_access_key_id=keys["AccessKeyId"], aws_secret_access_key=keys["SecretAccessKey"], aws_session_token=keys["SessionToken"]
    )

    def client(service: str) -> Any:
        return as_ci.client(service, region_name="eu-west-1", endpoint_url=moto.url)

    engineer = client("sts").assume_role(RoleArn=ML_ENGINEER, RoleSessionName="skyops-1")["AssumedRoleUser"]["Arn"]
    assert engineer == f"arn:aws:sts::{ACCOUNT}:assumed-role/skyops-dev-ml-engineer/skyops-1"
    refused = {
        "assume another role, even one that trusts it": lambda: client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/skyops-dev-data-scientist", RoleSessionName="skyops-1"
        ),
        "list buckets": lambda: client("s3").list_buckets(),
        "list roles": lambda: client("iam").list_roles(),
        "list pipelines": lambda: client("sagemaker").list_pipelines(),
    }
    for what, call in refused.items():
        with pytest.raises(ClientError, match=r"AccessDenied|not authorized") as caught:
            call()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, what
