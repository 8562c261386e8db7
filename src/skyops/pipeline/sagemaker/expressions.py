"""The expression language of SageMaker pipeline definitions, as plain dicts.

    {"Get": "Parameters.epochs"}                                   a parameter
    {"Get": "Execution.PipelineExecutionId"}                       an execution variable
    {"Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"}         a property of another step (an implicit edge)
    {"Std:Join": {"On": "/", "Values": ["s3://b", {"Get": ...}]}}  string concatenation
    {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.evaluate.PropertyFiles.quality"}, "Path": "metrics.map50"}}

SageMaker refuses an Integer, Float or Boolean parameter where a string goes ("Cannot assign property
reference [Parameters.x] to argument of type [String]"), so `as_string` wraps those in a one-value
Std:Join, as the SageMaker SDK's `.to_string()` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skyops.pipeline.definition import Parameter, ParamType

Expression = dict[str, Any]
Value = str | int | float | bool | Expression

EXECUTION_ID: Expression = {"Get": "Execution.PipelineExecutionId"}


def parameter(name: str) -> Expression:
    return {"Get": f"Parameters.{name}"}


def step_property(step: str, path: str) -> Expression:
    """A property of another step, e.g. step_property("train", "ModelArtifacts.S3ModelArtifacts")."""
    return {"Get": f"Steps.{step}.{path}"}


def join(values: Sequence[Value], on: str = "") -> Expression:
    return {"Std:Join": {"On": on, "Values": list(values)}}


def json_get(step: str, property_file: str, path: str) -> Expression:
    """A value read from a property file of a processing step (JsonPath such as `metrics.map50`)."""
    return {"Std:JsonGet": {"PropertyFile": step_property(step, f"PropertyFiles.{property_file}"), "Path": path}}


def as_string(param: Parameter) -> Expression:
    """A parameter where SageMaker expects a string (container arguments, hyperparameters, env vars)."""
    ref = parameter(param.name)
    return ref if param.type is ParamType.STRING else join([ref])


def is_expression(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("Get", "Std:Join", "Std:JsonGet")


def references(value: object) -> set[str]:
    """Every `Get` path inside a value (a definition, a step, an argument), e.g. {"Parameters.epochs"}."""
    if isinstance(value, dict):
        found = {value["Get"]} if isinstance(value.get("Get"), str) else set()
        return found.union(*(references(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(references(v) for v in value))
    return set()
