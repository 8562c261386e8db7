"""Checks of a compiled definition against the two public references: the shared JSON schema and botocore's request shapes.

The schema is the shared corrected one (../shared/schemas/sagemaker-pipeline-definition.corrected.schema.json):
the community schema of the 2020-12-01 definition plus the five corrections this project identified
(Std:Join, Std:JsonGet operands, PropertyFiles, RetryPolicy.ExceptionType as a list, ModelApprovalStatus
and CustomerMetadataProperties in RegisterModel); test_schema.py pins that the raw schema still refuses each.

It is older than the CreateTrainingJob API, so `definition_schema` extends it by exactly two members
that botocore's CreateTrainingJob shape has and training jobs need (the gap is the shared schema's,
to be fixed there; docs/sagemaker.md says so); test_schema.py pins both sides of each:
  1. TrainingStep.Arguments.Environment (CreateTrainingJob.Environment): the run context and the
     pipeline's env, as a processing job gets them;
  2. AlgorithmSpecification.ContainerEntrypoint (CreateTrainingJob.AlgorithmSpecification.ContainerEntrypoint):
     the code-archive entrypoint every skyops job runs.

Each step's Arguments are then checked against botocore's request shape of its API call: types and
required members (botocore's ParamValidator), and every literal's length, pattern and enum (constraints.py).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from skyops.pipeline.sagemaker.expressions import is_expression

from .constraints import constraint_problems

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT.parent / "shared" / "schemas"
RAW_SCHEMA = SCHEMAS / "sagemaker-pipeline-definition.schema.json"
CORRECTED_SCHEMA = SCHEMAS / "sagemaker-pipeline-definition.corrected.schema.json"

# Step type -> (botocore operation, members SageMaker fills in itself).
OPERATIONS = {
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": "job-name"}),
    "Training": ("CreateTrainingJob", {"TrainingJobName": "job-name"}),
    "Tuning": ("CreateHyperParameterTuningJob", {"HyperParameterTuningJobName": "tuning-name"}),
    "RegisterModel": ("CreateModelPackage", {}),
    "Model": ("CreateModel", {"ModelName": "model-name"}),
}


@cache
def raw_schema() -> dict[str, Any]:
    return json.loads(RAW_SCHEMA.read_text())


@cache
def corrected_schema() -> dict[str, Any]:
    return json.loads(CORRECTED_SCHEMA.read_text())


# The two training members the shared corrected schema lacks (see the module docstring), as schema fragments.
TRAINING_EXTENSIONS = {
    "Environment": {"type": "object", "patternProperties": {".*": {"$ref": "#/definitions/StringArgumentValue"}}},
    "AlgorithmSpecification.ContainerEntrypoint": {"type": "array", "items": {"$ref": "#/definitions/StringArgumentValue"}},
}


# 3. A tuning job's TrainingJobDefinition.Environment (CreateHyperParameterTuningJob's
#    HyperParameterTrainingJobDefinition.Environment): SKYOPS_ENTRY_POINT for the image's `train`, and the run context.
TUNING_EXTENSION = {"type": "object", "additionalProperties": {"$ref": "#/definitions/StringArgumentValue"}}


@cache
def definition_schema() -> dict[str, Any]:
    """The shared corrected schema plus TRAINING_EXTENSIONS: what compiled definitions are checked against."""
    schema = copy.deepcopy(corrected_schema())
    arguments = schema["definitions"]["TrainingStep"]["properties"]["Arguments"]["properties"]
    for path, fragment in TRAINING_EXTENSIONS.items():
        *parents, name = path.split(".")
        target = arguments
        for parent in parents:
            target = target[parent]["properties"]
        assert name not in target, f"the shared corrected schema now has TrainingStep {path}: drop it from TRAINING_EXTENSIONS"
        target[name] = fragment
    tuning = schema["definitions"]["HyperParameterTrainingJobDefinition"]["properties"]
    assert "Environment" not in tuning, "the shared corrected schema now has a tuning job's Environment: drop TUNING_EXTENSION"
    tuning["Environment"] = TUNING_EXTENSION
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


def request_shape(operation: str) -> Any:
    return _sagemaker_model().operation_model(operation).input_shape


def request_errors(step: dict[str, Any], parameters: Mapping[str, Any] | None = None) -> str:
    """What botocore finds wrong with the step's Arguments as the request of its API call ('' when valid).

    Args:
        step: a Processing, Training or RegisterModel step of a definition.
        parameters: name -> default of the definition's parameters: an expression that reads them
            is checked with these values; any other expression is skipped.
    """
    from botocore.validate import ParamValidator

    operation, filled_in = OPERATIONS[step["Type"]]
    input_shape = request_shape(operation)
    request = {**with_placeholders(step["Arguments"], input_shape), **filled_in}
    report = ParamValidator().validate(request, input_shape)
    found = [report.generate_report()] if report.has_errors() else []
    found += sorted(constraint_problems(step["Arguments"], input_shape, "", parameters or {}))
    return "\n".join(found)


def parameter_defaults(definition: Mapping[str, Any]) -> dict[str, Any]:
    return {p["Name"]: p["DefaultValue"] for p in definition.get("Parameters", [])}
