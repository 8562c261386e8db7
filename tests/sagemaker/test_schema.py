"""The compiled drone-detection pipeline against the public references: the JSON schema and botocore's request shapes."""

from __future__ import annotations

from typing import Any

import pytest

from .checks import OPERATIONS, all_steps, corrected_schema, raw_schema, request_errors, schema_errors


def test_definition_validates_against_the_corrected_shared_schema(definition: dict[str, Any]) -> None:
    assert definition["Version"] == "2020-12-01"
    assert schema_errors(definition, corrected_schema()) == []


def test_definition_uses_every_kind_of_step_and_expression(definition: dict[str, Any]) -> None:
    steps = all_steps(definition["Steps"])
    assert sorted({s["Type"] for s in steps}) == ["Condition", "Fail", "Processing", "RegisterModel", "Training"]
    text = repr(definition)
    assert all(construct in text for construct in ("'Std:Join'", "'Std:JsonGet'", "'PropertyFiles'", "'Execution.PipelineExecutionId'"))


def test_every_job_step_is_a_valid_request_of_its_api_call(definition: dict[str, Any]) -> None:
    steps = [s for s in all_steps(definition["Steps"]) if s["Type"] in OPERATIONS]
    assert [s["Name"] for s in steps] == [
        "ingest", "validate", "profile", "split", "train", "evaluate", "register", "register-pending", "register-rejected",
    ]  # fmt: skip
    assert {s["Name"]: request_errors(s) for s in steps} == {s["Name"]: "" for s in steps}


def test_request_check_catches_a_wrong_member(definition: dict[str, Any]) -> None:
    train = next(s for s in all_steps(definition["Steps"]) if s["Type"] == "Training")
    broken = {**train, "Arguments": {**train["Arguments"], "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": "two"}}}
    assert "Invalid type for parameter ResourceConfig.InstanceCount" in request_errors(broken)


# One minimal definition per correction of the shared schema: the raw schema refuses it, the corrected one takes it.
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
    assert schema_errors(document, raw_schema()) != [], f"the shared schema now accepts {correction}: drop that correction from checks.py"
    assert schema_errors(document, corrected_schema()) == []
