"""`skyops infra check-access` with IAM enforced on the moto server: the template's own policy documents decide.

The core stack is deployed (trusting IAM user `deployer`, profile ab's keys), then its roles get the template's inline
policies through the IAM API (moto's authorizer cannot read the copies its CloudFormation stores: conftest.py).
moto's authorizer matches a non-S3 action's Resource only against "*" and treats every Condition as met; the
template's SageMaker, CloudWatch and application-autoscaling statements name Resource "*" (docs/infrastructure.md).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.aws.conftest import MotoServer

from .conftest import Cli, Enforced
from .template import CORE, load_template, policies

pytestmark = pytest.mark.usefixtures("project", "cfn_outputs")

PRIVILEGED = [
    "approve a model version",
    "create an endpoint configuration",
    "create an endpoint",
    "delete an endpoint",
    "change a pipeline",
    "delete a pipeline",
    "delete a monitoring alarm",
    "read production data capture",
]
UNPRIVILEGED = ["read the data", "list model versions", "start a pipeline execution"]


def _matrix(out: str) -> dict[str, tuple[str, str]]:
    """check-access's table as {action: (data-scientist cell, ml-engineer cell)}."""
    rows = {}
    for line in out.splitlines()[1:]:
        if line.startswith(("* ", "ok:", "wrong:")):
            continue
        what = line[:34].rstrip().removesuffix(" *")
        cells = line[67:].split()
        rows[what] = (" ".join(cells[:2]), " ".join(cells[2:]))
    return rows


def test_the_data_scientist_is_denied_each_privileged_action_and_the_ml_engineer_allowed(cli: Cli, separated: dict[str, Any]) -> None:
    code, out, err = cli("infra", "check-access")
    assert code == 0, out + err
    matrix = _matrix(out)
    assert list(matrix) == [*UNPRIVILEGED[:3], *PRIVILEGED]
    assert {what: matrix[what] for what in PRIVILEGED} == dict.fromkeys(PRIVILEGED, ("denied ok", "allowed ok"))
    assert {what: matrix[what] for what in UNPRIVILEGED} == dict.fromkeys(UNPRIVILEGED, ("allowed ok", "allowed ok"))
    assert out.splitlines()[-1] == "ok: the Data Scientist is denied each of 8 privileged actions, the ML Engineer allowed"


def test_the_denials_are_explicit_and_the_check_fails_without_them(
    cli: Cli, moto: MotoServer, separated: dict[str, Any], iam_enforced: Enforced
) -> None:
    """An allow-everything policy added to the Data Scientist's role (an administrator's slip) lifts no denial: they are
    the template's Deny statements, not missing Allows. Given the ML Engineer's document instead, the check fails."""
    from .conftest import core_values

    iam = iam_enforced.client(moto, "iam")
    allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_role_policy(RoleName="skyops-dev-data-scientist", PolicyName="too-much", PolicyDocument=json.dumps(allow_all))
    code, out, err = cli("infra", "check-access")
    assert code == 0, out + err
    assert {what: _matrix(out)[what][0] for what in PRIVILEGED} == dict.fromkeys(PRIVILEGED, "denied ok")

    iam.delete_role_policy(RoleName="skyops-dev-data-scientist", PolicyName="too-much")
    values = core_values(separated, separated["AlertsTopicArn"], separated["RepositoryArn"])
    (document,) = policies(load_template(CORE), "MLEngineerRole", values).values()
    iam.put_role_policy(RoleName="skyops-dev-data-scientist", PolicyName="data-scientist", PolicyDocument=json.dumps(document))
    code, out, err = cli("infra", "check-access")
    assert code == 1, err
    wrong = [line for line in out.splitlines() if line.startswith("wrong: ")]
    assert len(wrong) == len(PRIVILEGED)
    assert (
        "wrong: data-scientist approve a model version (sagemaker:UpdateModelPackage): allowed (ValidationException), expected denied"
        in wrong
    )
    assert _matrix(out)["delete an endpoint"] == ("allowed WRONG", "allowed ok")
