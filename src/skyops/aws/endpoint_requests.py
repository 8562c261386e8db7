"""The requests that put an Approved model package behind a SageMaker endpoint, as plain data (no AWS here).

One environment's endpoint is made of:

    model            <endpoint>-v<version>-<hash>   CreateModel: the package ARN as the container (ModelPackageName)
    endpoint config  <endpoint>-v<version>-<hash>   CreateEndpointConfig: one variant (AllTraffic), data capture
    endpoint         <endpoint>                     CreateEndpoint, then UpdateEndpoint with blue/green guardrails
    alarms           <endpoint>-invocation-5xx-errors, <endpoint>-model-latency     PutMetricAlarm
    scaling          endpoint/<endpoint>/variant/AllTraffic                         RegisterScalableTarget, PutScalingPolicy

Models and endpoint configs cannot be changed in SageMaker, so each one's name ends in a hash of
its request: the same desired state gives the same names (applying again finds them), a different
one new names (never a clash with what serves now). The variant keeps one name in every config,
as SageMaker's blue/green deployments require. Alarm, policy and scalable-target names are fixed
per endpoint: they are updated in place.

Each request is built to botocore's request shape of its operation (tests validate every one sent,
ranges and patterns included); `matches` compares what AWS describes with what would be sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from skyops.targets import SageMakerTarget

VARIANT = "AllTraffic"  # the variant name every config keeps (blue/green needs the same name)
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"  # invocations per instance per minute
METRICS_NAMESPACE = "AWS/SageMaker"
JSON_CONTENT_TYPES = ("application/json",)  # captured as text; images (and anything else) are captured base64-encoded
TAG_PREFIX = "skyops:"


def resource_id(endpoint: str) -> str:
    """Application Auto Scaling's id of the endpoint's variant."""
    return f"endpoint/{endpoint}/variant/{VARIANT}"


def alarm_names(endpoint: str) -> tuple[str, str]:
    """(the 5xx error-rate alarm, the model-latency alarm): deterministic per endpoint."""
    return f"{endpoint}-invocation-5xx-errors", f"{endpoint}-model-latency"


def policy_name(endpoint: str) -> str:
    return f"{endpoint}-invocations-per-instance"


def tags(environment: str, model: str, version: int) -> list[dict[str, str]]:
    """Tags on the model, config and endpoint: which environment, model and version they belong to (cost reports too)."""
    return [
        {"Key": f"{TAG_PREFIX}environment", "Value": environment},
        {"Key": f"{TAG_PREFIX}model", "Value": model},
        {"Key": f"{TAG_PREFIX}version", "Value": str(version)},
    ]


def model_request(settings: SageMakerTarget, package_arn: str, version: int, role_arn: str, labels: list[dict[str, str]]) -> dict[str, Any]:
    """CreateModel from the Approved package: its ARN as the container, so the model is that version's image and data."""
    body = {"Containers": [{"ModelPackageName": package_arn}], "ExecutionRoleArn": role_arn}
    return {"ModelName": _named(settings.endpoint, version, body), **body, "Tags": labels}


def config_request(settings: SageMakerTarget, model_name: str, version: int, labels: list[dict[str, str]]) -> dict[str, Any]:
    """CreateEndpointConfig: one production variant of `model_name`, and data capture of requests and responses."""
    capture = settings.capture
    body = {
        "ProductionVariants": [
            {
                "VariantName": VARIANT,
                "ModelName": model_name,
                "InstanceType": settings.instance_type,
                "InitialInstanceCount": settings.instance_count,
            }
        ],
        "DataCaptureConfig": {
            "EnableCapture": capture.percentage > 0,
            "InitialSamplingPercentage": capture.percentage,
            "DestinationS3Uri": capture.s3_uri,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": list(JSON_CONTENT_TYPES)},
        },
    }
    return {"EndpointConfigName": _named(settings.endpoint, version, body), **body, "Tags": labels}


def update_request(settings: SageMakerTarget, config_name: str, *, retain_instance_count: bool) -> dict[str, Any]:
    """UpdateEndpoint with SageMaker's blue/green guardrails: a canary, a baking period, rollback on the alarms.

    Args:
        retain_instance_count: keep the variant's current (autoscaled) instance count for the new fleet
            instead of the config's initial count; data capture always comes from the new config.
    """
    canary = settings.canary
    request: dict[str, Any] = {
        "EndpointName": settings.endpoint,
        "EndpointConfigName": config_name,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": "CANARY",
                    "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": canary.size_percent},
                    "WaitIntervalInSeconds": canary.wait_seconds,
                },
                "TerminationWaitInSeconds": canary.termination_wait_seconds,
                "MaximumExecutionTimeoutInSeconds": canary.max_execution_seconds,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in alarm_names(settings.endpoint)]},
        },
    }
    if retain_instance_count:
        request["RetainAllVariantProperties"] = True
        request["ExcludeRetainedVariantProperties"] = [{"VariantPropertyType": "DataCaptureConfig"}]
    return request


def alarm_requests(settings: SageMakerTarget) -> list[dict[str, Any]]:
    """PutMetricAlarm of the two rollback alarms, over the variant (old and new fleet together, AWS's first example).

    No data (no traffic) is not breaching: an idle endpoint never rolls a deployment back.
    """
    alarms, errors, latency = settings.alarms, *alarm_names(settings.endpoint)
    dimensions = [{"Name": "EndpointName", "Value": settings.endpoint}, {"Name": "VariantName", "Value": VARIANT}]
    common = {
        "Namespace": METRICS_NAMESPACE,
        "Statistic": "Average",
        "Dimensions": dimensions,
        "Period": alarms.period_seconds,
        "EvaluationPeriods": alarms.evaluation_periods,
        "DatapointsToAlarm": alarms.evaluation_periods,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }
    return [
        {
            "AlarmName": errors,
            "AlarmDescription": f"skyops: share of 5xx answers of SageMaker endpoint {settings.endpoint} above {alarms.max_5xx_rate:g}; rolls back a deployment",
            "MetricName": "Invocation5XXErrors",
            "Threshold": alarms.max_5xx_rate,
            **common,
        },
        {
            "AlarmName": latency,
            "AlarmDescription": f"skyops: average model latency of SageMaker endpoint {settings.endpoint} above {alarms.max_latency_ms:g} ms; rolls back a deployment",
            "MetricName": "ModelLatency",
            "Threshold": alarms.max_latency_ms * 1000.0,  # CloudWatch counts ModelLatency in microseconds
            **common,
        },
    ]


def scalable_target_request(settings: SageMakerTarget) -> dict[str, Any]:
    scaling = settings.autoscaling
    return {
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource_id(settings.endpoint),
        "ScalableDimension": SCALABLE_DIMENSION,
        "MinCapacity": scaling.min_instances,
        "MaxCapacity": scaling.max_instances,
    }


def scaling_policy_request(settings: SageMakerTarget) -> dict[str, Any]:
    """PutScalingPolicy: target tracking on invocations per instance (per minute), with the cooldowns."""
    scaling = settings.autoscaling
    return {
        "PolicyName": policy_name(settings.endpoint),
        "ServiceNamespace": "sagemaker",
        "ResourceId": resource_id(settings.endpoint),
        "ScalableDimension": SCALABLE_DIMENSION,
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": scaling.target_invocations_per_instance,
            "PredefinedMetricSpecification": {"PredefinedMetricType": SCALING_METRIC},
            "ScaleInCooldown": scaling.scale_in_cooldown_seconds,
            "ScaleOutCooldown": scaling.scale_out_cooldown_seconds,
        },
    }


def matches(described: Mapping[str, Any], request: Mapping[str, Any], keys: Sequence[str]) -> bool:
    """Whether what AWS describes holds the request's value at each of `keys` (lists of name/value pairs in any order)."""
    return all(_normal(described.get(key)) == _normal(request.get(key)) for key in keys)


def config_view(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an endpoint config (described, or a CreateEndpointConfig request) that decide what is served."""
    variants = [
        {key: variant.get(key) for key in ("VariantName", "ModelName", "InstanceType", "InitialInstanceCount")}
        for variant in config.get("ProductionVariants", [])
    ]
    capture = config.get("DataCaptureConfig") or {}
    keys = ("EnableCapture", "InitialSamplingPercentage", "DestinationS3Uri", "CaptureOptions", "CaptureContentTypeHeader")
    return {"variants": variants, "capture": {key: _normal(capture.get(key)) for key in keys}}


def package_version(package_arn: str) -> int | None:
    """The version number at the end of a versioned package ARN (.../model-package/<group>/<version>)."""
    last = package_arn.rsplit("/", 1)[-1]
    return int(last) if last.isdigit() else None


def _named(endpoint: str, version: int, body: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]
    return f"{endpoint}-v{version}-{digest}"


def _normal(value: Any) -> Any:
    """A value to compare: numbers as floats, lists of dicts sorted, so AWS's echo equals the request."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping):
        return {key: _normal(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_normal(item) for item in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True)) if all(isinstance(i, dict) for i in items) else items
    return value
