"""Gate conditions on SageMaker: each operator compiles to condition types SageMaker has, and decides as the local gate does."""

from __future__ import annotations

import json
import operator
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyops.errors import PipelineError
from skyops.pipeline.definition import pipeline_from_dict
from skyops.pipeline.gates import OPERATORS, Gate, evaluate_gate, json_value
from skyops.pipeline.sagemaker import compile_pipeline

from .checks import all_steps, definition_schema, schema_errors
from .conftest import SETTINGS
from .test_compile import drone_dict

_BINARY = {
    "GreaterThan": operator.gt,
    "GreaterThanOrEqualTo": operator.ge,
    "LessThan": operator.lt,
    "LessThanOrEqualTo": operator.le,
    "Equals": operator.eq,
}


def gated(op: str, value: Any, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """drone-detection whose quality gate has one condition `metrics.map50 <op> <value>`."""
    data = drone_dict()
    data["parameters"].update(parameters or {})
    data["gates"][0]["conditions"] = [{"path": "metrics.map50", "op": op, "value": value}]
    return data


def gate_conditions(data: dict[str, Any]) -> list[dict[str, Any]]:
    definition = compile_pipeline(pipeline_from_dict(data), SETTINGS)
    assert schema_errors(definition, definition_schema()) == []
    return next(s for s in all_steps(definition["Steps"]) if s["Name"] == "quality-gate")["Arguments"]["Conditions"]


def holds(condition: dict[str, Any], document: Any, parameters: dict[str, Any]) -> bool:
    """How SageMaker decides a compiled condition: Std:JsonGet reads the document, Get a parameter."""

    def value(v: Any) -> Any:
        if isinstance(v, dict) and "Std:JsonGet" in v:
            return json_value(document, v["Std:JsonGet"]["Path"])
        if isinstance(v, dict) and "Get" in v:
            return parameters[v["Get"].removeprefix("Parameters.")]
        return v

    if condition["Type"] == "Or":
        return any(holds(c, document, parameters) for c in condition["Conditions"])
    return bool(_BINARY[condition["Type"]](value(condition["LeftValue"]), value(condition["RightValue"])))


LEFT = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.evaluate.PropertyFiles.quality"}, "Path": "metrics.map50"}}


def test_numeric_not_equals_is_less_than_or_greater_than() -> None:
    assert gate_conditions(gated("!=", 0.5)) == [
        {
            "Type": "Or",
            "Conditions": [
                {"Type": "LessThan", "LeftValue": LEFT, "RightValue": 0.5},
                {"Type": "GreaterThan", "LeftValue": LEFT, "RightValue": 0.5},
            ],
        }
    ]


def test_a_numeric_parameter_makes_the_comparison_numeric() -> None:
    (condition,) = gate_conditions(gated("!=", "${min_map50}"))
    assert condition["Type"] == "Or" and [c["RightValue"] for c in condition["Conditions"]] == [{"Get": "Parameters.min_map50"}] * 2
    (condition,) = gate_conditions(gated("!=", "${images}"))  # an Integer parameter
    assert condition["Type"] == "Or"


@pytest.mark.parametrize("literal", [True, False])
def test_boolean_not_equals_is_equals_the_opposite(literal: bool) -> None:
    assert gate_conditions(gated("!=", literal)) == [{"Type": "Equals", "LeftValue": LEFT, "RightValue": not literal}]


@pytest.mark.parametrize(
    ("value", "parameters", "message"),
    [
        (
            "good",
            {},
            "gate 'quality': condition `metrics.map50 != good` compares strings with !=, which SageMaker conditions cannot "
            "express (no not-equals); compare with == against the value that must be there, or make the value a number or boolean",
        ),
        (
            "${label}",
            {"label": {"type": "string", "default": "good"}},
            "gate 'quality': condition `metrics.map50 != ${label}` compares strings with !=, which SageMaker conditions cannot "
            "express (no not-equals); compare with == against the value that must be there, or make the value a number or boolean",
        ),
        (
            "${strict}",
            {"strict": {"type": "boolean", "default": True}},
            "gate 'quality': condition `metrics.map50 != ${strict}` compares with Boolean parameter ${strict} by !=, which "
            "SageMaker conditions cannot express (no not-equals, and a parameter cannot be negated); write `== true` or "
            "`== false`, or == against a parameter holding the opposite value",
        ),
    ],
)
def test_not_equals_that_sagemaker_cannot_express_is_refused_at_compile_time(value: Any, parameters: dict[str, Any], message: str) -> None:
    with pytest.raises(PipelineError) as info:
        compile_pipeline(pipeline_from_dict(gated("!=", value, parameters)), SETTINGS)
    assert info.value.problems == [message]


@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_every_gate_operator_compiles_to_condition_types_sagemaker_has(op: str) -> None:
    conditions = gate_conditions(gated(op, 0.5))
    types = {c["Type"] for c in conditions} | {inner["Type"] for c in conditions for inner in c.get("Conditions", [])}
    assert types <= {*_BINARY, "Or"} and "NotEquals" not in json.dumps(conditions)


@cache
def compiled_gate(op: str, value: Any) -> tuple[Gate, dict[str, Any]]:
    """The gate `metrics.map50 <op> <value>` and its one compiled condition (compiled once per operator and value)."""
    data = gated(op, value)
    (condition,) = gate_conditions(data)
    return pipeline_from_dict(data).gates[0], condition


def local_passes(gate: Gate, document: Any, parameters: dict[str, Any]) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "evaluation.json").write_text(json.dumps(document))
        return evaluate_gate(gate, Path(folder), parameters).passed


@settings(deadline=None)  # the first example of each operator compiles the pipeline
@given(
    actual=st.one_of(st.integers(-3, 3), st.floats(-2, 2, allow_nan=False), st.booleans()),
    threshold=st.one_of(st.integers(-3, 3), st.floats(-2, 2, allow_nan=False)),
    op=st.sampled_from(sorted(OPERATORS)),
)
def test_the_compiled_gate_decides_as_the_local_gate(actual: Any, threshold: Any, op: str) -> None:
    """Against a numeric threshold parameter, every value passes the compiled gate exactly when it passes the local one."""
    gate, condition = compiled_gate(op, "${min_map50}")
    document = {"metrics": {"map50": actual}}
    assert holds(condition, document, {"min_map50": threshold}) == local_passes(gate, document, {"min_map50": threshold})


@settings(deadline=None)
@given(actual=st.booleans(), literal=st.booleans(), op=st.sampled_from(["==", "!="]))
def test_a_boolean_gate_decides_as_the_local_gate(actual: bool, literal: bool, op: str) -> None:
    gate, condition = compiled_gate(op, literal)
    document = {"metrics": {"map50": actual}}
    assert holds(condition, document, {}) == local_passes(gate, document, {})
