"""The compiled drone-detection pipeline against the public references: the shared JSON schema and botocore's request shapes."""

from __future__ import annotations

from typing import Any

import pytest

from .checks import (
    OPERATIONS,
    TRAINING_EXTENSIONS,
    all_steps,
    corrected_schema,
    definition_schema,
    parameter_defaults,
    raw_schema,
    request_errors,
    request_shape,
    schema_errors,
)
from .constraints import constraint_problems


def test_definition_validates_against_the_shared_corrected_schema_with_the_training_extensions(definition: dict[str, Any]) -> None:
    assert definition["Version"] == "2020-12-01"
    assert schema_errors(definition, definition_schema()) == []


def test_the_definition_needs_exactly_the_two_training_extensions(definition: dict[str, Any]) -> None:
    """Without them the shared corrected schema refuses the train step at exactly these two members."""
    errors = schema_errors(definition, corrected_schema())
    assert len(errors) == 1 and errors[0].startswith("Steps/4: ")  # the train step matches none of the step types
    train = next(s for s in definition["Steps"] if s["Name"] == "train")
    trimmed = {**train, "Arguments": {k: v for k, v in train["Arguments"].items() if k != "Environment"}}
    trimmed["Arguments"]["AlgorithmSpecification"] = {
        k: v for k, v in train["Arguments"]["AlgorithmSpecification"].items() if k != "ContainerEntrypoint"
    }
    assert schema_errors({"Version": "2020-12-01", "Steps": [trimmed]}, corrected_schema()) == []


def test_definition_uses_every_kind_of_step_and_expression(definition: dict[str, Any]) -> None:
    steps = all_steps(definition["Steps"])
    assert sorted({s["Type"] for s in steps}) == ["Condition", "Fail", "Processing", "RegisterModel", "Training"]
    text = repr(definition)
    assert all(construct in text for construct in ("'Std:Join'", "'Std:JsonGet'", "'PropertyFiles'", "'Execution.PipelineExecutionId'"))


def test_every_job_step_is_a_valid_request_of_its_api_call(definition: dict[str, Any]) -> None:
    steps = [s for s in all_steps(definition["Steps"]) if s["Type"] in OPERATIONS]
    assert [s["Name"] for s in steps] == [
        "ingest", "validate", "profile", "split", "train", "evaluate", "export", "register", "register-pending", "register-rejected",
    ]  # fmt: skip
    defaults = parameter_defaults(definition)
    assert {s["Name"]: request_errors(s, defaults) for s in steps} == {s["Name"]: "" for s in steps}


def test_request_check_catches_a_wrong_member(definition: dict[str, Any]) -> None:
    train = next(s for s in all_steps(definition["Steps"]) if s["Type"] == "Training")
    broken = {**train, "Arguments": {**train["Arguments"], "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": "two"}}}
    assert "Invalid type for parameter ResourceConfig.InstanceCount" in request_errors(broken)


# One minimal definition per correction in the shared corrected schema: the raw schema refuses it, the corrected one takes it.
_GET = {"Get": "Parameters.x"}
_PROCESSING_ARGS = {"AppSpecification": {"ImageUri": "image"}, "RoleArn": "role"}
_CORRECTIONS = {
    "Std:Join in a string": {
        "Name": "p",
        "Type": "Processing",
        "Arguments": {**_PROCESSING_ARGS, "RoleArn": {"Std:Join": {"On": "", "Values": ["a", _GET]}}},
    },
    "Std:JsonGet operand": {
        "Name": "c",
        "Type": "Condition",
        "Arguments": {
            "Conditions": [
                {
                    "Type": "GreaterThan",
                    "LeftValue": {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.p.PropertyFiles.f"}, "Path": "a.b"}},
                    "RightValue": 1,
                }
            ]
        },
    },
    "PropertyFiles": {
        "Name": "p",
        "Type": "Processing",
        "Arguments": _PROCESSING_ARGS,
        "PropertyFiles": [{"PropertyFileName": "f", "OutputName": "o", "FilePath": "f.json"}],
    },
    "RegisterModel approval and metadata": {
        "Name": "r",
        "Type": "RegisterModel",
        "Arguments": {
            "ModelPackageGroupName": "g",
            "ModelApprovalStatus": "PendingManualApproval",
            "CustomerMetadataProperties": {"k": "v"},
        },
    },
    "ExceptionType list": {
        "Name": "p",
        "Type": "Processing",
        "Arguments": _PROCESSING_ARGS,
        "RetryPolicies": [{"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "MaxAttempts": 2}],
    },
}


@pytest.mark.parametrize("correction", sorted(_CORRECTIONS))
def test_each_schema_correction_is_still_needed(correction: str) -> None:
    document = {"Version": "2020-12-01", "Steps": [_CORRECTIONS[correction]]}
    assert schema_errors(document, raw_schema()) != [], f"the raw shared schema now accepts {correction}"
    assert schema_errors(document, corrected_schema()) == []


# One minimal training step per extension: the shared corrected schema refuses it, botocore's CreateTrainingJob takes it.
_TRAINING_ARGS = {
    "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
    "RoleArn": "arn:aws:iam::123456789012:role/r",
    "OutputDataConfig": {"S3OutputPath": "s3://bucket/out"},
    "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
    "StoppingCondition": {"MaxRuntimeInSeconds": 60},
}
_EXTENDED = {
    "Environment": {**_TRAINING_ARGS, "Environment": {"SKYOPS_STEP_NAME": "train", "SKYOPS_RUN_ID": ""}},
    "AlgorithmSpecification.ContainerEntrypoint": {
        **_TRAINING_ARGS,
        "AlgorithmSpecification": {**_TRAINING_ARGS["AlgorithmSpecification"], "ContainerEntrypoint": ["/bin/sh", "-c", "exec true"]},
    },
}


def test_the_extensions_are_exactly_the_two_training_members() -> None:
    assert sorted(TRAINING_EXTENSIONS) == sorted(_EXTENDED) == ["AlgorithmSpecification.ContainerEntrypoint", "Environment"]


@pytest.mark.parametrize("extension", sorted(_EXTENDED))
def test_each_training_extension_is_refused_by_the_shared_schema_and_taken_by_botocore(extension: str) -> None:
    step = {"Name": "t", "Type": "Training", "Arguments": _EXTENDED[extension]}
    document = {"Version": "2020-12-01", "Steps": [step]}
    assert schema_errors({**document, "Steps": [{**step, "Arguments": _TRAINING_ARGS}]}, corrected_schema()) == []
    assert schema_errors(document, corrected_schema()) != [], f"the shared corrected schema now has {extension}: drop the extension"
    assert schema_errors(document, definition_schema()) == []
    assert request_errors(step) == ""


def test_botocore_shape_limits_of_the_training_extensions() -> None:
    """CreateTrainingJob takes at most 100 env vars of 512 characters and 100 entrypoint strings of 256."""
    shape = request_shape("CreateTrainingJob")
    too_many = {f"V{i}": "x" for i in range(101)}
    assert constraint_problems({"Environment": too_many}, shape, "", {}) == [
        f"Environment: {str(too_many)[:57]}... has 101 entries; botocore's TrainingEnvironmentMap takes 0..100"
    ]
    assert constraint_problems({"Environment": {"V": "x" * 513}}, shape, "", {}) == [
        f"Environment.V: '{'x' * 56}... has 513 characters; botocore's TrainingEnvironmentValue takes 0..512"
    ]
    entrypoint = {"AlgorithmSpecification": {"TrainingInputMode": "File", "ContainerEntrypoint": ["/bin/sh", "-c", "x" * 257]}}
    assert constraint_problems(entrypoint, shape, "", {}) == [
        f"AlgorithmSpecification.ContainerEntrypoint[2]: '{'x' * 56}... has 257 characters; botocore's "
        "TrainingContainerEntrypointString takes 0..256"
    ]
