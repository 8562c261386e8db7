"""Parameter values for starting an execution, checked against the definition SageMaker holds.

SageMaker itself accepts a value for a parameter no step uses and starts a run that ignores it.
That happens here by design: an optional input bound to a parameter whose default was "" at
compile time (e.g. `dataset`: no dataset -> synthetic scenes) is left out of the definition, so a
later `--param dataset=s3://...` would have no effect. This check says so before anything starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skyops.errors import ConfigError, problems_error
from skyops.pipeline.config import coerce, to_argument
from skyops.pipeline.sagemaker.expressions import references

_PYTHON_TYPE = {"String": str, "Integer": int, "Float": float, "Boolean": bool}


def check_start_parameters(pipeline: str, definition: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """Values for StartPipelineExecution (strings; booleans as true/false).

    Rules, all problems reported at once:
      1. each name is a parameter of the stored definition;
      2. each value reads as the parameter's type;
      3. some step of the stored definition uses the parameter.

    Raises:
        ConfigError: listing every problem.
    """
    declared = {p["Name"]: p.get("Type", "String") for p in definition.get("Parameters", [])}
    used = {ref.removeprefix("Parameters.") for ref in references(definition.get("Steps", [])) if ref.startswith("Parameters.")}
    values, problems = {}, []
    for name, text in sorted(given.items()):
        if name not in declared:
            problems.append(f"{name}: no such parameter (parameters: {', '.join(sorted(declared)) or 'none'})")
            continue
        try:
            values[name] = to_argument(coerce(text, _PYTHON_TYPE[declared[name]]))
        except ValueError as e:
            problems.append(f"{name}: {e} ({declared[name]} parameter)")
            continue
        if name not in used:
            problems.append(
                f"{name}: no step of the stored definition uses it (an optional input whose value was empty when the pipeline "
                f"was compiled is left out); upsert again with --param {name}={text}"
            )
    if problems:
        raise problems_error(
            ConfigError,
            f"the parameters for pipeline {pipeline!r}",
            problems,
            hint=f"skyops sagemaker upsert {pipeline} --param NAME=VALUE changes defaults",
        )
    return values
