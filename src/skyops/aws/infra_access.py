"""`skyops infra check-access`: every privileged action tried as each persona's role, and what IAM answered.

    matrix = check_access(guard, {"data-scientist": ds_arn, "ml-engineer": mle_arn}, ProbeTarget(...))
    matrix.mismatches()     # [] when the Data Scientist is denied each privileged action and the ML Engineer allowed

Each probe is a real request, made with the role's temporary credentials (sts:AssumeRole through the guard), on a
resource that does not exist (`skyops-access-probe-<random>`), so nothing is created, changed or deleted whatever
IAM decides. AWS checks permissions before it looks the resource up: AccessDenied means IAM refused; a validation
or not-found answer (or success, for the reads) means IAM allowed the action. Anything else (a throttle, a server
error) is `unknown` and counts as a mismatch. A few unprivileged actions are tried too, so a role that is denied
everything (a broken trust or policy) does not pass for a well separated Data Scientist.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from skyops.aws.session import AssumedRole, AwsGuard

DATA_SCIENTIST, ML_ENGINEER = "data-scientist", "ml-engineer"
_DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess", "Forbidden", "403"}


class Verdict(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ProbeTarget:
    """Where the probes point: the environment's bucket and model package group, and a name nothing has."""

    bucket: str
    model_group: str
    region: str
    account: str
    partition: str = "aws"
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", f"skyops-access-probe-{secrets.token_hex(4)}")


@dataclass(frozen=True)
class Probe:
    """One action to try. `privileged`: only the ML Engineer may do it."""

    key: str
    what: str
    action: str
    privileged: bool
    call: Callable[[AssumedRole, ProbeTarget], Any]


@dataclass(frozen=True)
class Cell:
    verdict: Verdict
    detail: str  # AWS's error code, or 'ok'


@dataclass(frozen=True)
class AccessMatrix:
    personas: tuple[str, ...]
    rows: tuple[tuple[Probe, Mapping[str, Cell]], ...]

    def mismatches(self) -> list[str]:
        """Every cell that is not what the separation of the personas says, one line each."""
        found = []
        for probe, cells in self.rows:
            for persona in self.personas:
                want, got = expected(probe, persona), cells[persona]
                if got.verdict is not want:
                    found.append(f"{persona} {probe.what} ({probe.action}): {got.verdict.value} ({got.detail}), expected {want.value}")
        return found


def expected(probe: Probe, persona: str) -> Verdict:
    """The separation: the Data Scientist is denied each privileged action; everyone else is allowed all of them."""
    return Verdict.DENIED if probe.privileged and persona == DATA_SCIENTIST else Verdict.ALLOWED


def _sm(role: AssumedRole) -> Any:
    return role.client("sagemaker")


def _package_arn(t: ProbeTarget) -> str:
    return f"arn:{t.partition}:sagemaker:{t.region}:{t.account}:model-package/{t.model_group}/999999"


PROBES: tuple[Probe, ...] = (
    Probe(
        "read-data",
        "read the data",
        "s3:ListBucket",
        False,
        lambda r, t: r.client("s3").list_objects_v2(Bucket=t.bucket, Prefix="data/", MaxKeys=1),
    ),
    Probe(
        "list-versions",
        "list model versions",
        "sagemaker:ListModelPackages",
        False,
        lambda r, t: _sm(r).list_model_packages(ModelPackageGroupName=t.model_group, MaxResults=1),
    ),
    Probe(
        "start-pipeline",
        "start a pipeline execution",
        "sagemaker:StartPipelineExecution",
        False,
        lambda r, t: _sm(r).start_pipeline_execution(PipelineName=t.name),
    ),
    Probe(
        "approve",
        "approve a model version",
        "sagemaker:UpdateModelPackage",
        True,
        lambda r, t: _sm(r).update_model_package(
            ModelPackageArn=_package_arn(t), ModelApprovalStatus="Approved", ApprovalDescription="skyops check-access probe"
        ),
    ),
    Probe(
        "create-endpoint-config",
        "create an endpoint configuration",
        "sagemaker:CreateEndpointConfig",
        True,
        lambda r, t: _sm(r).create_endpoint_config(
            EndpointConfigName=t.name,
            ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": t.name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
            ],
        ),
    ),
    Probe(
        "create-endpoint",
        "create an endpoint",
        "sagemaker:CreateEndpoint",
        True,
        lambda r, t: _sm(r).create_endpoint(EndpointName=t.name, EndpointConfigName=t.name),
    ),
    Probe(
        "delete-endpoint", "delete an endpoint", "sagemaker:DeleteEndpoint", True, lambda r, t: _sm(r).delete_endpoint(EndpointName=t.name)
    ),
    Probe(
        "update-pipeline", "change a pipeline", "sagemaker:UpdatePipeline", True, lambda r, t: _sm(r).update_pipeline(PipelineName=t.name)
    ),
    Probe(
        "delete-pipeline", "delete a pipeline", "sagemaker:DeletePipeline", True, lambda r, t: _sm(r).delete_pipeline(PipelineName=t.name)
    ),
    Probe(
        "delete-alarm",
        "delete a monitoring alarm",
        "cloudwatch:DeleteAlarms",
        True,
        lambda r, t: r.client("cloudwatch").delete_alarms(AlarmNames=[t.name]),
    ),
    Probe(
        "read-capture",
        "read production data capture",
        "s3:GetObject",
        True,
        lambda r, t: r.client("s3").get_object(Bucket=t.bucket, Key=f"capture/{t.name}"),
    ),
)


def try_probe(probe: Probe, role: AssumedRole, target: ProbeTarget) -> Cell:
    """Make the probe's request as `role` and read IAM's decision from the answer."""
    from botocore.exceptions import BotoCoreError, ClientError  # heavy: loaded only when AWS is used

    try:
        probe.call(role, target)
    except ClientError as e:
        error, status = e.response.get("Error", {}), e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = str(error.get("Code") or status)
        if code in _DENIED_CODES or status == 403:
            return Cell(Verdict.DENIED, code)
        if 400 <= int(status or 400) < 500:
            return Cell(Verdict.ALLOWED, code)  # authorised, then refused for the resource that does not exist
        return Cell(Verdict.UNKNOWN, f"{code}: {error.get('Message', '')}"[:120])
    except BotoCoreError as e:
        return Cell(Verdict.UNKNOWN, type(e).__name__)
    return Cell(Verdict.ALLOWED, "ok")


def check_access(guard: AwsGuard, roles: Mapping[str, str], target: ProbeTarget, probes: tuple[Probe, ...] = PROBES) -> AccessMatrix:
    """Assume each role (persona -> role ARN) through the guard and try every probe as it."""
    assumed = {persona: guard.assume_role(arn, f"skyops-check-access-{persona}") for persona, arn in roles.items()}
    rows = tuple((probe, {persona: try_probe(probe, role, target) for persona, role in assumed.items()}) for probe in probes)
    return AccessMatrix(personas=tuple(roles), rows=rows)
