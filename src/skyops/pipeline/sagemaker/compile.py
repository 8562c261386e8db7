"""Compile a pipeline to a SageMaker pipeline definition: a pure function, same input -> same bytes.

    definition = compile_pipeline(pipeline, settings, {"dataset": "s3://bucket/visdrone/"})
    json.dumps(definition, indent=2, sort_keys=True)     # what UpsertPipeline receives

How each part maps (docs/sagemaker.md has the table):
  1. Parameters keep their names, types and defaults (`overrides` replace defaults); the engine adds
     a few infrastructure parameters (instance types), refusing any name clash. None of them is
     run-specific: a step's cache key holds no execution variable and no such parameter (caching.py).
  2. Each step becomes what the renderer of its job kind makes (render.py: Processing, Training, or a
     registration's decision and RegisterModel steps), with the same `--name value` arguments as the
     local engine; `${param}` values become Gets.
  3. Each edge becomes a property reference to the producer's S3 output, which is also SageMaker's
     implicit dependency. A `${param}` input becomes the parameter; an optional one whose value is
     "" is left out (as locally); a local path cannot reach a SageMaker job and is an error. A
     `scheme:reference` input becomes a String parameter of its own that `skyops sagemaker start`
     fills (sources.py); the definition's Metadata records its source.
  4. With a search space (`tune`), its training step becomes a Tuning step and consumers read the
     best training job's outputs (tuning.py).
  5. Each gate becomes a PropertyFile, a Condition step holding the guarded steps (and every step
     after them) and a Fail step (conditions.py). Steps a renderer adds after its job (a
     registration's decision) go at the top level, after the others.
Nothing in a compiled pipeline creates a model or an endpoint: deployment follows approval.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from skyops.errors import ConfigError, PipelineError, SkyopsError, problems_error
from skyops.pipeline.config import config_to_dict, to_argument
from skyops.pipeline.contract import PROGRESS_ENV, RUN_CONTEXT_ENV, TRAINING_MODEL, JobKind
from skyops.pipeline.definition import Parameter, ParamType, Pipeline, StepNode
from skyops.pipeline.gates import Gate
from skyops.pipeline.sagemaker import conditions, tuning
from skyops.pipeline.sagemaker.caching import cache_key_attributes
from skyops.pipeline.sagemaker.expressions import EXECUTION_ID, Value, as_string, parameter
from skyops.pipeline.sagemaker.jobs import PROCESSING_INSTANCE_TYPE, TRAINING_INSTANCE_TYPE, SageMakerJob
from skyops.pipeline.sagemaker.render import renderer_for
from skyops.pipeline.sagemaker.settings import SageMakerSettings
from skyops.pipeline.sagemaker.sources import source_metadata, source_parameter, source_parameters
from skyops.pipeline.search import SearchSpace
from skyops.pipeline.wiring import Edge, OutputRef, ParamRef, SchemeRef

VERSION = "2020-12-01"
_STEP_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TYPE = {ParamType.STRING: "String", ParamType.INTEGER: "Integer", ParamType.FLOAT: "Float", ParamType.BOOLEAN: "Boolean"}
# SageMaker's limits on one value (characters, botocore's shapes): a container argument, a hyperparameter.
_MAX_ARGUMENT = {JobKind.PROCESSING: 256, JobKind.TRAINING: 2500, JobKind.REGISTRATION: 256}
_MAX_ENV_VALUE = {JobKind.PROCESSING: 256, JobKind.TRAINING: 512, JobKind.REGISTRATION: 256}
STATE_DIR = "/tmp/skyops"  # SKYOPS_STATE_DIR inside a job: scratch space, gone with the instance
JOB_USER = "sagemaker-pipeline"  # SKYOPS_USER inside a job; who started an execution is in its CreatedBy and CloudTrail


def run_context(step: str) -> dict[str, str]:
    """The engine's per-step variables (RUN_CONTEXT_ENV) as a SageMaker job sees them: constants only.

    They go into the job's Environment, which is part of SageMaker's cache key, so none may differ
    between two executions of the same settings. SKYOPS_RUN_ID is therefore empty: the step runtime
    fills in the name of the job it runs in, new for every job (runtime.sagemaker_job_name).

    Raises:
        PipelineError: the engine sets a variable this compiler does not know how to give a job.
    """
    values = {
        "SKYOPS_RUN_ID": "",
        "SKYOPS_STEP_NAME": step,
        "SKYOPS_STATE_DIR": STATE_DIR,
        "SKYOPS_USER": JOB_USER,
        PROGRESS_ENV: "",  # no live display to feed: report_progress's lines go to CloudWatch
    }
    unknown = [name for name in RUN_CONTEXT_ENV if name not in values]
    if unknown:
        raise PipelineError(
            f"the local engine sets {', '.join(unknown)} for every step, but the SageMaker compiler has no value for it; map it in run_context()"
        )
    return {name: values[name] for name in RUN_CONTEXT_ENV}


def infrastructure_parameters(pipeline: Pipeline, settings: SageMakerSettings) -> tuple[Parameter, ...]:
    """The parameters the engine adds, for the job kinds the pipeline has (docs/sagemaker.md lists them)."""
    kinds = {node.definition.contract.job_kind for node in pipeline.steps}
    params = []
    if kinds & {JobKind.PROCESSING, JobKind.REGISTRATION}:  # a registration decides in a processing job
        params.append(Parameter(name=PROCESSING_INSTANCE_TYPE, type=ParamType.STRING, default=settings.processing_instance_type))
    if JobKind.TRAINING in kinds:
        params.append(Parameter(name=TRAINING_INSTANCE_TYPE, type=ParamType.STRING, default=settings.training_instance_type))
    return tuple(params)


def compile_pipeline(
    pipeline: Pipeline, settings: SageMakerSettings, overrides: Mapping[str, str] | None = None, *, tune: SearchSpace | None = None
) -> dict[str, Any]:
    """The SageMaker pipeline definition (version 2020-12-01) of `pipeline`, as a JSON-ready dict.

    Args:
        pipeline: a validated pipeline.
        settings: bucket, role, region, image, instances; `settings.code_key` names the code archive.
        overrides: parameter name -> new default, as `--param` strings; pipeline or infrastructure parameters.
        tune: a search space (pipeline/search.py): its training step becomes a Tuning step (tuning.py).

    Raises:
        ConfigError: an override names no parameter or has the wrong type, or makes a step's config invalid.
        PipelineError: every part that SageMaker cannot run, listed together.
    """
    infrastructure = infrastructure_parameters(pipeline, settings) + source_parameters(pipeline, settings)
    clashes = sorted({p.name for p in pipeline.parameters} & {p.name for p in infrastructure})
    if clashes:
        raise PipelineError(
            f"pipeline {pipeline.name!r} defines parameter {', '.join(map(repr, clashes))}, which the SageMaker engine adds itself",
            hint="rename the pipeline parameter (docs/sagemaker.md lists the engine's parameters)",
        )
    if not settings.code_key:
        raise ConfigError(
            "SageMaker settings have no code_key", hint="build the code archive and apply it with with_code(settings, archive)"
        )
    params = _with_overrides(pipeline, infrastructure, dict(overrides or {}))
    # Every step's config problems at once, worded as by the local engine, before any step is built.
    pipeline.resolve_configs({name: p.default for name, p in params.items()})
    tuned = tuning.tuned_step(pipeline, tune) if tune is not None else None
    return _Compiler(pipeline, settings, params, tune, tuned).definition()


def _with_overrides(pipeline: Pipeline, infrastructure: tuple[Parameter, ...], overrides: dict[str, str]) -> dict[str, Parameter]:
    own = {k: v for k, v in overrides.items() if k in {p.name for p in pipeline.parameters}}
    extra = {p.name: p for p in infrastructure}
    unknown = sorted(set(overrides) - set(own) - set(extra))
    if unknown:
        known = [f"{p.name} ({p.type})" for p in (*pipeline.parameters, *infrastructure)]
        raise ConfigError(
            f"pipeline {pipeline.name!r} has no parameter {', '.join(map(repr, unknown))}", hint=f"parameters: {', '.join(known)}"
        )
    values = pipeline.resolve_parameters(own)
    params = {p.name: dataclasses.replace(p, default=values[p.name]) for p in pipeline.parameters}
    params.update({name: dataclasses.replace(p, default=p.parse(overrides[name])) if name in overrides else p for name, p in extra.items()})
    return params


def parameter_json(param: Parameter) -> dict[str, Any]:
    return {"Name": param.name, "Type": _TYPE[param.type], "DefaultValue": param.default}


class _Compiler:
    """One compilation: resolves every step, collecting all problems before raising."""

    def __init__(
        self,
        pipeline: Pipeline,
        settings: SageMakerSettings,
        params: dict[str, Parameter],
        space: SearchSpace | None = None,
        tuned: tuning.TunedStep | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.space = space
        self.tuned = tuned
        self.settings = settings
        self.params = params
        self.problems: list[str] = []
        self.gate_of: dict[str, Gate] = {}  # guarded step (or a step after one) -> its gate

    def definition(self) -> dict[str, Any]:
        self._check_gates()
        steps: dict[str, dict[str, Any]] = {}
        followers: list[dict[str, Any]] = []
        for node in self.pipeline.steps:
            try:
                job = self._job(node, steps)
                rendered = renderer_for(node.definition.contract).steps(job)
                if self.tuned is not None and self.space is not None and node.name == self.tuned.step:
                    launcher = job.contract.launcher if self.settings.training_instance_count > 1 else None
                    step = tuning.tuning_step(
                        rendered.step, self.space, self.tuned, entry_point=job.contract.entry_point, launcher=launcher
                    )
                    rendered = dataclasses.replace(rendered, step=step)
            except SkyopsError as e:
                hint = f" ({e.hint})" if e.hint and len(e.problems) == 1 else ""
                self.problems += [f"step {node.name!r}: {p}{hint}" for p in e.problems]
                continue
            steps[node.name] = rendered.step
            followers += rendered.followers
        top = self._arrange(steps) + followers
        names = [s["Name"] for s in _all_steps(top)]
        self.problems += [f"step name {n!r} must match {_STEP_NAME.pattern} on SageMaker" for n in names if not _STEP_NAME.match(n)]
        self.problems += [
            f"step name {n!r} is used twice (a gate or a registration's decision step takes it)"
            for n in sorted({n for n in names if names.count(n) > 1})
        ]
        if self.problems:
            raise problems_error(PipelineError, f"the SageMaker definition of pipeline {self.pipeline.name!r}", self.problems)
        definition: dict[str, Any] = {"Version": VERSION, "Parameters": [parameter_json(p) for p in self.params.values()], "Steps": top}
        metadata = source_metadata(self.pipeline)
        if metadata:
            definition["Metadata"] = metadata
        return definition

    def _check_gates(self) -> None:
        for node in self.pipeline.steps:
            gates = self.pipeline.gated_by(node.name)
            if len(gates) > 1:
                self.problems.append(
                    f"step {node.name!r} is guarded by gates {', '.join(sorted(g.name for g in gates))}; SageMaker cannot nest "
                    "condition steps, so merge them into one gate with all the conditions"
                )
            elif gates:
                self.gate_of[node.name] = gates[0]
        for gate in self.pipeline.gates:
            self.problems += conditions.gate_problems(gate, self.params)
            if self.pipeline.step(gate.step).definition.contract.job_kind is not JobKind.PROCESSING:
                self.problems.append(
                    f"gate {gate.name!r} reads step {gate.step!r}, but only processing steps can declare the PropertyFile it needs"
                )

    def _job(self, node: StepNode, built: Mapping[str, dict[str, Any]]) -> SageMakerJob:
        """What the builder needs for one step; `built` holds the steps before it (pipeline order)."""
        definition = node.definition
        inputs: dict[str, Value] = {}
        archives = set()
        for edge in self.pipeline.inputs_of(node.name):
            uri, is_archive = self._input(node, edge)
            if uri is not None:
                inputs[edge.port] = uri
                if is_archive:
                    archives.add(edge.port)
        kind = definition.contract.job_kind
        upstream = self._ancestors(node.name)
        defaults = {name: p.default for name, p in self.params.items()}
        return SageMakerJob(
            name=node.name,
            contract=definition.contract,
            arguments=self._arguments(node, _MAX_ARGUMENT[kind]),
            inputs=inputs,
            archives=frozenset(archives),
            output_parts=self._output_parts(node.name),
            environment=self._environment(node),
            settings=self.settings,
            description=definition.spec.description,
            property_files=tuple(conditions.property_file(g) for g in self.pipeline.gates if g.step == node.name),
            metadata={"skyops:pipeline": self.pipeline.name, "skyops:execution": EXECUTION_ID, "skyops:code": self.settings.code_key},
            pipeline=self.pipeline.name,
            upstream_cache_keys=tuple(
                cache_key_attributes(built[n.name]["Type"], built[n.name]["Arguments"])
                for n in self.pipeline.steps
                if n.name in upstream and n.name in built
            ),
            rechecked=definition.recheck is not None,
            config=config_to_dict(node.resolved_config(defaults)),
        )

    def _output_parts(self, step: str) -> tuple[Value, ...]:
        """Joined with '/': the S3 prefix of `step`'s outputs in this execution."""
        return (f"s3://{self.settings.bucket}/{self.settings.prefix}/{self.pipeline.name}", EXECUTION_ID, step)

    def _ancestors(self, name: str) -> set[str]:
        """Every step whose output `name` reads, directly or through other steps."""
        found: set[str] = set()
        todo = list(self.pipeline.upstream_of(name))
        while todo:
            step = todo.pop()
            if step not in found:
                found.add(step)
                todo += self.pipeline.upstream_of(step)
        return found

    def _input(self, node: StepNode, edge: Edge) -> tuple[Value | None, bool]:
        """(S3 URI or None to leave the input out, whether it is one model.tar.gz)."""
        source = edge.source
        where = f"input {edge.port!r} ({source})"
        if isinstance(source, OutputRef):
            contract = self.pipeline.step(source.step).definition.contract
            if self.tuned is not None and source.step == self.tuned.step:  # the best training job's
                uri = tuning.best_training_output(source.step, contract.outputs[source.port], self._output_parts(source.step))
                return uri, contract.outputs[source.port] == TRAINING_MODEL
            output = renderer_for(contract).output(source.step, source.port, contract)
            return output.uri, output.archive
        if isinstance(source, SchemeRef):
            return parameter(source_parameter(node.name, edge.port)), False  # `skyops sagemaker start` fills it
        location = source.location
        if isinstance(location, ParamRef):
            param = self.params[location.name]
            if param.default == "" and node.definition.spec.input(edge.port).optional:
                return None, False  # as locally: an optional input bound to an empty parameter stays unbound
            if param.type is not ParamType.STRING or not str(param.default).startswith("s3://"):
                raise PipelineError(
                    f"{where} is {param.default!r}; a SageMaker job reads its inputs from S3",
                    hint=f"compile with --param {param.name}=s3://BUCKET/PATH (the parameter's new default)",
                )
            return parameter(param.name), False
        if not location.startswith("s3://"):
            raise PipelineError(
                f"{where} is a local path; a SageMaker job reads its inputs from S3",
                hint=f"upload it and bind s3://BUCKET/PATH instead of {location}",
            )
        return location, False

    def _arguments(self, node: StepNode, limit: int) -> tuple[Value, ...]:
        """`config_arguments` of the resolved config, with `${param}` values as parameter Gets."""
        config = node.resolved_config({name: p.default for name, p in self.params.items()})
        arguments: list[Value] = []
        for name, value in sorted(config_to_dict(config).items()):
            ref = node.config.get(name)
            text = as_string(self.params[ref.name]) if isinstance(ref, ParamRef) else to_argument(value)
            if isinstance(text, str) and len(text) > limit:
                raise PipelineError(f"config {name!r} is {len(text)} characters as an argument; SageMaker takes at most {limit}")
            arguments += [f"--{name}", text]
        return tuple(arguments)

    def _environment(self, node: StepNode) -> dict[str, Value]:
        """The contract's env vars: run context, then the pipeline's `env:`, then the contract's defaults.

        Raises:
            PipelineError: a required variable has no value, or a value is longer than the job's Environment takes.
        """
        contract = node.definition.contract
        given = {**self.pipeline.env, **node.env}
        context = run_context(node.name)
        env: dict[str, Value] = {}
        missing = []
        for name in sorted(contract.env_names):
            if name in context:
                env[name] = context[name]
            elif name in given:
                env[name] = given[name]
            elif name in contract.optional_env:
                env[name] = contract.optional_env[name]
            else:
                missing.append(name)
        if missing:
            raise PipelineError(
                f"needs env var {', '.join(missing)}, which has no value in the pipeline; a SageMaker job does not see your shell",
                hint="set it in the pipeline's env: section",
            )
        limit = _MAX_ENV_VALUE[contract.job_kind]
        long = [f"{name} ({len(value)} characters)" for name, value in sorted(env.items()) if isinstance(value, str) and len(value) > limit]
        if long:
            raise PipelineError(f"env var {', '.join(long)} is longer than a {contract.job_kind} job's Environment takes ({limit})")
        return env

    def _arrange(self, steps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Top-level steps in pipeline order; gated steps move into their gate's Condition step."""
        top: list[dict[str, Any]] = []
        placed = set()
        for node in self.pipeline.steps:
            gate = self.gate_of.get(node.name)
            if node.name not in steps:
                continue
            if gate is None:
                top.append(steps[node.name])
            elif gate.name not in placed:
                placed.add(gate.name)
                guarded = [steps[n.name] for n in self.pipeline.steps if self.gate_of.get(n.name) == gate and n.name in steps]
                top.append(conditions.gate_condition_step(gate, guarded, self.params))
        return top


def _all_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step, including those inside condition branches."""
    found = []
    for step in steps:
        found.append(step)
        if step["Type"] == "Condition":
            found += _all_steps(step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", []))
    return found
