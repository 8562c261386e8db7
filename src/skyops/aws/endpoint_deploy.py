"""A SageMaker endpoint serving an environment's Approved model package version: plan, apply, status.

    deployment = EndpointDeployment(ModelPackages(AwsGuard()), default_role_arn=os.environ.get(ROLE_ENV))
    governed = GovernedRegistry(PackageGroupStore(deployment.packages, desired.model), governance)
    governed.deploy_to("alice", desired, deployment)      # role, Approved, plan (reads), apply (writes), audited
    deployment.status(desired)                            # what the endpoint serves now

`plan` only reads (DescribeEndpoint, DescribeEndpointConfig, DescribeModel, ListModelPackages,
DescribeAlarms, DescribeScalableTargets, DescribeScalingPolicies) and says what `apply` would change;
an endpoint whose current config already serves what the desired state asks (same model, instance
type and count, capture) with the same alarms and scaling needs nothing, so applying twice changes
nothing. `apply`, in this order (the requests are built in `endpoint_requests.py`):

1. the package version is described again and must be Approved (the governed API checked it too);
2. CreateModel (the package ARN as the container) and CreateEndpointConfig (one variant, data
   capture), when the endpoint does not serve their content yet;
3. PutMetricAlarm for the two rollback alarms, before any deployment names them;
4. CreateEndpoint when there is none, else UpdateEndpoint with SageMaker's blue/green guardrails:
   a canary share of the new fleet takes traffic for the baking period, an alarm in ALARM during
   the deployment rolls it back, and the old fleet is kept until the new one has baked. Changing the
   instance type of an autoscaled variant needs its scaling deregistered first (SageMaker refuses
   the update otherwise); an unchanged type keeps the current, autoscaled instance count;
5. the endpoint is waited for until it settles (InService, or Failed / UpdateRollbackFailed);
6. RegisterScalableTarget and PutScalingPolicy (target tracking on invocations per instance);
7. an update that settled on the old config was rolled back by SageMaker: EndpointRolledBack.

`version: null` deletes the endpoint, its scaling and its alarms (models and configs stay: they cost
nothing). Every client comes from the profile guard; AWS errors become AwsRequestError saying what was asked.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from skyops.aws.endpoint_requests import (
    SCALABLE_DIMENSION,
    alarm_names,
    alarm_requests,
    config_request,
    config_view,
    matches,
    model_request,
    policy_name,
    resource_id,
    scalable_target_request,
    scaling_policy_request,
    tags,
    update_request,
)
from skyops.aws.endpoint_state import DesiredEndpoint, EndpointReader, capture_text, instance_types
from skyops.aws.model_packages import ApprovalStatus, ModelPackages
from skyops.aws.session import aws_request
from skyops.errors import ConfigError, SkyopsError, problems_error
from skyops.targets import ROLE_ARN, SageMakerTarget

ROLE_ENV = "SKYOPS_SAGEMAKER_ROLE_ARN"  # the execution role when the environment file names none (as `skyops sagemaker`)
POLL_SECONDS = 30.0  # how often a settling endpoint is described
SETTLE_MARGIN = 1800  # seconds beyond the deployment's own limit that provisioning instances may take
_BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
_ALARM_KEYS = (
    *("AlarmDescription", "MetricName", "Namespace", "Statistic", "Dimensions", "Period", "EvaluationPeriods"),
    *("DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData"),
)
_POLICY_KEYS = ("PolicyType", "TargetTrackingScalingPolicyConfiguration")


class EndpointRolledBack(SkyopsError):
    """SageMaker's guardrails rolled an update back: the endpoint serves its previous config."""

    exit_code = 1


class EndpointFailed(SkyopsError):
    """The endpoint did not settle in service (Failed, UpdateRollbackFailed, or too long)."""

    exit_code = 1


class EndpointAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True, kw_only=True)
class EndpointPlan:
    """What `apply` will send, found by `plan` with reads only; `changes` says it in words (empty: in sync)."""

    settings: SageMakerTarget
    model: str
    version: int | None
    serving: int | None  # the package version the endpoint serves now (None: no endpoint, or a model not from a package)
    package_arn: str | None = None
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


class EndpointDeployment(EndpointReader):
    """One environment's SageMaker endpoint as a deploy target of `GovernedRegistry.deploy_to` (see the module docstring).

    Args:
        packages: the model package groups, through the guard whose clients this deployment also uses.
        default_role_arn: the models' execution role when the environment file names none ($SKYOPS_SAGEMAKER_ROLE_ARN).
        poll_seconds: how often a settling endpoint is described.
    """

    kind = "sagemaker"

    def __init__(self, packages: ModelPackages, *, default_role_arn: str | None = None, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__(packages)
        self.default_role_arn = default_role_arn
        self.poll_seconds = poll_seconds

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
                endpoint is busy with another change or broken (it says how to go on).
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
        _require_settled(settings.endpoint, endpoint)
        package_arn = self._package_arn(desired.model, desired.version)
        labels = tags(desired.environment, desired.model, desired.version)
        role = settings.role_arn or self.default_role_arn or ""
        model = model_request(settings, package_arn, desired.version, role, labels)
        config = config_request(settings, model["ModelName"], desired.version, labels)
        config_name = config["EndpointConfigName"]
        changes: list[str] = []
        steps: dict[str, Any] = {"package_arn": package_arn, "config_name": config_name}
        if current is None or config_view(current) != config_view(config):
            steps.update(self._serving_changes(desired, settings, model, config, endpoint, current, changes))
        else:  # the endpoint serves this content already (perhaps under another config's name)
            steps["config_name"] = current["EndpointConfigName"]
        alarms = self._alarm_changes(settings, changes)
        steps.update(self._scaling_changes(settings, bool(steps.get("scaling_off_first")), changes))
        return EndpointPlan(**base, **steps, put_alarms=alarms, changes=tuple(changes))

    def apply(self, plan: EndpointPlan, record: MutableMapping[str, Any]) -> None:
        """Send what `plan` found, in the module docstring's order, noting in `record` (the audit record's details)
        each request as it succeeds, so a deployment that fails part-way is audited with what it did.

        Raises:
            ConfigError: the version is no longer Approved (nothing was sent).
            EndpointRolledBack: SageMaker rolled the update back (alarms fired, or the new fleet failed).
            EndpointFailed: the endpoint did not settle in service.
            AwsRequestError: AWS refused a request.
        """
        settings, endpoint, done = plan.settings, plan.settings.endpoint, list[str]()
        record.update({"endpoint": endpoint, "served_before": plan.serving, "done": done})
        if plan.endpoint_action is EndpointAction.DELETE or plan.version is None:
            self._remove(plan, done)
            return
        assert plan.package_arn is not None
        self._require_approved(plan)
        record.update({"package": plan.package_arn, "endpoint_config": plan.config_name})
        if (model := plan.create_model) is not None:
            self._send(done, "CreateModel", model["ModelName"], lambda: self.sagemaker.create_model(**model))
        if (config := plan.create_config) is not None:
            self._send(done, "CreateEndpointConfig", config["EndpointConfigName"], lambda: self.sagemaker.create_endpoint_config(**config))
        for alarm in plan.put_alarms:
            self._send(done, "PutMetricAlarm", alarm["AlarmName"], functools.partial(self.cloudwatch.put_metric_alarm, **alarm))
        if plan.scaling_off_first:
            self._scaling_off(endpoint, done)
        settled = None
        if plan.endpoint_action is EndpointAction.CREATE and (create := plan.create_endpoint) is not None:
            self._send(done, "CreateEndpoint", endpoint, lambda: self.sagemaker.create_endpoint(**create))
            settled = self._settle(endpoint, max(3600, settings.canary.max_execution_seconds))
        elif plan.endpoint_action is EndpointAction.UPDATE and (update := plan.update) is not None:
            self._send(done, "UpdateEndpoint", endpoint, lambda: self.sagemaker.update_endpoint(**update))
            canary = settings.canary
            settled = self._settle(endpoint, canary.max_execution_seconds + canary.termination_wait_seconds)
        if (target := plan.scalable_target) is not None:
            self._send(done, "RegisterScalableTarget", resource_id(endpoint), lambda: self.autoscaling.register_scalable_target(**target))
        if (policy := plan.scaling_policy) is not None:
            self._send(done, "PutScalingPolicy", policy["PolicyName"], lambda: self.autoscaling.put_scaling_policy(**policy))
        if settled is not None and settled["EndpointConfigName"] != plan.config_name:
            record["rolled_back_to"] = settled["EndpointConfigName"]
            raise EndpointRolledBack(
                f"SageMaker rolled endpoint {endpoint} back: it serves {plan.model} {_v(plan.serving)} ({settled['EndpointConfigName']}) "
                f"instead of v{plan.version} ({plan.config_name}): {settled.get('FailureReason') or 'an alarm fired during the deployment'}",
                hint=f"see the alarms and the endpoint (skyops deploy status), fix the model and register a new version, "
                f"or revert the environment file; apply tries v{plan.version} again",
            )

    # ---- planning -----------------------------------------------------------------------------------

    def _serving_changes(
        self,
        desired: DesiredEndpoint,
        settings: SageMakerTarget,
        model: dict[str, Any],
        config: dict[str, Any],
        endpoint: Mapping[str, Any] | None,
        current: Mapping[str, Any] | None,
        changes: list[str],
    ) -> dict[str, Any]:
        """The model, config and endpoint steps when the endpoint does not serve `config`'s content yet."""
        steps: dict[str, Any] = {}
        model_name, config_name = model["ModelName"], config["EndpointConfigName"]
        if self._described("model", model_name, lambda: self.sagemaker.describe_model(ModelName=model_name)) is None:
            steps["create_model"] = model
            changes.append(f"create model {model_name}: {desired.model} v{desired.version} ({model['Containers'][0]['ModelPackageName']})")
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
            f"update endpoint {settings.endpoint}: {desired.model} {_v(self._served_version(current))} -> v{desired.version} "
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
            if endpoint["EndpointStatus"] in _BUSY:
                _require_settled(name, endpoint)
            action = EndpointAction.DELETE
            target, _ = self._scaling(name)
            if target is not None:
                changes.append(f"deregister autoscaling of {resource_id(name)}")
            changes.append(f"delete endpoint {name} (serving {base['model']} {_v(base['serving'])})")
        alarms = tuple(alarm["AlarmName"] for alarm in self._alarms(name))
        if alarms:
            changes.append(f"delete alarms {', '.join(alarms)}")
        return EndpointPlan(**base, endpoint_action=action, delete_alarms=alarms, changes=tuple(changes))

    # ---- applying -----------------------------------------------------------------------------------

    def _require_approved(self, plan: EndpointPlan) -> None:
        assert plan.package_arn is not None
        status = self.packages.describe(plan.package_arn).status
        if status is not ApprovalStatus.APPROVED:
            raise ConfigError(
                f"{plan.model} v{plan.version} is {status.value}, not Approved: only an Approved version may be deployed",
                hint=f"an ML Engineer approves it first: skyops models approve {plan.version} --model {plan.model}",
            )

    def _remove(self, plan: EndpointPlan, done: list[str]) -> None:
        name = plan.settings.endpoint
        if plan.endpoint_action is EndpointAction.DELETE:
            if self._scaling(name)[0] is not None:
                self._scaling_off(name, done)
            self._send(done, "DeleteEndpoint", name, lambda: self.sagemaker.delete_endpoint(EndpointName=name))
        if plan.delete_alarms:
            self._send(
                done,
                "DeleteAlarms",
                ", ".join(plan.delete_alarms),
                lambda: self.cloudwatch.delete_alarms(AlarmNames=list(plan.delete_alarms)),
            )

    def _scaling_off(self, endpoint: str, done: list[str]) -> None:
        """Delete the policy (when there is one) and deregister the variant as a scalable target."""
        where = {"ServiceNamespace": "sagemaker", "ResourceId": resource_id(endpoint), "ScalableDimension": SCALABLE_DIMENSION}
        if self._scaling(endpoint)[1] is not None:
            name = policy_name(endpoint)
            self._send(done, "DeleteScalingPolicy", name, lambda: self.autoscaling.delete_scaling_policy(PolicyName=name, **where))
        self._send(done, "DeregisterScalableTarget", resource_id(endpoint), lambda: self.autoscaling.deregister_scalable_target(**where))

    def _settle(self, endpoint: str, max_seconds: int) -> dict[str, Any]:
        """Describe the endpoint until it is InService (returned), or Failed / UpdateRollbackFailed / too long (EndpointFailed)."""
        from botocore.exceptions import WaiterError  # heavy: loaded only when AWS is used
        from botocore.waiter import WaiterModel, create_waiter_with_client

        failures = [
            {"matcher": "path", "argument": "EndpointStatus", "state": "failure", "expected": s} for s in ("Failed", "UpdateRollbackFailed")
        ]
        config = {
            "version": 2,
            "waiters": {
                "EndpointSettled": {
                    "operation": "DescribeEndpoint",
                    "delay": self.poll_seconds,
                    "maxAttempts": max(1, math.ceil((max_seconds + SETTLE_MARGIN) / max(self.poll_seconds, 1.0))),
                    "acceptors": [
                        {"matcher": "path", "argument": "EndpointStatus", "state": "success", "expected": "InService"},
                        *failures,
                    ],
                }
            },
        }
        waiter = create_waiter_with_client("EndpointSettled", WaiterModel(config), self.sagemaker)
        try:
            waiter.wait(EndpointName=endpoint)
        except WaiterError as exc:
            last = exc.last_response or {}
            raise EndpointFailed(
                f"SageMaker endpoint {endpoint} did not come into service: {last.get('EndpointStatus', exc.kwargs.get('reason', 'no answer'))}"
                f"{': ' + last['FailureReason'] if last.get('FailureReason') else ''}",
                hint="see the endpoint's CloudWatch logs (/aws/sagemaker/Endpoints/<name>); skyops deploy status shows where it stands",
            ) from exc
        with aws_request(f"describe endpoint {endpoint}"):
            return dict(self.sagemaker.describe_endpoint(EndpointName=endpoint))

    def _send(self, done: list[str], operation: str, subject: str, call: Callable[[], Any]) -> None:
        with aws_request(f"{operation} {subject}"):
            call()
        done.append(f"{operation} {subject}")


def _require_settled(endpoint: str, described: Mapping[str, Any] | None) -> None:
    """An endpoint that is busy or broken cannot take a deployment: say so, and how to go on."""
    if described is None or described["EndpointStatus"] == "InService":
        return
    status, reason = described["EndpointStatus"], described.get("FailureReason") or ""
    if status in _BUSY:
        raise ConfigError(
            f"SageMaker endpoint {endpoint} is {status}: a change is under way",
            hint="wait until it is InService (skyops deploy status), then apply again",
        )
    raise ConfigError(
        f"SageMaker endpoint {endpoint} is {status}{': ' + reason if reason else ''}; it cannot take a deployment",
        hint="set `version: null` and apply (that deletes the endpoint), then set the version and apply again",
    )


def _v(version: int | None) -> str:
    return "nothing" if version is None else f"v{version}"
