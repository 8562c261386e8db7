"""Condition steps: quality gates (PropertyFile + Std:JsonGet + Fail) and registration decisions.

A gate reads a JSON file that its processing step wrote. SageMaker reads it through a PropertyFile
declared on that step; the Condition step compares each value with `Std:JsonGet`; the guarded
steps run as its IfSteps, and a Fail step with the gate's message is its ElseSteps.

SageMaker's conditions have no working not-equals (its SDK emits Not(Equals); the corrected
definition schema has no Not), so `!=` becomes what means the same for the operand's type, decided
by the literal or the parameter's declared type: numbers `Or(LessThan, GreaterThan)`, a boolean
literal `Equals` its opposite. A string, or a Boolean parameter (which cannot be negated), has no
such form and is refused at compile time.

A registration decision is read the same way: the status its job wrote picks which of two
RegisterModel steps runs (render.RegistrationRenderer).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from skyops.errors import PipelineError
from skyops.pipeline.contract import DECISION_STATUS, Decision
from skyops.pipeline.definition import Parameter, ParamType
from skyops.pipeline.gates import Condition, Gate
from skyops.pipeline.sagemaker.expressions import Value, join, json_get, parameter
from skyops.pipeline.wiring import ParamRef


def gate_step_names(gate: Gate) -> tuple[str, str]:
    """(condition step, fail step) names of a gate."""
    return f"{gate.name}-gate", f"{gate.name}-failed"


def property_file(gate: Gate) -> dict[str, str]:
    """The PropertyFile a gate declares on the step that writes its file."""
    return {"PropertyFileName": gate.name, "OutputName": gate.output, "FilePath": gate.file}


# A gate operator -> SageMaker's binary condition type; `!=` has none (see the module docstring).
BINARY = {">=": "GreaterThanOrEqualTo", ">": "GreaterThan", "<=": "LessThanOrEqualTo", "<": "LessThan", "==": "Equals"}


class Operand(StrEnum):
    NUMBER = "number"
    BOOLEAN = "boolean"
    STRING = "string"
    BOOLEAN_PARAMETER = "Boolean parameter"


def operand_type(value: float | int | str | bool | ParamRef, parameters: Mapping[str, Parameter]) -> Operand:
    """What a condition compares: decided by its literal, or by the declared type of its parameter."""
    if isinstance(value, ParamRef):
        declared = parameters[value.name].type
        if declared is ParamType.BOOLEAN:
            return Operand.BOOLEAN_PARAMETER
        return Operand.STRING if declared is ParamType.STRING else Operand.NUMBER
    if isinstance(value, bool):  # before int: True is an int too
        return Operand.BOOLEAN
    return Operand.STRING if isinstance(value, str) else Operand.NUMBER


def gate_problems(gate: Gate, parameters: Mapping[str, Parameter]) -> list[str]:
    """The conditions of `gate` that SageMaker cannot evaluate as the local engine does, each with its rewrite."""
    problems = []
    for c in gate.conditions:
        if c.op in BINARY:
            continue
        kind = operand_type(c.value, parameters)
        if kind is Operand.STRING:
            problems.append(
                f"gate {gate.name!r}: condition `{c}` compares strings with !=, which SageMaker conditions cannot express "
                "(no not-equals); compare with == against the value that must be there, or make the value a number or boolean"
            )
        elif kind is Operand.BOOLEAN_PARAMETER:
            problems.append(
                f"gate {gate.name!r}: condition `{c}` compares with Boolean parameter {c.value} by !=, which SageMaker conditions "
                "cannot express (no not-equals, and a parameter cannot be negated); write `== true` or `== false`, "
                "or == against a parameter holding the opposite value"
            )
    return problems


def _condition(gate: Gate, c: Condition, parameters: Mapping[str, Parameter]) -> dict[str, Any]:
    left, right = json_get(gate.step, gate.name, c.path), _operand(c.value)
    if c.op in BINARY:
        return {"Type": BINARY[c.op], "LeftValue": left, "RightValue": right}
    kind = operand_type(c.value, parameters)
    if kind is Operand.NUMBER:
        return {
            "Type": "Or",
            "Conditions": [{"Type": t, "LeftValue": left, "RightValue": right} for t in ("LessThan", "GreaterThan")],
        }
    if kind is Operand.BOOLEAN:
        return {"Type": "Equals", "LeftValue": left, "RightValue": not c.value}
    raise PipelineError("; ".join(gate_problems(gate, parameters)))  # the compiler reports these before building any step


def gate_condition_step(gate: Gate, if_steps: list[dict[str, Any]], parameters: Mapping[str, Parameter]) -> dict[str, Any]:
    """The Condition step of a gate: every condition must hold (SageMaker ANDs the list).

    Raises:
        PipelineError: a condition SageMaker cannot express (`gate_problems` says which and how to rewrite it).
    """
    condition_name, fail_name = gate_step_names(gate)
    conditions = [_condition(gate, c, parameters) for c in gate.conditions]
    message: list[Value] = [f"{gate.message or 'quality gate failed'} (gate {gate.name}, step {gate.step}, {gate.file}: "]
    for index, c in enumerate(gate.conditions):
        message += [f"{', ' if index else ''}{c.path} {c.op} ", _operand(c.value)]
    message.append(")")
    fail = {"Name": fail_name, "Type": "Fail", "Arguments": {"ErrorMessage": join(message)}}
    return {"Name": condition_name, "Type": "Condition", "Arguments": {"Conditions": conditions, "IfSteps": if_steps, "ElseSteps": [fail]}}


def _operand(value: float | int | str | bool | ParamRef) -> Value:
    return parameter(value.name) if isinstance(value, ParamRef) else value


def decision_condition_step(step: str, property_file: str, *, pending: dict[str, Any], rejected: dict[str, Any]) -> dict[str, Any]:
    """`<step>-decision`: registers `pending` when the decision file's status is PendingManualApproval, else `rejected`."""
    status = json_get(step, property_file, DECISION_STATUS)
    return {
        "Name": f"{step}-decision",
        "Type": "Condition",
        "DependsOn": [step],
        "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": status, "RightValue": Decision.PENDING.value}],
            "IfSteps": [pending],
            "ElseSteps": [rejected],
        },
    }
