"""What the SageMaker deployment refuses, and what it sends first (counted at the moto server): a version that is
not Approved, a data scientist, another AWS profile, settings AWS would refuse, a busy endpoint, a version rejected
between plan and apply."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from skyops.aws.endpoint_deploy import EndpointDeployment
from skyops.aws.model_packages import ModelPackages, PackageGroupStore
from skyops.aws.session import AwsGuard
from skyops.errors import AwsGuardError, ConfigError, PermissionDenied
from skyops.registry.governed import GovernedRegistry
from skyops.registry.roles import ROLES_FILE, Governance

from .conftest import MotoServer
from .endpoint_world import ENDPOINT, GROUP, READS, ROLES, SETTINGS, World, deployed, desired

DEPLOYING = {"CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint", "PutMetricAlarm", "RegisterScalableTarget"}
DEPLOYING |= {"PutScalingPolicy", "DeleteEndpoint", "DeleteAlarms", "DeleteScalingPolicy", "DeregisterScalableTarget"}


@pytest.mark.parametrize("approve", ["pending", "rejected"])
def test_a_version_that_is_not_approved_is_refused_and_audited_before_any_deploying_request(world: World, approve: str) -> None:
    version = world.version(1, approve=False)
    if approve == "rejected":
        world.governed.reject("alice", version, reason="false positives on roofs")
    status = "PendingManualApproval" if approve == "pending" else "Rejected"
    mark = len(world.moto.operations)
    with pytest.raises(ConfigError, match=rf"^{GROUP} v1 is {status}, not Approved: only an Approved version may be deployed$"):
        world.governed.deploy_to("alice", desired(version), world.deployment)
    assert world.sent_since(mark) == ["ListModelPackages"]  # the status, read from the group: no endpoint was even looked at
    assert world.audited()[-1] == ("alice", "deploy", f"{GROUP}:1@production", "failed")
    assert world.deployment.status(desired(version)).status is None


def test_a_version_the_group_does_not_have_is_refused_and_audited(world: World) -> None:
    world.version(1)
    with pytest.raises(ConfigError, match=rf"^{GROUP} has no version 9 \(versions: v1\)$"):
        world.governed.deploy_to("alice", desired(9), world.deployment)
    assert world.audited()[-1] == ("alice", "deploy", f"{GROUP}:9@production", "failed")


def test_a_data_scientist_is_refused_and_audited_without_a_request(world: World) -> None:
    version = world.version(1)
    mark = len(world.moto.operations)
    with pytest.raises(PermissionDenied, match=rf"^bob \(role data-scientist\) may not deploy {GROUP}:1@production: deploy needs the role"):
        world.governed.deploy_to("bob", desired(version), world.deployment)
    assert world.sent_since(mark) == []
    assert world.audited()[-1] == ("bob", "deploy", f"{GROUP}:1@production", "denied")


def test_another_aws_profile_sends_nothing_at_all(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_PROFILE", "other")
    (tmp_path / ROLES_FILE).write_text(ROLES)
    packages = ModelPackages(AwsGuard())
    governed = GovernedRegistry(PackageGroupStore(packages, GROUP), Governance(tmp_path, tmp_path / "audit.log"))
    deployment = EndpointDeployment(packages)
    for call in (
        lambda: governed.deploy_to("alice", desired(1), deployment),
        lambda: deployment.plan(desired(1)),
        lambda: deployment.status(desired(1)),
    ):
        with pytest.raises(AwsGuardError, match=r"\$AWS_PROFILE=other names another profile than 'ab'"):
            call()
    assert moto.requests == []


def test_settings_aws_would_refuse_are_named_before_any_request(world: World) -> None:
    version = world.version(1)
    bad = replace(SETTINGS, role_arn=None, instance_type="ml.m5.huge")
    mark = len(world.moto.operations)
    with pytest.raises(ConfigError) as refused:
        world.governed.deploy_to("alice", desired(version, bad), world.deployment)
    assert refused.value.problems == [
        "no execution role for the endpoint's model; set sagemaker.role_arn in deploy/environments/production.yaml, or "
        "$SKYOPS_SAGEMAKER_ROLE_ARN",
        "sagemaker.instance_type 'ml.m5.huge' is not an instance type SageMaker endpoints take (botocore's "
        "ProductionVariantInstanceType); e.g. ml.m5.large, ml.c5.xlarge, ml.g4dn.xlarge",
    ]
    assert world.sent_since(mark) == []
    role_from_env = EndpointDeployment(world.packages, default_role_arn="arn:aws:iam::123456789012:role/from-env")
    assert role_from_env.problems(desired(version, replace(SETTINGS, role_arn=None))) == []


def test_an_endpoint_in_the_middle_of_a_change_is_left_alone(world: World) -> None:
    from moto.sagemaker.models import sagemaker_backends

    deployed(world, world.version(1))
    world.version(2)
    sagemaker_backends["123456789012"]["eu-west-1"].endpoints[ENDPOINT].endpoint_status = "Updating"
    mark = len(world.moto.operations)
    with pytest.raises(ConfigError, match=rf"^SageMaker endpoint {ENDPOINT} is Updating: a change is under way$") as refused:
        world.governed.deploy_to("alice", desired(2), world.deployment)
    assert refused.value.hint == "wait until it is InService (skyops deploy status), then apply again"
    assert not DEPLOYING & set(world.sent_since(mark))


def test_a_version_rejected_between_plan_and_apply_is_not_deployed(world: World) -> None:
    version = world.version(1)
    plan = world.deployment.plan(desired(version))
    world.governed.reject("alice", version, reason="found a regression after planning")
    mark = len(world.moto.operations)
    record: dict[str, object] = {}
    with pytest.raises(ConfigError, match=rf"^{GROUP} v1 is Rejected, not Approved: only an Approved version may be deployed$"):
        world.deployment.apply(plan, record)
    assert set(world.sent_since(mark)) <= READS and record["done"] == []
