"""A pipeline's hyperparameter search space, declared once and read by both engines.

`pipelines/NAME.tune.yaml`, beside `pipelines/NAME.yaml` (same stem):

    objective: {metric: map50, direction: maximize}   # a metric the train step reports per epoch
    trials: 20                                         # default for `skyops tune --trials`
    parameters:                                        # each a parameter the pipeline declares
      lr0:    {type: float, low: 0.001, high: 0.05, log: true}
      epochs: {type: int, low: 4, high: 20}
      batch:  {type: categorical, choices: [8, 16, 32]}
    pruning: {warmup_epochs: 2}                        # epochs never pruned; optional (default 0)
    sagemaker: {max_parallel_jobs: 2, strategy: Bayesian, early_stopping: Auto}   # optional

`skyops tune` samples it with Optuna; the SageMaker compiler turns it into a tuning job's parameter
ranges. The file names pipeline parameters, never step configs, so it is checked against the parsed
pipeline: a range must match the parameter's type, and its bounds and choices must be values the
pipeline accepts (a `low: 0` for an `epochs` the train step requires >= 1 is refused here, not in
the middle of a study). Every problem is reported at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from skyops.errors import ConfigError, SkyopsError, problems_error
from skyops.pipeline.definition import ParamType, Pipeline

ChoiceValue = str | int | float | bool
DEFAULT_TRIALS = 20

_TOP_KEYS = ("objective", "parameters", "pruning", "sagemaker", "trials")
_RANGE_KEYS = ("high", "log", "low", "type")
_CHOICE_KEYS = ("choices", "type")
_TYPES = ("float", "int", "categorical")
_HINT = "fix the file; docs/tuning.md describes its format"


@dataclass(frozen=True)
class FloatRange:
    """A float sampled in [low, high]; on a log scale when `log` (then low > 0)."""

    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class IntRange:
    """An integer sampled in [low, high], both included; on a log scale when `log` (then low > 0)."""

    low: int
    high: int
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of values, each already of the pipeline parameter's type."""

    choices: tuple[ChoiceValue, ...]


Distribution = FloatRange | IntRange | Choice


@dataclass(frozen=True)
class Objective:
    """The metric a study optimises: a name the train step reports per epoch on the validation split."""

    metric: str
    direction: Literal["maximize", "minimize"]


@dataclass(frozen=True)
class SearchSpace:
    """A checked search space. `parameters` is in file order; `sagemaker` is passed through unread
    (the SageMaker compiler checks its own keys)."""

    objective: Objective
    parameters: dict[str, Distribution]
    trials: int
    warmup_epochs: int
    sagemaker: Mapping[str, Any]
    source: Path


def search_space_path(pipeline_file: Path) -> Path:
    """Where a pipeline's search space lives: `<stem>.tune.yaml` beside the pipeline file."""
    return pipeline_file.with_name(f"{pipeline_file.stem}.tune.yaml")


def load_search_space(path: Path, pipeline: Pipeline) -> SearchSpace:
    """Read and check `path` against `pipeline`'s parameters.

    Raises:
        ConfigError: the file is missing or not YAML, or every problem found in it at once (unknown
            keys or parameters, a range of the wrong type, low >= high, log with low <= 0, empty
            choices, a bound the pipeline refuses, a bad direction...), each naming the parameter,
            what was expected and the fix.
    """
    import yaml  # small, but only needed here

    if not path.is_file():
        raise ConfigError(
            f"no search space file {path}", hint=f"write one beside the pipeline (see docs/tuning.md) or pass --space FILE; {_HINT}"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"search space {path}: not valid YAML ({detail})", hint=_HINT) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"search space {path}: expected a mapping at the top level, got {type(data).__name__}", hint=_HINT)
    return _parse(data, path, pipeline)


def _parse(data: Mapping[str, Any], path: Path, pipeline: Pipeline) -> SearchSpace:
    problems = [f"unknown key {k!r} (allowed: {', '.join(_TOP_KEYS)})" for k in data if k not in _TOP_KEYS]
    objective = _objective(data.get("objective"), problems)
    trials = _count(data.get("trials", DEFAULT_TRIALS), "trials", 1, problems)
    warmup = 0
    pruning = data.get("pruning") or {}
    if not isinstance(pruning, Mapping):
        problems.append(f"pruning: expected a mapping {{warmup_epochs: N}}, got {pruning!r}")
    else:
        problems += [f"pruning: unknown key {k!r} (allowed: warmup_epochs)" for k in pruning if k != "warmup_epochs"]
        warmup = _count(pruning.get("warmup_epochs", 0), "pruning.warmup_epochs", 0, problems)
    sagemaker = data.get("sagemaker") or {}
    if not isinstance(sagemaker, Mapping):
        problems.append(f"sagemaker: expected a mapping (max_parallel_jobs, strategy, ...), got {sagemaker!r}")
        sagemaker = {}
    parameters: dict[str, Distribution] = {}
    raw = data.get("parameters")
    if not isinstance(raw, Mapping) or not raw:
        problems.append("parameters: expected a mapping of at least one pipeline parameter to its range")
    else:
        declared = {p.name: p.type for p in pipeline.parameters}
        for name, spec in raw.items():
            where = f"parameter {name!r}"
            if name not in declared:
                listing = ", ".join(declared) or "none"
                problems.append(f"{where}: pipeline {pipeline.name!r} declares no such parameter (parameters: {listing})")
                continue
            found = _distribution(spec, declared[name], where, problems)
            if found is not None and not _accepted(pipeline, str(name), found, where, problems):
                continue
            if found is not None:
                parameters[str(name)] = found
    if problems:
        subject = f"search space {path}"
        if len(problems) == 1:
            raise ConfigError(f"{subject}: {problems[0]}", hint=_HINT)
        raise problems_error(ConfigError, subject, problems, hint=_HINT)
    assert objective is not None  # a missing or bad objective is a problem above
    return SearchSpace(
        objective=objective,
        parameters=parameters,
        trials=trials,
        warmup_epochs=warmup,
        sagemaker=MappingProxyType(dict(sagemaker)),
        source=path,
    )


def _objective(value: Any, problems: list[str]) -> Objective | None:
    expected = "expected {metric: NAME, direction: maximize|minimize}"
    if not isinstance(value, Mapping):
        problems.append(f"objective: {expected}, got {value!r}")
        return None
    problems += [f"objective: unknown key {k!r} (allowed: metric, direction)" for k in value if k not in ("metric", "direction")]
    metric, direction = value.get("metric"), value.get("direction", "maximize")
    ok = True
    if not isinstance(metric, str) or not metric.strip():
        problems.append(f"objective.metric: {expected}, got {metric!r}")
        ok = False
    if direction not in ("maximize", "minimize"):
        problems.append(f"objective.direction: expected maximize or minimize, got {direction!r}")
        ok = False
    return Objective(metric=str(metric), direction=direction) if ok else None


def _count(value: Any, where: str, minimum: int, problems: list[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(f"{where}: expected an integer >= {minimum}, got {value!r}")
        return minimum
    return value


def _distribution(spec: Any, param_type: ParamType, where: str, problems: list[str]) -> Distribution | None:
    if not isinstance(spec, Mapping) or spec.get("type") not in _TYPES:
        kind = spec.get("type") if isinstance(spec, Mapping) else spec
        problems.append(f"{where}: expected {{type: float|int|categorical, ...}}, got {kind!r}")
        return None
    kind = spec["type"]
    allowed = _CHOICE_KEYS if kind == "categorical" else _RANGE_KEYS
    problems += [f"{where}: unknown key {k!r} for type {kind} (allowed: {', '.join(allowed)})" for k in spec if k not in allowed]
    if kind == "categorical":
        return _choice(spec.get("choices"), param_type, where, problems)
    wanted = ParamType.FLOAT if kind == "float" else ParamType.INTEGER
    if param_type is not wanted:
        fix = "categorical choices" if param_type in (ParamType.STRING, ParamType.BOOLEAN) else f"type: {_range_name(param_type)}"
        problems.append(f"{where}: {_a(kind)} range on {_a(param_type)} parameter (expected {fix})")
        return None
    low: Any = spec.get("low")
    high: Any = spec.get("high")
    log = spec.get("log", False)
    bounds_ok = True
    for bound, value in (("low", low), ("high", high)):
        if not _number_of(kind, value):
            problems.append(f"{where}: {bound} must be {'an integer' if kind == 'int' else 'a finite number'}, got {value!r}")
            bounds_ok = False
    if not isinstance(log, bool):
        problems.append(f"{where}: log must be true or false, got {log!r}")
        return None
    if not bounds_ok:
        return None
    if low >= high:
        problems.append(
            f"{where}: low {low!r} must be below high {high!r} (to fix a value, leave it out of the file and pass -p NAME=VALUE)"
        )
        return None
    if log and low <= 0:
        problems.append(f"{where}: a log range needs low > 0, got {low!r} (raise low or drop log)")
        return None
    return FloatRange(float(low), float(high), log) if kind == "float" else IntRange(int(low), int(high), log)


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _range_name(param_type: ParamType) -> str:
    return "int" if param_type is ParamType.INTEGER else "float"


def _number_of(kind: str, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "int":
        return isinstance(value, int)
    return isinstance(value, (int, float)) and math.isfinite(value)


def _choice(choices: Any, param_type: ParamType, where: str, problems: list[str]) -> Choice | None:
    if not isinstance(choices, list) or not choices:
        problems.append(f"{where}: choices must be a non-empty list, got {choices!r}")
        return None
    values: list[ChoiceValue] = []
    for value in choices:
        converted = _as_param(value, param_type)
        if converted is None:
            problems.append(f"{where}: choice {value!r} is not {_a(param_type)} value (the pipeline parameter is {_a(param_type)})")
        elif converted in values:
            problems.append(f"{where}: choice {value!r} is listed twice")
        else:
            values.append(converted)
    return Choice(tuple(values)) if len(values) == len(choices) else None


def _as_param(value: Any, param_type: ParamType) -> ChoiceValue | None:
    """`value` as the parameter's type, or None when YAML gave another type (no silent conversion)."""
    if param_type is ParamType.BOOLEAN:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if param_type is ParamType.INTEGER:
        return value if isinstance(value, int) else None
    if param_type is ParamType.FLOAT:
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    return value if isinstance(value, str) else None


def _accepted(pipeline: Pipeline, name: str, found: Distribution, where: str, problems: list[str]) -> bool:
    """Whether every extreme of `found` is a value the pipeline's step configs accept (other parameters at defaults)."""
    probes = found.choices if isinstance(found, Choice) else (found.low, found.high)
    ok = True
    for value in probes:
        params = {**pipeline.defaults(), name: value}
        try:
            pipeline.resolve_configs(params)
        except SkyopsError as e:
            detail = "; ".join(e.problems)
            problems.append(f"{where}: {value!r} is refused by the pipeline ({detail})")
            ok = False
    return ok
