"""A SageMaker endpoint serving an environment's Approved model package version: plan, apply, status.

    deployment = EndpointDeployment(ModelPackages(AwsGuard()), default_role_arn=os.environ.get(ROLE_ENV))
    governed = GovernedRegistry(PackageGroupStore(deployment.packages, desired.model), governance)
    governed.deploy_to("alice", desired, deployment)      # role, Approved, plan (reads), apply (writes), audited
    deployment.status(desired)                            # what the endpoint serves now

`plan` (`endpoint_plan.py`) only reads and says what `apply` would change, or why the version cannot
be deployed (`refusals`). `apply`, in this order (the requests are built in `endpoint_requests.py`):

1. the package version is described again: it must still be Approved, with its model data and image
   (the governed API and the plan checked it too);
2. CreateModel (the package ARN as the container: SageMaker takes the version's image and model.tar.gz
   from it) and CreateEndpointConfig (one variant, data capture), when the endpoint does not serve
   their content yet;
3. PutMetricAlarm for the two rollback alarms, before any deployment names them;
4. CreateEndpoint when there is none, else UpdateEndpoint with SageMaker's blue/green guardrails:
   a canary share of the new fleet takes traffic for the baking period, an alarm in ALARM during
   the deployment rolls it back, and the old fleet is kept until the new one has baked. Changing the
   instance type of an autoscaled variant needs its scaling deregistered first (SageMaker refuses
   the update otherwise); an unchanged type keeps the current, autoscaled instance count;
5. the endpoint is waited for until it settles (InService, or Failed / UpdateRollbackFailed);
6. RegisterScalableTarget and PutScalingPolicy (target tracking on invocations per instance);
7. an update that settled on the old config was rolled back by SageMaker: EndpointRolledBack.

Each request that succeeds is noted in the audit record's details (`done`) as it goes. A request
that fails after others succeeded is `EndpointIncomplete`, naming what was made: models and configs
are named by their content, so the next apply finds them and sends only what is left.

`version: null` deletes the endpoint, its scaling and its alarms (models and configs stay: they cost
nothing). Every client comes from the profile guard; AWS errors become AwsRequestError saying what was asked.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, MutableMapping
from typing import Any

from skyops.aws.endpoint_plan import ROLE_ENV, EndpointAction, EndpointPlan, EndpointPlanner, package_refusals, version_text
from skyops.aws.endpoint_requests import SCALABLE_DIMENSION, policy_name, resource_id
from skyops.aws.model_packages import ModelPackages
from skyops.aws.session import aws_request
from skyops.errors import ConfigError, SkyopsError, problems_error

__all__ = ["ROLE_ENV", "EndpointDeployment", "EndpointFailed", "EndpointIncomplete", "EndpointPlan", "EndpointRolledBack"]

POLL_SECONDS = 30.0  # how often a settling endpoint is described
SETTLE_MARGIN = 1800  # seconds beyond the deployment's own limit that provisioning instances may take


class EndpointRolledBack(SkyopsError):
    """SageMaker's guardrails rolled an update back: the endpoint serves its previous config."""

    exit_code = 1


class EndpointFailed(SkyopsError):
    """The endpoint did not settle in service (Failed, UpdateRollbackFailed, or too long)."""

    exit_code = 1


class EndpointIncomplete(SkyopsError):
    """A deployment stopped part-way: a request failed after others had made something (named in the message)."""

    exit_code = 1


class EndpointDeployment(EndpointPlanner):
    """One environment's SageMaker endpoint as a deploy target of `GovernedRegistry.deploy_to` (see the module docstring).

    Args:
        packages: the model package groups, through the guard whose clients this deployment also uses.
        default_role_arn: the models' execution role when the environment file names none ($SKYOPS_SAGEMAKER_ROLE_ARN).
        poll_seconds: how often a settling endpoint is described.
    """

    kind = "sagemaker"

    def __init__(self, packages: ModelPackages, *, default_role_arn: str | None = None, poll_seconds: float = POLL_SECONDS) -> None:
        super().__init__(packages, default_role_arn=default_role_arn)
        self.poll_seconds = poll_seconds

    def apply(self, plan: EndpointPlan, record: MutableMapping[str, Any]) -> None:
        """Send what `plan` found, in the module docstring's order, noting in `record` (the audit record's details)
        each request as it succeeds, so a deployment that fails part-way is audited with what it did.

        Raises:
            ConfigError: the plan has refusals, or the version is no longer Approved or deployable (nothing was sent).
            EndpointRolledBack: SageMaker rolled the update back (alarms fired, or the new fleet failed).
            EndpointIncomplete: a request failed, or the endpoint did not settle in service, after others had
                made something (each one named); when nothing had been made yet, that error itself
                (AwsRequestError, EndpointFailed).
        """
        done: list[str] = []
        record.update({"endpoint": plan.settings.endpoint, "served_before": plan.serving, "done": done})
        try:
            if plan.endpoint_action is EndpointAction.DELETE or plan.version is None:
                self._remove(plan, done)
            else:
                self._deploy(plan, record, done)
        except EndpointRolledBack:
            raise  # says itself what serves, and the requests are in the record
        except SkyopsError as exc:
            if not done:
                raise
            what = (
                f"removing SageMaker endpoint {plan.settings.endpoint}"
                if plan.version is None
                else f"deploying {plan.model} v{plan.version} to SageMaker endpoint {plan.settings.endpoint}"
            )
            raise EndpointIncomplete(
                f"{what} stopped part-way: {exc.message}; made before it: {', '.join(done)}",
                hint="what was made stays, named by its content: `skyops deploy plan` shows what is left and `skyops deploy apply` "
                f"sends only that{'; ' + exc.hint if exc.hint else ''}",
            ) from exc

    # ---- applying -----------------------------------------------------------------------------------

    def _deploy(self, plan: EndpointPlan, record: MutableMapping[str, Any], done: list[str]) -> None:
        settings, endpoint = plan.settings, plan.settings.endpoint
        self._require_deployable(plan)
        record.update({"package": plan.package_arn, "model_data": plan.model_data, "endpoint_config": plan.config_name})
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
                f"SageMaker rolled endpoint {endpoint} back: it serves {plan.model} {version_text(plan.serving)} ({settled['EndpointConfigName']}) "
                f"instead of v{plan.version} ({plan.config_name}): {settled.get('FailureReason') or 'an alarm fired during the deployment'}",
                hint=f"see the alarms and the endpoint (skyops deploy status), fix the model and register a new version, "
                f"or revert the environment file; apply tries v{plan.version} again",
            )

    def _require_deployable(self, plan: EndpointPlan) -> None:
        """The plan has no refusals, and the version, described once more right before anything is made, is still deployable."""
        if plan.refusals:
            refusals, hint = list(plan.refusals), "a plan with refusals is not applied; nothing was sent"
        else:
            assert plan.package_arn is not None  # planned for a version
            refusals = package_refusals(plan.model, self.packages.describe(plan.package_arn))
            hint = "the version changed after it was planned: `skyops deploy plan` shows it now"
        if len(refusals) == 1:
            raise ConfigError(refusals[0], hint=hint)
        if refusals:
            raise problems_error(ConfigError, f"{plan.model} v{plan.version}", refusals, hint=hint)

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
