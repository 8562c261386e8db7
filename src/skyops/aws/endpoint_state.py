"""Reading a SageMaker endpoint: what it is, what it serves, its capture, alarms and scaling (`skyops deploy status`).

`EndpointReader` holds the guarded clients (SageMaker's is the package groups' own; CloudWatch and
Application Auto Scaling come from the same guard) and the reads `EndpointDeployment` plans with. A
missing endpoint, config or model is None, not an error (SageMaker answers "Could not find").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from skyops.aws.endpoint_requests import SCALABLE_DIMENSION, alarm_names, package_version, policy_name, resource_id
from skyops.aws.model_packages import ModelPackages
from skyops.aws.session import AwsRequestError, aws_request
from skyops.errors import ConfigError
from skyops.targets import SageMakerTarget

_NOT_FOUND = "Could not find"  # SageMaker's ValidationException text for a missing endpoint, config or model


class DesiredEndpoint(Protocol):
    """What the deployment reads of a desired state (`skyops.registry.gitops.DesiredState` has this shape)."""

    @property
    def environment(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def version(self) -> int | None: ...
    @property
    def source(self) -> str: ...
    @property
    def sagemaker(self) -> SageMakerTarget | None: ...


@dataclass(frozen=True, kw_only=True)
class EndpointStatus:
    """What `skyops deploy status` shows of an environment's endpoint (status None: there is no endpoint)."""

    endpoint: str
    status: str | None
    failure_reason: str = ""
    config: str = ""
    package_arn: str = ""
    version: int | None = None
    instance_type: str = ""
    instances: int | None = None  # the variant's current instance count
    capture: str = ""
    scaling: str = "none"
    alarms: dict[str, str] = field(default_factory=dict)  # name -> CloudWatch state (OK, ALARM, INSUFFICIENT_DATA) or "missing"


class EndpointReader:
    """The reads of an environment's endpoint, through the clients of the package groups' guard."""

    def __init__(self, packages: ModelPackages) -> None:
        self.packages = packages
        self._clients: dict[str, Any] = {}

    def status(self, desired: DesiredEndpoint) -> EndpointStatus:
        """What the environment's endpoint is and serves now (reads only)."""
        settings = desired.sagemaker
        if settings is None:
            raise ConfigError(f"{desired.source} has no sagemaker settings", hint="see deploy/environments/README.md")
        name = settings.endpoint
        endpoint = self._described("endpoint", name, lambda: self.sagemaker.describe_endpoint(EndpointName=name))
        alarms = dict.fromkeys(alarm_names(name), "missing")
        alarms.update({alarm["AlarmName"]: alarm["StateValue"] for alarm in self._alarms(name)})
        if endpoint is None:
            return EndpointStatus(endpoint=name, status=None, alarms=alarms)
        config_name = endpoint["EndpointConfigName"]
        config = self._described(
            "endpoint config", config_name, lambda: self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        )
        variant: dict[str, Any] = ((config or {}).get("ProductionVariants") or [{}])[0]
        live: dict[str, Any] = next(iter(endpoint.get("ProductionVariants") or []), {})
        target, policy = self._scaling(name)
        scaling = "none"
        if target is not None:
            scaling = f"{target['MinCapacity']}..{target['MaxCapacity']} instances"
            if policy is not None:
                value = policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
                scaling += f", target {value:g} invocations per instance per minute"
        return EndpointStatus(
            endpoint=name,
            status=endpoint["EndpointStatus"],
            failure_reason=endpoint.get("FailureReason") or "",
            config=config_name,
            package_arn=self._package_of(config) or "",
            version=self._served_version(config),
            instance_type=variant.get("InstanceType", ""),
            instances=live.get("CurrentInstanceCount"),
            capture=capture_text((config or {}).get("DataCaptureConfig") or {}),
            scaling=scaling,
            alarms=alarms,
        )

    @property
    def sagemaker(self) -> Any:
        return self.packages.sagemaker  # the same guarded client the package groups use

    @property
    def cloudwatch(self) -> Any:
        return self._client("cloudwatch")

    @property
    def autoscaling(self) -> Any:
        return self._client("application-autoscaling")

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.packages.guard.client(service)
        return self._clients[service]

    def _described(self, what: str, name: str, call: Callable[[], Any]) -> dict[str, Any] | None:
        """The description of `what` `name`, or None when SageMaker has none of that name."""
        try:
            with aws_request(f"describe {what} {name}"):
                return dict(call())
        except AwsRequestError as exc:
            if _NOT_FOUND in exc.message:
                return None
            raise

    def _package_arn(self, group: str, version: int) -> str:
        for found in self.packages.list_versions(group):
            if found.version == version:
                return found.arn
        raise ConfigError(f"model package group {group!r} has no version {version}", hint="skyops deploy plan lists the versions")

    def _package_of(self, config: Mapping[str, Any] | None) -> str | None:
        """The package ARN of the model a config serves (None: no config, or a model not made from a package)."""
        if not config or not config.get("ProductionVariants"):
            return None
        name = config["ProductionVariants"][0].get("ModelName", "")
        model = self._described("model", name, lambda: self.sagemaker.describe_model(ModelName=name)) if name else None
        containers = (model or {}).get("Containers") or [(model or {}).get("PrimaryContainer") or {}]
        arn = containers[0].get("ModelPackageName")
        return str(arn) if arn else None

    def _served_version(self, config: Mapping[str, Any] | None) -> int | None:
        arn = self._package_of(config)
        return package_version(arn) if arn else None

    def _alarms(self, endpoint: str) -> list[dict[str, Any]]:
        with aws_request(f"describe the alarms of endpoint {endpoint}"):
            return list(self.cloudwatch.describe_alarms(AlarmNames=list(alarm_names(endpoint)))["MetricAlarms"])

    def _scaling(self, endpoint: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(the variant's scalable target, its target-tracking policy), each None when absent."""
        where = {"ServiceNamespace": "sagemaker", "ScalableDimension": SCALABLE_DIMENSION}
        with aws_request(f"describe the autoscaling of endpoint {endpoint}"):
            targets = self.autoscaling.describe_scalable_targets(ResourceIds=[resource_id(endpoint)], **where)["ScalableTargets"]
            policies = self.autoscaling.describe_scaling_policies(
                ResourceId=resource_id(endpoint), PolicyNames=[policy_name(endpoint)], **where
            )["ScalingPolicies"]
        return (targets[0] if targets else None), (policies[0] if policies else None)


@functools.cache
def instance_types() -> frozenset[str]:
    """The instance types a SageMaker endpoint variant takes, as botocore's request shape lists them."""
    import botocore.session  # heavy: loaded only when AWS is used

    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for("ProductionVariantInstanceType")
    return frozenset(shape.enum)


def capture_text(capture: Mapping[str, Any]) -> str:
    """A DataCaptureConfig in words: 'off', or '20% to s3://...'."""
    if not capture or not capture.get("EnableCapture"):
        return "off"
    return f"{capture.get('InitialSamplingPercentage')}% to {capture.get('DestinationS3Uri')}"
