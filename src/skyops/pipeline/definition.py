"""Pipelines: typed parameters and step nodes, defined in YAML or Python, checked when defined.

YAML form (`pipelines/NAME.yaml`):

    name: demo
    catalog: skyops.steps          # package whose steps the pipeline uses (default: skyops.settings.DEFAULT_CATALOG)
    parameters:
      epochs: {type: integer, default: 15, description: training epochs}
    steps:
      - name: train                # instance name, defaults to the step type
        step: train                # catalog entry
        config:
          epochs: ${epochs}        # a whole value may reference a parameter
        inputs:                    # optional: explicit bindings (else wiring rules apply)
          data: split.splits       # another step's output; or a path, s3:// URI or ${param};
          baseline: registry:${model}@champion   # or a scheme:reference the engine's resolver finds
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from skyops.errors import ConfigError, PipelineError, SkyopsError, problems_error
from skyops.pipeline.catalog import Catalog, StepDefinition, catalog_of
from skyops.pipeline.config import StepConfig, build_config, coerce
from skyops.pipeline.gates import Gate, parse_gates
from skyops.pipeline.wiring import Edge, ExternalRef, OutputRef, ParamRef, SchemeRef, Source, WiringNode, wire
from skyops.settings import DEFAULT_CATALOG

_PARAM_REF = re.compile(r"^\$\{([A-Za-z][A-Za-z0-9_]*)\}$")
_OUTPUT_REF = re.compile(r"^([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)$")
_SCHEME_REF = re.compile(r"^([a-z][a-z0-9+.-]+):(?!//)(\S+)$")  # registry:name@alias; not s3://..., not a path
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class ParamType(StrEnum):
    """Parameter types; the same four SageMaker pipelines know."""

    STRING = "string"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"

    @property
    def python_type(self) -> type:
        return {"string": str, "integer": int, "float": float, "boolean": bool}[self.value]


@dataclass(frozen=True, kw_only=True)
class Parameter:
    """A typed pipeline parameter with a default, overridable with `--param name=value`."""

    name: str
    type: ParamType
    default: Any
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise PipelineError(f"parameter name {self.name!r} must match {_NAME.pattern}")
        try:
            object.__setattr__(self, "default", coerce(self.default, self.type.python_type))
        except ValueError as e:
            raise PipelineError(f"parameter {self.name!r}: default {e}") from None

    def parse(self, text: str) -> Any:
        try:
            return coerce(text, self.type.python_type)
        except ValueError as e:
            article = "an" if self.type is ParamType.INTEGER else "a"
            raise ConfigError(f"--param {self.name}={text}: {e}", hint=f"{self.name} is {article} {self.type} parameter") from None


@dataclass(frozen=True, kw_only=True)
class StepNode:
    """One step of a pipeline: a catalog step with its config values and explicit input bindings.

    Config values may be `ParamRef`s, resolved when the pipeline runs or compiles.
    """

    name: str
    definition: StepDefinition
    config: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Source] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))

    def resolved_config(self, params: Mapping[str, Any]) -> StepConfig:
        values = {k: params[v.name] if isinstance(v, ParamRef) else v for k, v in self.config.items()}
        return build_config(self.definition.config, values, where=f"step {self.name!r} config")


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """A validated pipeline. Construction checks everything and raises one error listing all problems."""

    name: str
    steps: tuple[StepNode, ...]
    parameters: tuple[Parameter, ...] = ()
    description: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    gates: tuple[Gate, ...] = ()
    source: str = ""  # where it was defined, for messages
    edges: tuple[Edge, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        problems = []
        if not _NAME.match(self.name):
            problems.append(f"pipeline name {self.name!r} must match {_NAME.pattern}")
        if not self.steps:
            problems.append("a pipeline needs at least one step")
        for kind, names in (("step", [s.name for s in self.steps]), ("parameter", [p.name for p in self.parameters])):
            problems += [f"{kind} {n!r} is defined twice" for n in sorted({n for n in names if names.count(n) > 1})]
        params = self.defaults()
        for node in self.steps:
            refs = [
                v
                for v in (*node.config.values(), *(s.location for s in node.inputs.values() if isinstance(s, ExternalRef)))
                if isinstance(v, ParamRef)
            ]
            refs += [ParamRef(name) for s in node.inputs.values() if isinstance(s, SchemeRef) for name in s.parameters]
            unknown = [r.name for r in refs if r.name not in params]
            problems += [
                f"step {node.name!r} references unknown parameter ${{{n}}} (parameters: {', '.join(params) or 'none'})" for n in unknown
            ]
            if not unknown:
                try:
                    node.resolved_config(params)
                except SkyopsError as e:
                    problems += [f"step {node.name!r} config: {p}" for p in e.problems]
        edges, wiring_problems = wire(
            [WiringNode(n.name, n.definition.spec.inputs, n.definition.spec.outputs, dict(n.inputs)) for n in self.steps]
        )
        problems += wiring_problems
        problems += self._gate_problems(params)
        if problems:
            raise problems_error(PipelineError, f"pipeline {self.name!r}" + (f" ({self.source})" if self.source else ""), problems)
        object.__setattr__(self, "edges", tuple(edges))

    def _gate_problems(self, params: Mapping[str, Any]) -> list[str]:
        order = [s.name for s in self.steps]
        problems = []
        for gate in self.gates:
            where = f"gate {gate.name!r}"
            if gate.step not in order:
                problems.append(f"{where} reads step {gate.step!r}, which is not in the pipeline")
                continue
            outputs = [p.name for p in self.step(gate.step).definition.spec.outputs]
            if gate.output not in outputs:
                problems.append(f"{where}: step {gate.step!r} has no output {gate.output!r} (outputs: {', '.join(outputs)})")
            for guarded in gate.guards:
                if guarded not in order:
                    problems.append(f"{where} guards unknown step {guarded!r}")
                elif order.index(guarded) <= order.index(gate.step):
                    problems.append(f"{where} guards {guarded!r}, which is listed before the gated step {gate.step!r}")
            problems += [
                f"{where} references unknown parameter {c.value}"
                for c in gate.conditions
                if isinstance(c.value, ParamRef) and c.value.name not in params
            ]
        return problems

    def gated_by(self, name: str) -> list[Gate]:
        """Gates that must pass before step `name` runs: those guarding it or any step upstream of it."""
        found, seen, todo = [], set(), [name]
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            found += [g for g in self.gates if current in g.guards and g not in found]
            todo += list(self.upstream_of(current))
        return found

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}

    def resolve_parameters(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        """Parameter values: defaults, overridden by `--param name=value` strings.

        Raises:
            ConfigError: every unknown name and every ill-typed value at once.
        """
        known = {p.name: p for p in self.parameters}
        listing = f"parameters: {', '.join(f'{p.name} ({p.type}, default {p.default!r})' for p in self.parameters) or 'none'}"
        problems = []
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            problems.append(ConfigError(f"pipeline {self.name!r} has no parameter {', '.join(map(repr, unknown))}", hint=listing))
        values = self.defaults()
        for name, text in overrides.items():
            if name in known:
                try:
                    values[name] = known[name].parse(text)
                except ConfigError as e:
                    problems.append(e)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise problems_error(ConfigError, f"the --param values of pipeline {self.name!r}", [e.message for e in problems], hint=listing)
        return values

    def resolve_configs(self, params: Mapping[str, Any]) -> dict[str, StepConfig]:
        """Every step's config with `params` bound to its `${...}` values, in pipeline order.

        Raises:
            ConfigError: every problem of every step at once, sorted; the hint names the
                parameters that feed the failing values.
        """
        configs: dict[str, StepConfig] = {}
        problems: list[str] = []
        feeding: set[str] = set()
        for node in self.steps:
            try:
                configs[node.name] = node.resolved_config(params)
            except SkyopsError as e:
                problems += [f"step {node.name!r} config: {p}" for p in e.problems]
                for problem in e.problems:  # "epochs: 0 must be >= 1" -> the field epochs
                    ref = node.config.get(problem.partition(":")[0])
                    if isinstance(ref, ParamRef):
                        feeding.add(ref.name)
        if problems:
            given = ", ".join(f"--param {name}" for name in sorted(feeding))
            hint = f"the values come from {given}; change them or the pipeline YAML" if given else "fix the values in the pipeline YAML"
            raise problems_error(ConfigError, f"the step configs of pipeline {self.name!r}", problems, hint=hint)
        return configs

    def step(self, name: str) -> StepNode:
        return next(s for s in self.steps if s.name == name)

    def inputs_of(self, name: str) -> list[Edge]:
        return [e for e in self.edges if e.consumer == name]

    def upstream_of(self, name: str) -> set[str]:
        return {e.source.step for e in self.inputs_of(name) if isinstance(e.source, OutputRef)}


def parse_value(value: Any) -> Any:
    """`${name}` -> ParamRef; any other value unchanged."""
    if isinstance(value, str) and (m := _PARAM_REF.match(value)):
        return ParamRef(m.group(1))
    return value


def parse_source(value: Any, where: str) -> Source:
    """`step.output` -> OutputRef; `scheme:reference` -> SchemeRef; `${param}`, a path with '/' or an s3:// URI -> ExternalRef."""
    if not isinstance(value, str):
        raise PipelineError(f"{where}: expected 'step.output', 'scheme:reference', '${{param}}' or a path, got {value!r}")
    ref = parse_value(value)
    if isinstance(ref, ParamRef):
        return ExternalRef(ref)
    if m := _OUTPUT_REF.match(value):
        return OutputRef(m.group(1), m.group(2))
    if m := _SCHEME_REF.match(value):
        return SchemeRef(m.group(1), m.group(2))
    if "/" in value:
        return ExternalRef(value)
    raise PipelineError(
        f"{where}: {value!r} is neither 'step.output', 'scheme:reference' nor a path", hint="write a relative path as ./name"
    )


def pipeline_from_dict(data: Mapping[str, Any], *, catalog: Catalog | None = None, source: str = "") -> Pipeline:
    """Build a pipeline from parsed YAML, collecting shape problems before constructing it."""
    where = f"pipeline {source or '<dict>'}"
    if not isinstance(data, Mapping):
        raise PipelineError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    allowed = {"name", "description", "catalog", "parameters", "steps", "env", "gates"}
    problems = [f"unknown top-level key {k!r} (allowed: {', '.join(sorted(allowed))})" for k in data if k not in allowed]
    catalog = catalog or catalog_of(str(data.get("catalog", DEFAULT_CATALOG)))
    parameters = []
    for name, spec in (data.get("parameters") or {}).items():
        if not isinstance(spec, Mapping) or "type" not in spec or "default" not in spec:
            problems.append(f"parameter {name!r}: expected {{type: ..., default: ...}}")
            continue
        try:
            parameters.append(
                Parameter(
                    name=str(name), type=ParamType(spec["type"]), default=spec["default"], description=str(spec.get("description", ""))
                )
            )
        except ValueError:
            problems.append(f"parameter {name!r}: type {spec['type']!r} is not one of {', '.join(t.value for t in ParamType)}")
        except SkyopsError as e:
            problems.append(e.message)
    nodes = []
    for index, raw in enumerate(data.get("steps") or []):
        if not isinstance(raw, Mapping) or "step" not in raw:
            problems.append(f"steps[{index}]: expected a mapping with a 'step' key")
            continue
        extra = set(raw) - {"name", "step", "config", "inputs", "env"}
        name = str(raw.get("name", raw["step"]))
        if extra:
            problems.append(f"step {name!r}: unknown keys {', '.join(sorted(extra))} (allowed: name, step, config, inputs, env)")
        try:
            definition = catalog.get(str(raw["step"]))
            inputs = {str(k): parse_source(v, f"step {name!r} input {k!r}") for k, v in (raw.get("inputs") or {}).items()}
            config = {str(k): parse_value(v) for k, v in (raw.get("config") or {}).items()}
            nodes.append(
                StepNode(
                    name=name,
                    definition=definition,
                    config=config,
                    inputs=inputs,
                    env={str(k): str(v) for k, v in (raw.get("env") or {}).items()},
                )
            )
        except SkyopsError as e:
            problems.append(e.message + (f" ({e.hint})" if e.hint else ""))
    gates, gate_problems = parse_gates(data.get("gates"), parse_value)
    problems += gate_problems
    if problems:
        raise problems_error(PipelineError, where, problems)
    return Pipeline(
        gates=tuple(gates),
        name=str(data.get("name", "")),
        description=str(data.get("description", "")),
        parameters=tuple(parameters),
        steps=tuple(nodes),
        env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
        source=source,
    )


def load_pipeline(name_or_path: str, *, search: Sequence[Path] = (), catalog: Catalog | None = None) -> Pipeline:
    """Load `pipelines/NAME.yaml` (or `.py` defining PIPELINE) from the search folders, or a file path."""
    candidates = [Path(name_or_path)] if name_or_path.endswith((".yaml", ".yml", ".py")) else []
    for folder in search:
        candidates += [folder / f"{name_or_path}.yaml", folder / f"{name_or_path}.yml", folder / f"{name_or_path}.py"]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        known = sorted({p.stem for p in list_pipelines(search)})
        raise PipelineError(
            f"no pipeline {name_or_path!r} in {', '.join(str(s) for s in search) or 'the search path'}",
            hint=f"known pipelines: {', '.join(known) or 'none'}; or pass a path to a .yaml file",
        )
    if path.suffix == ".py":
        return _load_python(path)
    import yaml  # small, but only needed here

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise PipelineError(f"{path}: not valid YAML: {e}", hint="quote values such as '${param}' inside {...} flow mappings") from None
    return pipeline_from_dict(data, catalog=catalog, source=str(path))


def _load_python(path: Path) -> Pipeline:
    import runpy

    namespace = runpy.run_path(str(path))
    pipeline = namespace.get("PIPELINE")
    if not isinstance(pipeline, Pipeline):
        raise PipelineError(f"{path} defines no PIPELINE", hint="assign a skyops.pipeline.Pipeline to PIPELINE")
    return pipeline


def list_pipelines(search: Sequence[Path]) -> list[Path]:
    """The pipeline files in `search`: YAML and Python, not `_private` ones, not the search spaces beside them (NAME.tune.yaml)."""
    return sorted(
        p
        for folder in search
        if folder.is_dir()
        for p in folder.iterdir()
        if p.suffix in (".yaml", ".yml", ".py") and not p.name.startswith("_") and not p.stem.endswith(".tune")
    )
