"""Condition steps: quality gates (PropertyFile + Std:JsonGet + Fail) and the optional deploy.

A gate reads a JSON file that its processing step wrote. SageMaker reads it through a PropertyFile
declared on that step; the Condition step compares each value with `Std:JsonGet`; the guarded
steps run as its IfSteps, and a Fail step with the gate's message is its ElseSteps.

Deploy: EndpointConfig and Endpoint are not step types of the public definition schema, and a
Condition may only hold Training, Processing, Transform, RegisterModel and Fail steps. So the
endpoint is made by one small processing job (`python -m skyops.aws.pipelines deploy-endpoint`)
that creates the model, the endpoint config and the endpoint (or updates it), behind a Condition on
the `Deploy` parameter that runs after the registration. No Lambda function to deploy and secure.
"""

from __future__ import annotations

from typing import Any

from skyops.pipeline.gates import OPERATORS, Gate
from skyops.pipeline.sagemaker.container import CODE_INPUT, PROCESSING_CODE_DIR
from skyops.pipeline.sagemaker.expressions import EXECUTION_ID, Value, join, json_get, parameter, step_property
from skyops.pipeline.sagemaker.jobs import processing_entrypoint
from skyops.pipeline.sagemaker.settings import SageMakerSettings
from skyops.pipeline.wiring import ParamRef

DEPLOY = "Deploy"
ENDPOINT_NAME = "EndpointName"
ENDPOINT_INSTANCE_TYPE = "EndpointInstanceType"
DEPLOY_MODULE = "skyops.aws.pipelines"  # its `deploy-endpoint` command runs inside the deploy job
DEPLOY_MAX_RUNTIME = 2 * 3600  # seconds: creating an endpoint takes 5-15 minutes; the job waits for InService


def gate_step_names(gate: Gate) -> tuple[str, str]:
    """(condition step, fail step) names of a gate."""
    return f"{gate.name}-gate", f"{gate.name}-failed"


def property_file(gate: Gate) -> dict[str, str]:
    """The PropertyFile a gate declares on the step that writes its file."""
    return {"PropertyFileName": gate.name, "OutputName": gate.output, "FilePath": gate.file}


def gate_condition_step(gate: Gate, if_steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The Condition step of a gate: every condition must hold (SageMaker ANDs the list)."""
    condition_name, fail_name = gate_step_names(gate)
    conditions = [
        {"Type": OPERATORS[c.op][1], "LeftValue": json_get(gate.step, gate.name, c.path), "RightValue": _operand(c.value)}
        for c in gate.conditions
    ]
    message: list[Value] = [f"{gate.message or 'quality gate failed'} (gate {gate.name}, step {gate.step}, {gate.file}: "]
    for index, c in enumerate(gate.conditions):
        message += [f"{', ' if index else ''}{c.path} {c.op} ", _operand(c.value)]
    message.append(")")
    fail = {"Name": fail_name, "Type": "Fail", "Arguments": {"ErrorMessage": join(message)}}
    return {"Name": condition_name, "Type": "Condition", "Arguments": {"Conditions": conditions, "IfSteps": if_steps, "ElseSteps": [fail]}}


def _operand(value: float | int | str | bool | ParamRef) -> Value:
    return parameter(value.name) if isinstance(value, ParamRef) else value


def deploy_step_names(registration: str) -> tuple[str, str]:
    """(condition step, processing step) names of the deploy after `registration`."""
    return f"{registration}-deploy-requested", f"{registration}-deploy"


def deploy_condition_step(registration: str, model_data: Value, settings: SageMakerSettings) -> dict[str, Any]:
    """Deploy the model version that `registration` registered, when the Deploy parameter is true."""
    condition_name, deploy_name = deploy_step_names(registration)
    arguments: list[Value] = [
        "deploy-endpoint",
        "--endpoint-name",
        parameter(ENDPOINT_NAME),
        "--instance-type",
        parameter(ENDPOINT_INSTANCE_TYPE),
        "--image",
        settings.image_uri,
        "--model-data",
        model_data,
        "--model-package-arn",
        step_property(registration, "ModelPackageArn"),
        "--role-arn",
        settings.role_arn,
        "--execution-id",
        EXECUTION_ID,
        "--region",
        settings.region,
    ]
    code = {
        "InputName": CODE_INPUT,
        "S3Input": {
            "S3Uri": settings.code_uri,
            "LocalPath": PROCESSING_CODE_DIR,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }
    deploy = {
        "Name": deploy_name,
        "Type": "Processing",
        "Description": "create the model, endpoint config and endpoint of the registered version (or update the endpoint)",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {"InstanceType": settings.deploy_instance_type, "InstanceCount": 1, "VolumeSizeInGB": 5}
            },
            "AppSpecification": {
                "ImageUri": settings.image_uri,
                "ContainerEntrypoint": processing_entrypoint(DEPLOY_MODULE),
                "ContainerArguments": arguments,
            },
            "RoleArn": settings.role_arn,
            "ProcessingInputs": [code],
            "StoppingCondition": {"MaxRuntimeInSeconds": DEPLOY_MAX_RUNTIME},
        },
        "CacheConfig": {"Enabled": False},  # it acts on the world: a cached "success" would deploy nothing
    }
    return {
        "Name": condition_name,
        "Type": "Condition",
        "DependsOn": [registration],
        "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": parameter(DEPLOY), "RightValue": True}],
            "IfSteps": [deploy],
            "ElseSteps": [],
        },
    }
