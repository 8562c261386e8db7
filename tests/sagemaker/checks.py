"""Checks of a compiled definition against the two public references: the shared JSON schema and botocore's request shapes.

The shared schema (../shared/schemas, a community schema of the 2020-12-01 definition) predates or
omits five constructs that SageMaker and its own SDK use, so `corrected_schema` adds exactly these,
each named after the SDK code that emits it; test_schema.py pins that the raw schema still lacks each:
  1. Std:Join {"On", "Values"} as a string value (sagemaker.workflow.functions.Join; the schema's own
     JoinFunction is referenced nowhere and cannot be satisfied: additionalProperties false, no properties);
  2. Std:JsonGet {"PropertyFile", "Path"} as a condition operand (sagemaker.workflow.functions.JsonGet);
  3. PropertyFiles on a Processing step (sagemaker.workflow.steps.ProcessingStep.to_request);
  4. RetryPolicy.ExceptionType as a list (sagemaker.workflow.retry.*RetryPolicy.to_request);
  5. ModelApprovalStatus and CustomerMetadataProperties in RegisterModel arguments
     (sagemaker.workflow._utils._RegisterModelStep.arguments via get_create_model_package_request).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from skyops.pipeline.sagemaker.expressions import is_expression

ROOT = Path(__file__).resolve().parents[2]
SHARED_SCHEMA = ROOT.parent / "shared" / "schemas" / "sagemaker-pipeline-definition.schema.json"

# Step type -> (botocore operation, members SageMaker fills in itself).
OPERATIONS = {
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": "job-name"}),
    "Training": ("CreateTrainingJob", {"TrainingJobName": "job-name"}),
    "RegisterModel": ("CreateModelPackage", {}),
    "Model": ("CreateModel", {"ModelName": "model-name"}),
}


@cache
def raw_schema() -> dict[str, Any]:
    return json.loads(SHARED_SCHEMA.read_text())


@cache
def corrected_schema() -> dict[str, Any]:
    schema = copy.deepcopy(raw_schema())
    d = schema["definitions"]
    scalar_or_get = {"anyOf": [{"type": ["string", "number", "boolean"]}, {"$ref": "#/definitions/GetFunction"}]}
    d["JoinFunction"] = {
        "type": "object",
        "properties": {
            "Std:Join": {
                "type": "object",
                "properties": {"On": {"type": "string"}, "Values": {"type": "array", "items": scalar_or_get}},
                "required": ["On", "Values"],
                "additionalProperties": False,
            }
        },
        "required": ["Std:Join"],
        "additionalProperties": False,
    }
    d["JsonGetFunction"] = {
        "type": "object",
        "properties": {
            "Std:JsonGet": {
                "type": "object",
                "properties": {"PropertyFile": {"$ref": "#/definitions/GetFunction"}, "Path": {"type": "string"}},
                "required": ["PropertyFile", "Path"],
                "additionalProperties": False,
            }
        },
        "required": ["Std:JsonGet"],
        "additionalProperties": False,
    }
    d["StringArgumentValue"]["oneOf"].append({"$ref": "#/definitions/JoinFunction"})
    for side in ("LeftValue", "RightValue"):
        d["BinaryCondition"]["properties"][side]["anyOf"].append({"$ref": "#/definitions/JsonGetFunction"})
    d["ProcessingStep"]["properties"]["PropertyFiles"] = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {name: {"type": "string"} for name in ("PropertyFileName", "OutputName", "FilePath")},
            "required": ["PropertyFileName", "OutputName", "FilePath"],
            "additionalProperties": False,
        },
    }
    register = d["RegisterModelStep"]["properties"]["Arguments"]["properties"]
    register["ModelApprovalStatus"] = {"type": "string", "enum": ["Approved", "Rejected", "PendingManualApproval"]}
    register["CustomerMetadataProperties"] = {"type": "object", "additionalProperties": {"$ref": "#/definitions/StringArgumentValue"}}
    exception_type = d["RetryPolicy"]["properties"]["ExceptionType"]
    d["RetryPolicy"]["properties"]["ExceptionType"] = {"type": "array", "items": exception_type, "minItems": 1}
    return schema


def schema_errors(definition: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft7Validator(schema)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(definition))


def all_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step, including those in condition branches."""
    found = []
    for step in steps:
        found.append(step)
        if step["Type"] == "Condition":
            found += all_steps(step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", []))
    return found


@cache
def _sagemaker_model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("sagemaker")


def _placeholder(shape: Any) -> Any:
    """A value of the member's type standing for an expression SageMaker evaluates at run time."""
    kind = shape.type_name
    if kind == "string":
        return "s3://placeholder/value"
    if kind in ("integer", "long"):
        return 1
    if kind == "boolean":
        return True
    if kind in ("float", "double"):
        return 1.0
    raise AssertionError(f"an expression stands where botocore expects a {kind} ({shape.name}); SageMaker cannot evaluate that")


def with_placeholders(value: Any, shape: Any) -> Any:
    """The step's Arguments with every Get / Std:Join / Std:JsonGet replaced by a placeholder of the member's type."""
    if is_expression(value):
        return _placeholder(shape)
    if isinstance(value, dict) and shape.type_name == "structure":
        return {k: with_placeholders(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if isinstance(value, dict) and shape.type_name == "map":
        return {k: with_placeholders(v, shape.value) for k, v in value.items()}
    if isinstance(value, list) and shape.type_name == "list":
        return [with_placeholders(v, shape.member) for v in value]
    return value


def request_errors(step: dict[str, Any]) -> str:
    """botocore's validation report of the step's Arguments as the request of its API call ('' when valid)."""
    from botocore.validate import ParamValidator

    operation, filled_in = OPERATIONS[step["Type"]]
    input_shape = _sagemaker_model().operation_model(operation).input_shape
    request = {**with_placeholders(step["Arguments"], input_shape), **filled_in}
    report = ParamValidator().validate(request, input_shape)
    return report.generate_report() if report.has_errors() else ""
