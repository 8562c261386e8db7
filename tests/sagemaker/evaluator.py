"""What SageMaker would compute from a compiled definition at run time: a small evaluator, for tests only.

    execution = Execution(definition, {"min_map50": "0.3"})
    execution.outputs[("register", "registration")] = folder     # where a job's output was written
    execution.value({"Std:Join": {...}})                          # Get (Parameters, Execution, a processing output's S3Uri
                                                                   # given in `outputs`), Std:Join, Std:JsonGet
    execution.branch(condition_step)                               # the steps a Condition runs

It knows the constructs the compiler emits and refuses any other, so a new construct cannot pass
a test unevaluated.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyops.pipeline.gates import json_value
from skyops.pipeline.sagemaker.parameters import _PYTHON_TYPE

from .checks import all_steps

_PROCESSING_OUTPUT = re.compile(r"Steps\.(?P<step>[^.]+)\.ProcessingOutputConfig\.Outputs\['(?P<name>[^']+)'\]\.S3Output\.S3Uri")
_COMPARE = {
    "Equals": lambda a, b: a == b,
    "NotEquals": lambda a, b: a != b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


@dataclass
class Execution:
    """One imagined execution of `definition`, with `given` parameter values over the defaults."""

    definition: dict[str, Any]
    given: dict[str, str] = field(default_factory=dict)
    execution_id: str = "execution-1"
    outputs: dict[tuple[str, str], Path] = field(default_factory=dict)  # (step, output name) -> local folder

    def parameter(self, name: str) -> Any:
        declared = {p["Name"]: p for p in self.definition["Parameters"]}[name]
        if name in self.given:
            return _PYTHON_TYPE[declared["Type"]](self.given[name])
        return declared["DefaultValue"]

    def step(self, name: str) -> dict[str, Any]:
        return next(s for s in all_steps(self.definition["Steps"]) if s["Name"] == name)

    def value(self, value: Any) -> Any:
        """The run-time value of an argument: expressions evaluated, containers walked."""
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Get" in value and len(value) == 1:
            return self._get(value["Get"])
        if "Std:Join" in value:
            join = value["Std:Join"]
            return join["On"].join(_text(self.value(v)) for v in join["Values"])
        if "Std:JsonGet" in value:
            json_get = value["Std:JsonGet"]
            _, step, _, name = json_get["PropertyFile"]["Get"].split(".")  # Steps.<step>.PropertyFiles.<name>
            declared = next(f for f in self.step(step)["PropertyFiles"] if f["PropertyFileName"] == name)
            document = json.loads((self.outputs[(step, declared["OutputName"])] / declared["FilePath"]).read_text())
            return json_value(document, json_get["Path"])
        return {k: self.value(v) for k, v in value.items()}

    def _get(self, path: str) -> Any:
        if path.startswith("Parameters."):
            return self.parameter(path.removeprefix("Parameters."))
        if path == "Execution.PipelineExecutionId":
            return self.execution_id
        output = _PROCESSING_OUTPUT.fullmatch(path)
        if output and (output["step"], output["name"]) in self.outputs:
            return str(self.outputs[(output["step"], output["name"])])  # where that job's output was written
        raise AssertionError(f"the evaluator cannot resolve {{'Get': {path!r}}}")

    def holds(self, condition: dict[str, Any]) -> bool:
        compare = _COMPARE[condition["Type"]]  # a KeyError here: a condition type the evaluator does not know
        return bool(compare(self.value(condition["LeftValue"]), self.value(condition["RightValue"])))

    def branch(self, condition_step: dict[str, Any]) -> list[dict[str, Any]]:
        """The steps a Condition step runs: IfSteps when every condition holds, else ElseSteps."""
        arguments = condition_step["Arguments"]
        taken = "IfSteps" if all(self.holds(c) for c in arguments["Conditions"]) else "ElseSteps"
        steps: list[dict[str, Any]] = arguments.get(taken, [])
        return steps


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)
