"""What a SageMaker endpoint needs to serve an environment's desired version, found with reads only.

`EndpointPlanner.plan` reads (DescribeEndpoint, DescribeEndpointConfig, DescribeModel,
ListModelPackages, DescribeModelPackage, DescribeAlarms, DescribeScalableTargets,
DescribeScalingPolicies) and returns an `EndpointPlan`: the requests `apply` will send
(`skyops.aws.endpoint_deploy`), each in words in `changes`, or the `refusals` that keep the version
from being deployed at all. An endpoint whose current config already serves what the desired state
asks (same model, instance type and count, capture) with the same alarms and scaling needs nothing,
so applying twice changes nothing.

The version must be one an endpoint can serve: Approved, with the model data and image its package
was registered with (InferenceSpecification: the model.tar.gz as ModelDataUrl, the inference image).
A version registered without them is refused by name, before anything is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from skyops.aws.endpoint_requests import (
    alarm_names,
    alarm_requests,
    config_request,
    config_view,
    matches,
    model_request,
    resource_id,
    scalable_target_request,
    scaling_policy_request,
    tags,
    update_request,
)
from skyops.aws.endpoint_state import DesiredEndpoint, EndpointReader, capture_text, instance_types
from skyops.aws.model_packages import ApprovalStatus, ModelPackage, ModelPackages
from skyops.errors import ConfigError, problems_error
from skyops.targets import ROLE_ARN, SageMakerTarget

ROLE_ENV = "SKYOPS_SAGEMAKER_ROLE_ARN"  # the execution role when the environment file names none (as `skyops sagemaker`)
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
_ALARM_KEYS = (
    *("AlarmDescription", "MetricName", "Namespace", "Statistic", "Dimensions", "Period", "EvaluationPeriods"),
    *("DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData"),
)
_POLICY_KEYS = ("PolicyType", "TargetTrackingScalingPolicyConfiguration")


class EndpointAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, kw_only=True)
class EndpointPlan:
    """What `apply` will send, found by `plan` with reads only; `changes` says it in words (empty: in sync).

    `refusals` (one line each) are why the version cannot be deployed at all (not Approved, no model
    data): then nothing else was planned, and `apply` must not be called.
    """

    settings: SageMakerTarget
    model: str
    version: int | None
    serving: int | None  # the package version the endpoint serves now (None: no endpoint, or a model not from a package)
    package_arn: str | None = None
    model_data: str | None = None  # the version's model.tar.gz, as its package records it
    config_name: str | None = None
    create_model: dict[str, Any] | None = None
    create_config: dict[str, Any] | None = None
    endpoint_action: EndpointAction | None = None
    create_endpoint: dict[str, Any] | None = None  # the CreateEndpoint request (action create)
    update: dict[str, Any] | None = None  # the UpdateEndpoint request (action update)
    scaling_off_first: bool = False
    put_alarms: tuple[dict[str, Any], ...] = ()
    scalable_target: dict[str, Any] | None = None
    scaling_policy: dict[str, Any] | None = None
    delete_alarms: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()
    refusals: tuple[str, ...] = ()


class EndpointPlanner(EndpointReader):
    """The planning half of `EndpointDeployment`: the checks made without a request, and `plan` (reads only).

    Args:
        packages: the model package groups, through the guard whose clients the endpoint's reads also use.
        default_role_arn: the models' execution role when the environment file names none ($SKYOPS_SAGEMAKER_ROLE_ARN).
    """

    def __init__(self, packages: ModelPackages, *, default_role_arn: str | None = None) -> None:
        super().__init__(packages)
        self.default_role_arn = default_role_arn

    def problems(self, desired: DesiredEndpoint) -> list[str]:
        """What keeps `desired` from being planned, found without any request (botocore's model is read from disk)."""
        settings = desired.sagemaker
        if settings is None:
            return [f"{desired.source} has no sagemaker settings; expected a `sagemaker:` section with the endpoint's name"]
        found = []
        role = settings.role_arn or self.default_role_arn
        if not role:
            found.append(f"no execution role for the endpoint's model; set sagemaker.role_arn in {desired.source}, or ${ROLE_ENV}")
        elif not ROLE_ARN.fullmatch(role):
            found.append(f"${ROLE_ENV}={role} is not an IAM role ARN; expected arn:aws:iam::<account>:role/<name>")
        if settings.instance_type not in instance_types():
            found.append(
                f"sagemaker.instance_type {settings.instance_type!r} is not an instance type SageMaker endpoints take "
                f"(botocore's ProductionVariantInstanceType); e.g. ml.m5.large, ml.c5.xlarge, ml.g4dn.xlarge"
            )
        return found

    def plan(self, desired: DesiredEndpoint) -> EndpointPlan:
        """What apply would send to make the endpoint serve `desired` (reads only; see the module docstring).

        Raises:
            ConfigError: `problems` found some (before any request), the version is not in the group, or the
                endpoint is busy with another change or broken (it says how to go on). A version that cannot
                be deployed is not raised: it is the plan's `refusals`, for the caller to audit.
        """
        if found := self.problems(desired):
            raise problems_error(
                ConfigError, f"the SageMaker settings of {desired.source}", found, hint="see deploy/environments/README.md"
            )
        settings = desired.sagemaker
        assert settings is not None  # problems() says so otherwise
        endpoint = self._described("endpoint", settings.endpoint, lambda: self.sagemaker.describe_endpoint(EndpointName=settings.endpoint))
        current = None
        if endpoint is not None:
            name = endpoint["EndpointConfigName"]
            current = self._described("endpoint config", name, lambda: self.sagemaker.describe_endpoint_config(EndpointConfigName=name))
        serving = self._served_version(current)
        base: dict[str, Any] = {"settings": settings, "model": desired.model, "version": desired.version, "serving": serving}
        if desired.version is None:
            return self._removal(base, endpoint)
        package_arn = self._package_arn(desired.model, desired.version)
        package = self.packages.describe(package_arn)
        if refusals := package_refusals(desired.model, package):
            return EndpointPlan(**base, package_arn=package_arn, refusals=tuple(refusals))
        require_settled(settings.endpoint, endpoint)
        labels = tags(desired.environment, desired.model, desired.version)
        role = settings.role_arn or self.default_role_arn or ""
        model = model_request(settings, package_arn, desired.version, role, labels)
        config = config_request(settings, model["ModelName"], desired.version, labels)
        config_name = config["EndpointConfigName"]
        changes: list[str] = []
        steps: dict[str, Any] = {"package_arn": package_arn, "model_data": package.model_data_url, "config_name": config_name}
        if current is None or config_view(current) != config_view(config):
            steps.update(self._serving_changes(desired, package, model, config, endpoint, current, changes))
        else:  # the endpoint serves this content already (perhaps under another config's name)
            steps["config_name"] = current["EndpointConfigName"]
        alarms = self._alarm_changes(settings, changes)
        steps.update(self._scaling_changes(settings, bool(steps.get("scaling_off_first")), changes))
        return EndpointPlan(**base, **steps, put_alarms=alarms, changes=tuple(changes))

    # ---- planning, step by step -------------------------------------------------------------

    def _serving_changes(
        self,
        desired: DesiredEndpoint,
        package: ModelPackage,
        model: dict[str, Any],
        config: dict[str, Any],
        endpoint: Mapping[str, Any] | None,
        current: Mapping[str, Any] | None,
        changes: list[str],
    ) -> dict[str, Any]:
        """The model, config and endpoint steps when the endpoint does not serve `config`'s content yet."""
        settings, steps = desired.sagemaker, dict[str, Any]()
        assert settings is not None  # plan() checked
        model_name, config_name = model["ModelName"], config["EndpointConfigName"]
        if self._described("model", model_name, lambda: self.sagemaker.describe_model(ModelName=model_name)) is None:
            steps["create_model"] = model
            changes.append(
                f"create model {model_name}: {desired.model} v{desired.version} ({package.arn}, model data {package.model_data_url})"
            )
        if (
            self._described("endpoint config", config_name, lambda: self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name))
            is None
        ):
            steps["create_config"] = config
            changes.append(
                f"create endpoint config {config_name}: {settings.instance_count} x {settings.instance_type}, "
                f"capture {capture_text(config['DataCaptureConfig'])}"
            )
        if endpoint is None:
            steps["endpoint_action"] = EndpointAction.CREATE
            steps["create_endpoint"] = {"EndpointName": settings.endpoint, "EndpointConfigName": config_name, "Tags": model["Tags"]}
            changes.append(f"create endpoint {settings.endpoint} serving {desired.model} v{desired.version}")
            return steps
        was = (current or {}).get("ProductionVariants", [{}])[0]
        registered, _ = self._scaling(settings.endpoint)
        type_changes = was.get("InstanceType") != settings.instance_type
        steps["scaling_off_first"] = registered is not None and type_changes
        retain = registered is not None and not type_changes and was.get("InitialInstanceCount") == settings.instance_count
        steps["endpoint_action"] = EndpointAction.UPDATE
        steps["update"] = update_request(settings, config_name, retain_instance_count=retain)
        if steps["scaling_off_first"]:
            changes.append(
                f"deregister autoscaling of {settings.endpoint} while its instance type changes "
                f"({was.get('InstanceType')} -> {settings.instance_type}); registered again after"
            )
        canary = settings.canary
        changes.append(
            f"update endpoint {settings.endpoint}: {desired.model} {version_text(self._served_version(current))} -> v{desired.version} "
            f"({endpoint['EndpointConfigName']} -> {config_name}), blue/green: canary {canary.size_percent}% for "
            f"{canary.wait_seconds} s, rolled back by alarms {', '.join(alarm_names(settings.endpoint))}"
        )
        return steps

    def _alarm_changes(self, settings: SageMakerTarget, changes: list[str]) -> tuple[dict[str, Any], ...]:
        found = {alarm["AlarmName"]: alarm for alarm in self._alarms(settings.endpoint)}
        send = []
        for request in alarm_requests(settings):
            described = found.get(request["AlarmName"])
            if described is None or not matches(described, request, _ALARM_KEYS):
                send.append(request)
                threshold = request["Threshold"]
                shown = f"{threshold / 1000:g} ms" if request["MetricName"] == "ModelLatency" else f"{threshold:g}"  # µs in CloudWatch
                changes.append(
                    f"put alarm {request['AlarmName']}: {request['MetricName']} Average > {shown} "
                    f"for {request['EvaluationPeriods']} x {request['Period']} s"
                )
        return tuple(send)

    def _scaling_changes(self, settings: SageMakerTarget, again: bool, changes: list[str]) -> dict[str, Any]:
        """Register the scalable target and put the policy when they differ, or when deregistered first (`again`)."""
        target, policy = self._scaling(settings.endpoint)
        wanted_target, wanted_policy = scalable_target_request(settings), scaling_policy_request(settings)
        steps: dict[str, Any] = {}
        if again or target is None or not matches(target, wanted_target, ("MinCapacity", "MaxCapacity")):
            steps["scalable_target"] = wanted_target
            changes.append(
                f"register autoscaling of {resource_id(settings.endpoint)}: {settings.autoscaling.min_instances}..{settings.autoscaling.max_instances} instances"
            )
        if again or policy is None or not matches(policy, wanted_policy, _POLICY_KEYS):
            steps["scaling_policy"] = wanted_policy
            changes.append(
                f"put scaling policy {wanted_policy['PolicyName']}: target "
                f"{settings.autoscaling.target_invocations_per_instance:g} invocations per instance per minute"
            )
        return steps

    def _removal(self, base: dict[str, Any], endpoint: Mapping[str, Any] | None) -> EndpointPlan:
        """`version: null`: the endpoint, its scaling and its alarms go (when there are any)."""
        settings: SageMakerTarget = base["settings"]
        name, changes = settings.endpoint, []
        action = None
        if endpoint is not None:
            if endpoint["EndpointStatus"] in BUSY:
                require_settled(name, endpoint)
            action = EndpointAction.DELETE
            target, _ = self._scaling(name)
            if target is not None:
                changes.append(f"deregister autoscaling of {resource_id(name)}")
            changes.append(f"delete endpoint {name} (serving {base['model']} {version_text(base['serving'])})")
        alarms = tuple(alarm["AlarmName"] for alarm in self._alarms(name))
        if alarms:
            changes.append(f"delete alarms {', '.join(alarms)}")
        return EndpointPlan(**base, endpoint_action=action, delete_alarms=alarms, changes=tuple(changes))


def package_refusals(model: str, package: ModelPackage) -> list[str]:
    """Why version `package` of `model` cannot be served by an endpoint, one line each (empty: it can)."""
    found = []
    if package.status is not ApprovalStatus.APPROVED:
        found.append(f"{model} v{package.version} is {package.status.value}, not Approved: only an Approved version may be deployed")
    missing = [
        what
        for what, value in (("ModelDataUrl (its model.tar.gz)", package.model_data_url), ("inference Image", package.image_uri))
        if not value
    ]
    if missing:
        found.append(
            f"{model} v{package.version} has nothing to serve: its package {package.arn} records no {' and no '.join(missing)}; "
            f"register the model with its model.tar.gz and image (the pipeline's RegisterModel step does), approve that version "
            f"and name it here"
        )
    return found


def require_settled(endpoint: str, described: Mapping[str, Any] | None) -> None:
    """An endpoint that is busy or broken cannot take a deployment: say so, and how to go on."""
    if described is None or described["EndpointStatus"] == "InService":
        return
    status, reason = described["EndpointStatus"], described.get("FailureReason") or ""
    if status in BUSY:
        raise ConfigError(
            f"SageMaker endpoint {endpoint} is {status}: a change is under way",
            hint="wait until it is InService (skyops deploy status), then apply again",
        )
    raise ConfigError(
        f"SageMaker endpoint {endpoint} is {status}{': ' + reason if reason else ''}; it cannot take a deployment",
        hint="set `version: null` and apply (that deletes the endpoint), then set the version and apply again",
    )


def version_text(version: int | None) -> str:
    return "nothing" if version is None else f"v{version}"
