"""SageMaker pipelines in AWS: upload the code archive, upsert the definition, start and watch executions.

    pipelines = SageMakerPipelines(AwsGuard())                 # every request goes through the profile guard
    pipelines.upload_code(bucket, key, archive.data)
    pipelines.upload_unbound_marker(bucket, settings.unbound_key)  # what a scheme source's input reads when nothing is found
    pipelines.upsert("drone-detection", definition, role_arn)  # -> Upserted(arn, created=True), then created=False
    arn = pipelines.start("drone-detection", {"epochs": "30"})
    pipelines.status(arn)                                      # -> ExecutionStatus, steps included when listed

Requests are made only when a method is called; AWS errors become AwsRequestError saying what was asked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from skyops.aws.session import AwsGuard, AwsRequestError, aws_request
from skyops.errors import ConfigError

_EXISTS = "already exists"  # SageMaker's sign of a name taken: a ValidationException with this text
_UNBOUND_NOTE = b"skyops: an input bound to this folder is unbound (its source found nothing when the execution started)\n"


@dataclass(frozen=True)
class Upserted:
    arn: str
    created: bool  # False: an existing pipeline got the new definition


@dataclass(frozen=True)
class ExecutionSummary:
    arn: str
    status: str
    started: datetime | None
    display_name: str


@dataclass(frozen=True)
class StepState:
    name: str
    status: str
    started: datetime | None
    ended: datetime | None
    failure: str


@dataclass(frozen=True)
class ExecutionStatus:
    """One execution. `steps` is None when the endpoint cannot list them; `steps_unavailable` says why."""

    arn: str
    pipeline_arn: str
    status: str
    display_name: str
    created: datetime | None
    modified: datetime | None
    failure: str
    steps: tuple[StepState, ...] | None
    steps_unavailable: str = ""


class SageMakerPipelines:
    """Pipeline definitions and executions of one account and region, through guarded clients."""

    def __init__(self, guard: AwsGuard | None = None) -> None:
        self.guard = guard or AwsGuard()
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """The guarded client of `service`, created (and the guard checked) on first use."""
        if service not in self._clients:
            self._clients[service] = self.guard.client(service)
        return self._clients[service]

    def upload_code(self, bucket: str, key: str, data: bytes) -> str:
        """Put the code archive at s3://bucket/key (content-addressed: uploading again is harmless)."""
        with aws_request(
            f"upload the code archive to s3://{bucket}/{key}", hint="check the bucket exists and the profile may s3:PutObject"
        ):
            self.client("s3").put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/gzip")
        return f"s3://{bucket}/{key}"

    def upload_unbound_marker(self, bucket: str, key: str) -> str:
        """Put the unbound marker at s3://bucket/key: what an input reads when its source found nothing
        (skyops.pipeline.sagemaker.sources). Its content is for a person who opens it."""
        with aws_request(f"upload the unbound marker to s3://{bucket}/{key}", hint="check the profile may s3:PutObject"):
            self.client("s3").put_object(Bucket=bucket, Key=key, Body=_UNBOUND_NOTE, ContentType="text/plain")
        return f"s3://{bucket}/{key}"

    def upsert(self, name: str, definition: Mapping[str, Any], role_arn: str, description: str = "") -> Upserted:
        """Create the pipeline, or give the existing one this definition."""
        request = {"PipelineName": name, "PipelineDefinition": json.dumps(definition, sort_keys=True), "RoleArn": role_arn}
        if description:
            request["PipelineDescription"] = description[:3072]  # SageMaker's limit
        try:
            with aws_request(f"create pipeline {name!r}"):
                return Upserted(self.client("sagemaker").create_pipeline(**request)["PipelineArn"], created=True)
        except AwsRequestError as e:
            if _EXISTS not in _error(e)[1]:
                raise
        with aws_request(f"update pipeline {name!r}"):
            return Upserted(self.client("sagemaker").update_pipeline(**request)["PipelineArn"], created=False)

    def stored_definition(self, name: str) -> dict[str, Any]:
        """The definition SageMaker holds for pipeline `name`."""
        with aws_request(f"describe pipeline {name!r}", hint=f"create it first: skyops sagemaker upsert {name}"):
            body = self.client("sagemaker").describe_pipeline(PipelineName=name)["PipelineDefinition"]
        return json.loads(body) if isinstance(body, str) else dict(body)

    def start(self, name: str, parameters: Mapping[str, str], display_name: str = "") -> str:
        """Start an execution with these parameter values (strings); returns its ARN."""
        request: dict[str, Any] = {
            "PipelineName": name,
            "PipelineParameters": [{"Name": k, "Value": v} for k, v in sorted(parameters.items())],
        }
        if display_name:
            request["PipelineExecutionDisplayName"] = display_name
        with aws_request(f"start pipeline {name!r}", hint=f"check the pipeline exists: skyops sagemaker executions {name}"):
            return str(self.client("sagemaker").start_pipeline_execution(**request)["PipelineExecutionArn"])

    def executions(self, name: str, limit: int = 20) -> list[ExecutionSummary]:
        """The newest executions of pipeline `name`, newest first."""
        with aws_request(f"list executions of pipeline {name!r}", hint=f"check the name, or create it: skyops sagemaker upsert {name}"):
            page = self.client("sagemaker").list_pipeline_executions(
                PipelineName=name, SortBy="CreationTime", SortOrder="Descending", MaxResults=limit
            )
        return [
            ExecutionSummary(
                arn=e["PipelineExecutionArn"],
                status=e.get("PipelineExecutionStatus", "?"),
                started=e.get("StartTime"),
                display_name=e.get("PipelineExecutionDisplayName", ""),
            )
            for e in page.get("PipelineExecutionSummaries", [])
        ]

    def latest(self, name: str) -> str:
        """The ARN of the newest execution of pipeline `name`."""
        found = self.executions(name, limit=1)
        if not found:
            raise ConfigError(f"pipeline {name!r} has no executions yet", hint=f"start one: skyops sagemaker start {name}")
        return found[0].arn

    def status(self, arn: str) -> ExecutionStatus:
        """An execution and its steps. Steps are optional: some endpoints (moto) do not list them."""
        with aws_request(f"describe execution {arn}", hint="check the ARN: skyops sagemaker executions NAME lists them"):
            found = self.client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)
        steps: tuple[StepState, ...] | None = None
        unavailable = ""
        try:
            with aws_request(f"list the steps of execution {arn}"):
                listed = self.client("sagemaker").list_pipeline_execution_steps(PipelineExecutionArn=arn, SortOrder="Ascending")
            steps = tuple(
                StepState(s["StepName"], s.get("StepStatus", "?"), s.get("StartTime"), s.get("EndTime"), s.get("FailureReason", ""))
                for s in listed.get("PipelineExecutionSteps", [])
            )
        except AwsRequestError as e:
            code, message = _error(e)
            if not (code.startswith("5") or "NotImplemented" in code or "not been implemented" in message):
                raise
            unavailable = f"ListPipelineExecutionSteps is not implemented by this endpoint ({code})"
        return ExecutionStatus(
            arn=found["PipelineExecutionArn"],
            pipeline_arn=found.get("PipelineArn", ""),
            status=found.get("PipelineExecutionStatus", "?"),
            display_name=found.get("PipelineExecutionDisplayName", ""),
            created=found.get("CreationTime"),
            modified=found.get("LastModifiedTime"),
            failure=found.get("FailureReason", ""),
            steps=steps,
            steps_unavailable=unavailable,
        )


def _error(error: AwsRequestError) -> tuple[str, str]:
    """(code, message) of the AWS answer behind an AwsRequestError ('', '') when there was none."""
    response = getattr(error.__cause__, "response", None) or {}
    details = response.get("Error", {})
    return str(details.get("Code", "")), str(details.get("Message", ""))
