"""A SageMaker deployment that cannot or does not finish: a version registered without model data is refused and
audited before anything is made; AWS failing part-way is audited as failed with every request that succeeded, the
error names what was made, and the next apply sends only what is left."""

from __future__ import annotations

from dataclasses import replace

import pytest
from moto.applicationautoscaling.responses import ApplicationAutoScalingResponse
from moto.sagemaker.responses import SageMakerResponse

from skyops.aws.endpoint_deploy import EndpointIncomplete
from skyops.aws.session import AwsRequestError
from skyops.errors import ConfigError
from skyops.targets import Autoscaling

from .conftest import Faults
from .endpoint_world import ENDPOINT, ERRORS, GROUP, LATENCY, READS, RESOURCE, SETTINGS, World, deployed, desired
from .test_endpoint_deploy_refusals import DEPLOYING


def writes(world: World, mark: int) -> list[str]:
    return [op for op in world.sent_since(mark) if op not in READS]


def test_a_version_registered_without_model_data_is_refused_and_audited_before_anything_is_made(world: World) -> None:
    # A package with no InferenceSpecification: nothing for an endpoint to serve (SageMaker takes such a package).
    arn = world.packages.sagemaker.create_model_package(
        ModelPackageGroupName=GROUP, ModelPackageDescription="a card without a model", ModelApprovalStatus="PendingManualApproval"
    )["ModelPackageArn"]
    world.governed.approve("alice", 1, reason="approved by mistake")
    mark = len(world.moto.operations)
    with pytest.raises(ConfigError) as refused:
        world.governed.deploy_to("alice", desired(1), world.deployment)
    assert refused.value.message == (
        f"{GROUP} v1 has nothing to serve: its package {arn} records no ModelDataUrl (its model.tar.gz) and no inference Image; "
        "register the model with its model.tar.gz and image (the pipeline's RegisterModel step does), approve that version and "
        "name it here"
    )
    assert "DescribeModelPackage" in world.sent_since(mark) and not DEPLOYING & set(world.sent_since(mark))
    assert world.audited()[-1] == ("alice", "deploy", f"{GROUP}:1@production", "failed")
    assert world.last_record().details["error"].startswith(f"ConfigError: {GROUP} v1 has nothing to serve")


def test_aws_failing_part_way_is_audited_with_what_was_made_and_the_next_apply_sends_only_the_rest(world: World, faults: Faults) -> None:
    version = world.version(1)
    faults.fail(SageMakerResponse, "create_endpoint")
    with pytest.raises(EndpointIncomplete) as stopped:
        world.governed.deploy_to("alice", desired(version), world.deployment)
    (model,), (config,) = world.checked.of("CreateModel"), world.checked.of("CreateEndpointConfig")
    made = [f"CreateModel {model['ModelName']}", f"CreateEndpointConfig {config['EndpointConfigName']}"]
    made += [f"PutMetricAlarm {ERRORS}", f"PutMetricAlarm {LATENCY}"]
    assert stopped.value.message == (
        f"deploying {GROUP} v1 to SageMaker endpoint {ENDPOINT} stopped part-way: CreateEndpoint {ENDPOINT} failed: "
        f"ResourceLimitExceeded: account limit reached; made before it: {', '.join(made)}"
    )
    assert stopped.value.hint.startswith("what was made stays, named by its content: `skyops deploy plan` shows what is left")
    assert stopped.value.exit_code == 1
    record = world.last_record()
    assert (record.target, record.outcome, record.details["done"]) == (f"{GROUP}:1@production", "failed", made)
    assert record.intent is not None and record.details["model_data"] == "s3://skyops-models/run1/model.tar.gz"
    assert world.deployment.status(desired(version)).status is None  # no endpoint: the error and the record say what exists

    faults.heal()
    assert world.deployment.plan(desired(version)).changes == (
        f"create endpoint {ENDPOINT} serving {GROUP} v1",
        f"register autoscaling of {RESOURCE}: 2..4 instances",
        f"put scaling policy {ENDPOINT}-invocations-per-instance: target 120 invocations per instance per minute",
    )
    mark = len(world.moto.operations)
    deployed(world, version)
    assert writes(world, mark) == ["CreateEndpoint", "RegisterScalableTarget", "PutScalingPolicy"]
    assert world.deployment.status(desired(version)).version == 1 and world.checked.problems == []


def test_a_first_request_refused_is_aws_s_own_error_and_nothing_was_made(world: World, faults: Faults) -> None:
    faults.fail(SageMakerResponse, "create_model", code="AccessDeniedException", message="not authorized to perform CreateModel")
    with pytest.raises(
        AwsRequestError, match=rf"^CreateModel {ENDPOINT}-v1-[0-9a-f]{{8}} failed: AccessDeniedException: not authorized to perform"
    ):
        world.governed.deploy_to("alice", desired(world.version(1)), world.deployment)
    record = world.last_record()
    assert (record.outcome, record.details["done"]) == ("failed", [])
    assert record.details["error"].startswith("AwsRequestError: CreateModel")


def test_scaling_refused_after_an_update_leaves_the_new_version_serving_and_says_so(world: World, faults: Faults) -> None:
    deployed(world, world.version(1))
    version = world.version(2)
    wider = replace(SETTINGS, autoscaling=Autoscaling(min_instances=2, max_instances=6))
    faults.fail(ApplicationAutoScalingResponse, "register_scalable_target", code="ValidationException", message="limit")
    with pytest.raises(
        EndpointIncomplete, match=rf"RegisterScalableTarget {RESOURCE} failed: ValidationException: limit; made before it: "
    ):
        world.governed.deploy_to("alice", desired(version, wider), world.deployment)
    assert world.last_record().details["done"][-1] == f"UpdateEndpoint {ENDPOINT}"
    assert world.deployment.status(desired(version)).version == 2  # the endpoint itself was deployed
    faults.heal()
    mark = len(world.moto.operations)
    world.governed.deploy_to("alice", desired(version, wider), world.deployment)
    assert writes(world, mark) == ["RegisterScalableTarget", "PutScalingPolicy"]


def test_an_endpoint_that_does_not_come_into_service_is_named_and_removed_by_version_null(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SageMaker's CreateEndpoint succeeds, then the endpoint fails (e.g. the container never answers /ping)."""
    create = SageMakerResponse.create_endpoint
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."

    def create_then_fail(self: SageMakerResponse) -> object:
        answer = create(self)
        endpoint = self.sagemaker_backend.endpoints[ENDPOINT]
        endpoint.endpoint_status, endpoint.failure_reason = "Failed", reason
        return answer

    monkeypatch.setattr(SageMakerResponse, "create_endpoint", create_then_fail)
    version = world.version(1)
    with pytest.raises(EndpointIncomplete) as stopped:
        world.governed.deploy_to("alice", desired(version), world.deployment)
    assert f"stopped part-way: SageMaker endpoint {ENDPOINT} did not come into service: Failed: {reason}; made before it: " in (
        stopped.value.message
    )
    assert stopped.value.message.endswith(f", CreateEndpoint {ENDPOINT}")
    assert stopped.value.hint.endswith("skyops deploy status shows where it stands")
    assert world.last_record().details["done"][-1] == f"CreateEndpoint {ENDPOINT}"

    with pytest.raises(ConfigError, match=rf"^SageMaker endpoint {ENDPOINT} is Failed: {reason}; it cannot take a deployment$"):
        world.deployment.plan(desired(version))
    mark = len(world.moto.operations)
    world.governed.deploy_to("alice", desired(None), world.deployment)  # what the hint says: version null removes it
    assert writes(world, mark) == ["DeleteEndpoint", "DeleteAlarms"]
    assert world.deployment.status(desired(None)).status is None
