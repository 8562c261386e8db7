"""Condition steps: quality gates (PropertyFile + Std:JsonGet + Fail) and registration decisions.

A gate reads a JSON file that its processing step wrote. SageMaker reads it through a PropertyFile
declared on that step; the Condition step compares each value with `Std:JsonGet`; the guarded
steps run as its IfSteps, and a Fail step with the gate's message is its ElseSteps.

A registration decision is read the same way: the status its job wrote picks which of two
RegisterModel steps runs (render.RegistrationRenderer).
"""

from __future__ import annotations

from typing import Any

from skyops.pipeline.contract import DECISION_STATUS, Decision
from skyops.pipeline.gates import OPERATORS, Gate
from skyops.pipeline.sagemaker.expressions import Value, join, json_get, parameter
from skyops.pipeline.wiring import ParamRef


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
