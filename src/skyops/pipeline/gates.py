"""Quality gates: conditions on a JSON file a step wrote, guarding the steps after them.

    gates:
      - name: quality
        step: evaluate            # the step whose output holds the file
        output: evaluation        # its output port
        file: evaluation.json
        conditions:
          - {path: metrics.map50, op: ">=", value: ${min_map50}}
        guards: [register]        # these steps (and all downstream of them) run only if every condition holds
        message: model below the quality bar

The local engine evaluates a gate as soon as its step finishes; the SageMaker compiler turns the
same gate into a PropertyFile, a Condition step (`Std:JsonGet`) and a Fail step.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyops.errors import PipelineError
from skyops.pipeline.wiring import ParamRef

OPERATORS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    ">=": (operator.ge, "GreaterThanOrEqualTo"),
    ">": (operator.gt, "GreaterThan"),
    "<=": (operator.le, "LessThanOrEqualTo"),
    "<": (operator.lt, "LessThan"),
    "==": (operator.eq, "Equals"),
    "!=": (operator.ne, "NotEquals"),
}


@dataclass(frozen=True, kw_only=True)
class Condition:
    """`path` is a dotted path into the JSON file (`metrics.map50`), as SageMaker's JsonPath."""

    path: str
    op: str
    value: float | int | str | bool | ParamRef

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise PipelineError(f"condition on {self.path!r}: operator {self.op!r} is not one of {', '.join(OPERATORS)}")
        if isinstance(self.value, float) and not math.isfinite(self.value):  # nan >= x is never true: the gate could never pass
            raise PipelineError(f"condition on {self.path!r}: value {self.value} is not a finite number")

    def __str__(self) -> str:
        return f"{self.path} {self.op} {self.value}"


@dataclass(frozen=True, kw_only=True)
class Gate:
    name: str
    step: str
    output: str
    file: str
    conditions: tuple[Condition, ...]
    guards: tuple[str, ...]
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class GateResult:
    """A gate's verdict in one run, as its run record keeps it (`run.json`: a plain JSON object)."""

    passed: bool
    details: tuple[str, ...]  # one line per condition: "metrics.map50 = 0.61 >= 0.5: ok"
    message: str = ""  # the gate's own message, shown when it stops a run
    guards: tuple[str, ...] = ()  # the steps it guards

    @classmethod
    def failed(cls, gate: Gate, why: str) -> GateResult:
        """A failed verdict for one reason that is not a condition (its step did not finish, its file cannot be read)."""
        return cls(passed=False, details=(why,), message=gate.message, guards=gate.guards)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "details": list(self.details), "message": self.message, "guards": list(self.guards)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateResult:
        """Read `to_json`'s object back; records written before `message` and `guards` were kept have neither."""
        return cls(
            passed=bool(data["passed"]),
            details=tuple(data["details"]),
            message=str(data.get("message", "")),
            guards=tuple(data.get("guards", ())),
        )


def json_value(document: Any, path: str) -> Any:
    """`metrics.map50` or `per_class[0].ap50` from a parsed JSON document; KeyError if absent."""
    value = document
    for part in path.replace("]", "").replace("[", ".").split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def evaluate_gate(gate: Gate, output_dir: Path, params: Mapping[str, Any]) -> GateResult:
    """Read the gate's file and check every condition (all are reported, pass or fail)."""
    path = output_dir / gate.file
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        return GateResult.failed(gate, f"cannot read {path}: {e}")
    details, passed = [], True
    for condition in gate.conditions:
        threshold = params[condition.value.name] if isinstance(condition.value, ParamRef) else condition.value
        try:
            actual = json_value(document, condition.path)
            ok = OPERATORS[condition.op][0](actual, threshold)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            actual, ok = f"<missing: {e}>", False
        passed &= bool(ok)
        details.append(f"{condition.path} = {actual} {condition.op} {threshold}: {'ok' if ok else 'FAILED'}")
    return GateResult(passed=passed, details=tuple(details), message=gate.message, guards=gate.guards)


def parse_gates(raw: Any, parse_value: Callable[[Any], Any]) -> tuple[list[Gate], list[str]]:
    """Gates from YAML, with every shape problem listed."""
    gates, problems = [], []
    for index, item in enumerate(raw or []):
        where = f"gates[{index}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: expected a mapping")
            continue
        missing = [k for k in ("name", "step", "output", "file", "conditions", "guards") if k not in item]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        try:
            conditions = tuple(Condition(path=str(c["path"]), op=str(c["op"]), value=parse_value(c["value"])) for c in item["conditions"])
        except (KeyError, TypeError):
            problems.append(f"{where}: each condition needs path, op and value")
            continue
        except PipelineError as e:
            problems.append(f"{where}: {e.message}")
            continue
        gates.append(
            Gate(
                name=str(item["name"]),
                step=str(item["step"]),
                output=str(item["output"]),
                file=str(item["file"]),
                conditions=conditions,
                guards=tuple(str(g) for g in item["guards"]),
                message=str(item.get("message", "")),
            )
        )
    return gates, problems
