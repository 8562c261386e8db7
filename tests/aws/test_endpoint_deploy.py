"""An Approved model package behind a SageMaker endpoint, through the governed API and the profile guard, on a
real moto server: the first apply creates everything, the same state again changes nothing, a new version is a
blue/green update with canary and alarm rollback, a rollback is audited, scaling steps aside for a new instance
type, `version: null` removes the endpoint. Every request is checked against botocore's shapes (`checked`)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from skyops.aws.endpoint_deploy import EndpointRolledBack

from .conftest import ROLLED_BACK, EndpointUpdates
from .endpoint_world import ENDPOINT, ERRORS, GROUP, LATENCY, READS, RESOURCE, ROLE, SETTINGS, World, deployed, desired


def test_the_first_apply_creates_model_config_endpoint_alarms_and_scaling(world: World) -> None:
    version = world.version(1)
    mark = len(world.moto.operations)
    plan = world.governed.deploy_to("alice", desired(version), world.deployment)

    writes = [op for op in world.sent_since(mark) if op not in READS]
    assert writes == [
        "CreateModel",
        "CreateEndpointConfig",
        "PutMetricAlarm",
        "PutMetricAlarm",
        "CreateEndpoint",
        "RegisterScalableTarget",
        "PutScalingPolicy",
    ]
    assert world.checked.problems == []
    (model,) = world.checked.of("CreateModel")
    package_arn = f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/1"
    assert model["Containers"] == [{"ModelPackageName": package_arn}] and model["ExecutionRoleArn"] == ROLE
    assert model["ModelName"].startswith(f"{ENDPOINT}-v1-")
    (config,) = world.checked.of("CreateEndpointConfig")
    assert config["ProductionVariants"] == [
        {"VariantName": "AllTraffic", "ModelName": model["ModelName"], "InstanceType": "ml.m5.large", "InitialInstanceCount": 2}
    ]
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 20,
        "DestinationS3Uri": "s3://skyops-capture/production",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }
    errors, latency = world.checked.of("PutMetricAlarm")
    assert (errors["AlarmName"], errors["MetricName"], errors["Threshold"]) == (ERRORS, "Invocation5XXErrors", 0.02)
    assert (latency["AlarmName"], latency["MetricName"], latency["Threshold"]) == (LATENCY, "ModelLatency", 800_000.0)  # microseconds
    assert errors["Dimensions"] == [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "AllTraffic"}]
    (policy,) = world.checked.of("PutScalingPolicy")
    assert policy["ResourceId"] == RESOURCE and policy["TargetTrackingScalingPolicyConfiguration"] == {
        "TargetValue": 120.0,
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "ScaleInCooldown": 300,
        "ScaleOutCooldown": 60,
    }

    status = world.deployment.status(desired(version))
    assert (status.status, status.version, status.package_arn, status.config) == ("InService", 1, package_arn, config["EndpointConfigName"])
    assert (status.instance_type, status.instances, status.capture) == ("ml.m5.large", 2, "20% to s3://skyops-capture/production")
    assert status.scaling == "2..4 instances, target 120 invocations per instance per minute"
    assert status.alarms == {ERRORS: "OK", LATENCY: "OK"}
    record = world.last_record()
    assert (record.actor, record.action, record.target, record.outcome) == ("alice", "deploy", f"{GROUP}:1@production", "succeeded")
    assert record.details["target"] == "sagemaker" and record.details["served_before"] is None
    assert record.details["changes"] == list(plan.changes) and "alias" not in record.details and "previous" not in record.details
    assert record.details["done"][-1] == f"PutScalingPolicy {ENDPOINT}-invocations-per-instance"


def test_applying_the_same_state_again_sends_only_reads_and_audits_nothing(world: World) -> None:
    deployed(world, world.version(1))
    records, mark = len(world.audited()), len(world.moto.operations)
    again = world.governed.deploy_to("alice", desired(1), world.deployment)
    assert again.changes == () and again.serving == 1
    assert set(world.sent_since(mark)) <= READS and world.sent_since(mark)
    assert len(world.audited()) == records


def test_a_new_approved_version_is_a_blue_green_update_with_canary_and_alarm_rollback(world: World, updates: EndpointUpdates) -> None:
    deployed(world, world.version(1))
    version = world.version(2)
    mark = len(world.moto.operations)
    plan = world.governed.deploy_to("alice", desired(version), world.deployment)

    assert [op for op in world.sent_since(mark) if op not in READS] == ["CreateModel", "CreateEndpointConfig", "UpdateEndpoint"]
    (request,) = updates.received
    assert request == {
        "EndpointName": ENDPOINT,
        "EndpointConfigName": plan.config_name,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                    "WaitIntervalInSeconds": 600,
                },
                "TerminationWaitInSeconds": 300,
                "MaximumExecutionTimeoutInSeconds": 3600,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": ERRORS}, {"AlarmName": LATENCY}]},
        },
        # autoscaled variant, same instance type and count: the new fleet keeps the current count; capture is the new config's
        "RetainAllVariantProperties": True,
        "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DataCaptureConfig"}],
    }
    assert world.checked.problems == []  # UpdateEndpoint included: botocore's shape takes it, ranges and enums too
    assert plan.config_name is not None and plan.config_name.startswith(f"{ENDPOINT}-v2-")
    assert world.deployment.status(desired(version)).version == 2
    record = world.last_record()
    assert (record.target, record.outcome, record.details["served_before"]) == (f"{GROUP}:2@production", "succeeded", 1)
    assert any(change.startswith(f"update endpoint {ENDPOINT}: {GROUP} v1 -> v2") for change in record.details["changes"])


def test_a_rolled_back_update_is_audited_as_failed_and_the_old_version_keeps_serving(world: World, updates: EndpointUpdates) -> None:
    deployed(world, world.version(1))
    world.version(2)
    updates.roll_back = True
    with pytest.raises(
        EndpointRolledBack, match=rf"^SageMaker rolled endpoint {ENDPOINT} back: it serves {GROUP} v1 .* instead of v2 .*: {ROLLED_BACK}$"
    ):
        world.governed.deploy_to("alice", desired(2), world.deployment)
    status = world.deployment.status(desired(2))
    assert (status.status, status.version, status.failure_reason) == ("InService", 1, ROLLED_BACK)
    assert status.scaling.startswith("2..4 instances")
    record = world.last_record()
    assert (record.action, record.target, record.outcome) == ("deploy", f"{GROUP}:2@production", "failed")
    assert record.details["error"].startswith("EndpointRolledBack: SageMaker rolled endpoint")
    assert f"UpdateEndpoint {ENDPOINT}" in record.details["done"] and record.details["rolled_back_to"] == status.config
    updates.roll_back = False
    assert world.governed.deploy_to("alice", desired(2), world.deployment).changes  # apply tries v2 again


def test_a_new_instance_type_takes_the_scaling_off_the_variant_first(world: World, updates: EndpointUpdates) -> None:
    deployed(world, world.version(1))
    mark = len(world.moto.operations)
    plan = world.governed.deploy_to("alice", desired(1, replace(SETTINGS, instance_type="ml.c5.xlarge")), world.deployment)
    assert [op for op in world.sent_since(mark) if op not in READS] == [
        "CreateEndpointConfig",  # the same model: only the config is new
        "DeleteScalingPolicy",
        "DeregisterScalableTarget",
        "UpdateEndpoint",
        "RegisterScalableTarget",
        "PutScalingPolicy",
    ]
    assert "RetainAllVariantProperties" not in updates.received[-1]  # the new type starts at the config's count
    assert plan.changes[1] == (
        f"deregister autoscaling of {ENDPOINT} while its instance type changes (ml.m5.large -> ml.c5.xlarge); registered again after"
    )
    assert world.checked.problems == []


def test_changed_thresholds_and_scaling_are_updated_in_place(world: World) -> None:
    deployed(world, world.version(1))
    changed = replace(
        SETTINGS, alarms=replace(SETTINGS.alarms, max_latency_ms=500.0), autoscaling=replace(SETTINGS.autoscaling, max_instances=6)
    )
    mark = len(world.moto.operations)
    plan = world.governed.deploy_to("alice", desired(1, changed), world.deployment)
    assert [op for op in world.sent_since(mark) if op not in READS] == ["PutMetricAlarm", "RegisterScalableTarget"]
    assert plan.changes == (
        f"put alarm {LATENCY}: ModelLatency Average > 500 ms for 3 x 60 s",
        f"register autoscaling of {RESOURCE}: 2..6 instances",
    )


def test_version_null_removes_the_endpoint_its_scaling_and_alarms(world: World) -> None:
    deployed(world, world.version(1))
    mark = len(world.moto.operations)
    plan = world.governed.deploy_to("alice", desired(None), world.deployment)
    assert [op for op in world.sent_since(mark) if op not in READS] == [
        "DeleteScalingPolicy",
        "DeregisterScalableTarget",
        "DeleteEndpoint",
        "DeleteAlarms",
    ]
    assert plan.changes[1] == f"delete endpoint {ENDPOINT} (serving {GROUP} v1)"
    status = world.deployment.status(desired(None))
    assert (status.status, status.alarms) == (None, {ERRORS: "missing", LATENCY: "missing"})
    assert world.last_record().target == f"{GROUP}:none@production"
    assert world.governed.deploy_to("alice", desired(None), world.deployment).changes == ()  # nothing left to remove


def test_the_request_checks_catch_what_moto_would_take(world: World) -> None:
    """The checks are not vacuous: an UpdateEndpoint botocore's shape refuses (moto has no UpdateEndpoint to refuse it) is named."""
    from botocore.session import get_session

    from skyops.aws.endpoint_requests import update_request

    model = get_session().get_service_model("sagemaker").operation_model("UpdateEndpoint")
    bad = update_request(
        replace(SETTINGS, canary=replace(SETTINGS.canary, wait_seconds=4000)), f"{ENDPOINT}-v1-0000000x", retain_instance_count=False
    )
    bad["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] = "SLOWLY"
    world.checked(bad, model)
    assert world.checked.problems == [
        "UpdateEndpoint: DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.Type: 'SLOWLY' is not one of the values "
        "of botocore's TrafficRoutingConfigType",
        "UpdateEndpoint: DeploymentConfig.BlueGreenUpdatePolicy.TrafficRoutingConfiguration.WaitIntervalInSeconds: 4000 is outside "
        "botocore's WaitIntervalInSeconds range 0..3600",
    ]
