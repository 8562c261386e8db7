"""A Tuning step in place of the tuned training step: the search space file (search.py) on SageMaker.

`skyops sagemaker compile --tune [SPACE]` reads the same `<pipeline>.tune.yaml` as `skyops tune` and
turns the one training step whose configs its parameters set into a Tuning step
(CreateHyperParameterTuningJob minus the name):

1. Every space parameter must set configs of that training step only, one config key each: the
   local engine sets pipeline parameter P, which sets the step config K bound to `${P}`; the tuning
   job varies hyperparameter K, which the step reads as config K. A parameter that also feeds another
   step (`image_size` sets train's and evaluate's imgsz) cannot be varied by a tuning job: refused.
2. Ranges keep their bounds and scale (log -> Logarithmic, else Linear); categorical values are
   written as the local engine writes arguments (`to_argument`). MaxNumberOfTrainingJobs = trials.
3. The objective metric is one of the training step's MetricDefinitions (the same regexes over the
   per-epoch `report_progress` line), matched as the local engine matches it (case, `(B)`, `-`).
4. The training job definition is the Training step's, except what a tuning job cannot carry:
   HyperParameterAlgorithmSpecification has no ContainerEntrypoint, so the image's own `train`
   (docker/train) unpacks the code and runs SKYOPS_ENTRY_POINT (set in Environment); no
   CheckpointConfig, as parallel trials would share one checkpoint folder.
5. Consumers of the step's model read the best training job's: `<output path>/<BestTrainingJob.
   TrainingJobName>/output/model.tar.gz` (what the SageMaker SDK's TuningStep.get_top_model_s3_uri
   builds from TrainingJobSummaries[0]).
`sagemaker:` keys of the space: max_parallel_jobs (default 1), strategy (Bayesian | Random, default
Bayesian), early_stopping (Auto | Off, default Auto: the counterpart of local pruning).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skyops.errors import PipelineError, problems_error
from skyops.pipeline.config import to_argument
from skyops.pipeline.contract import TRAINING_MODEL, TRAINING_OUTPUT, JobKind
from skyops.pipeline.definition import Pipeline
from skyops.pipeline.sagemaker.expressions import Value, join, step_property
from skyops.pipeline.search import Choice, FloatRange, SearchSpace
from skyops.pipeline.wiring import ParamRef

ENTRY_POINT_ENV = "SKYOPS_ENTRY_POINT"  # what docker/train runs: `python -m $SKYOPS_ENTRY_POINT`
LAUNCHER_ENV = "SKYOPS_LAUNCHER"  # set for several instances: `python -m $SKYOPS_LAUNCHER $SKYOPS_ENTRY_POINT`
STRATEGIES = ("Bayesian", "Random")  # what the pipeline-definition schema takes (botocore also has Grid, Hyperband)
EARLY_STOPPING = ("Auto", "Off")
_SAGEMAKER_KEYS = ("early_stopping", "max_parallel_jobs", "strategy")
_HINT = "fix the search space file (docs/sagemaker.md, Tuning)"
# Metric names match as the local engine matches them (skyops tune's metric_name; pipeline/ cannot import training/).
_GROUP_SUFFIX = re.compile(r"\(b\)$")


def metric_key(name: str) -> str:
    """`mAP50(B)`, `map50` -> `map50`; `mAP50-95(B)` -> `map50_95` (the local engine's matching rule)."""
    return _GROUP_SUFFIX.sub("", name.strip().lower().split("/")[-1]).replace("-", "_")


@dataclass(frozen=True)
class TunedStep:
    """Which training step a space tunes and how: space parameter -> the step's config key it sets."""

    step: str
    keys: Mapping[str, str]


def tuned_step(pipeline: Pipeline, space: SearchSpace) -> TunedStep:
    """The one training step the space's parameters set, and the config key each sets (rule 1).

    Raises:
        PipelineError: every parameter a tuning job cannot vary, listed together.
    """
    problems = []
    keys: dict[str, str] = {}
    steps: set[str] = set()
    for name in space.parameters:
        bound = [(n.name, key) for n in pipeline.steps for key, ref in n.config.items() if isinstance(ref, ParamRef) and ref.name == name]
        training = [(s, k) for s, k in bound if pipeline.step(s).definition.contract.job_kind is JobKind.TRAINING]
        others = [f"{k!r} of step {s!r}" for s, k in bound if (s, k) not in training]
        if not bound:
            problems.append(f"parameter {name!r} sets no step config, so a tuning job has nothing to vary")
        elif others:
            problems.append(
                f"parameter {name!r} also sets config {', '.join(others)}, which a tuning job cannot vary "
                "(it varies only its training jobs' hyperparameters); tune a parameter that sets the training step alone"
            )
        elif len(training) > 1:
            problems.append(
                f"parameter {name!r} sets {len(training)} training configs ({training}); a tuning job varies one hyperparameter per range"
            )
        else:
            steps.add(training[0][0])
            keys[name] = training[0][1]
    if len(steps) > 1:
        problems.append(
            f"the space's parameters set configs of training steps {', '.join(sorted(steps))}; one tuning job tunes one training step"
        )
    _refuse(problems, space)
    return TunedStep(step=steps.pop(), keys=keys)


def tuning_step(
    training: Mapping[str, Any], space: SearchSpace, tuned: TunedStep, *, entry_point: str, launcher: str | None
) -> dict[str, Any]:
    """The Tuning step replacing `training` (the rendered Training step of `tuned.step`), rules 2-4.

    Raises:
        PipelineError: the objective metric is not one the training step defines, or a `sagemaker:` key is wrong.
    """
    arguments = training["Arguments"]
    algorithm = arguments["AlgorithmSpecification"]
    metrics = {metric_key(m["Name"]): m["Name"] for m in algorithm.get("MetricDefinitions", [])}
    problems = _sagemaker_problems(space.sagemaker)
    objective = metrics.get(metric_key(space.objective.metric))
    if objective is None:
        problems.append(
            f"objective.metric {space.objective.metric!r} is not a metric the training job defines "
            f"(MetricDefinitions: {', '.join(sorted(metrics.values())) or 'none'})"
        )
    _refuse(problems, space)
    environment = {**arguments.get("Environment", {}), ENTRY_POINT_ENV: entry_point}
    if launcher:
        environment[LAUNCHER_ENV] = launcher
    tuned_keys = set(tuned.keys.values())
    definition: dict[str, Any] = {
        "AlgorithmSpecification": {
            "TrainingImage": algorithm["TrainingImage"],
            "TrainingInputMode": algorithm["TrainingInputMode"],
            "MetricDefinitions": algorithm["MetricDefinitions"],
        },
        "RoleArn": arguments["RoleArn"],
        "StaticHyperParameters": {k: v for k, v in arguments["HyperParameters"].items() if k not in tuned_keys},
        "InputDataConfig": arguments["InputDataConfig"],
        "OutputDataConfig": arguments["OutputDataConfig"],
        "ResourceConfig": arguments["ResourceConfig"],
        "StoppingCondition": arguments["StoppingCondition"],
        "EnableManagedSpotTraining": arguments["EnableManagedSpotTraining"],
        "Environment": environment,
    }
    sagemaker = space.sagemaker
    config = {
        "Strategy": sagemaker.get("strategy", "Bayesian"),
        "HyperParameterTuningJobObjective": {"Type": space.objective.direction.capitalize(), "MetricName": objective},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": space.trials, "MaxParallelTrainingJobs": sagemaker.get("max_parallel_jobs", 1)},
        "ParameterRanges": parameter_ranges(space, tuned),
        "TrainingJobEarlyStoppingType": sagemaker.get("early_stopping", "Auto"),
    }
    step: dict[str, Any] = {
        "Name": training["Name"],
        "Type": "Tuning",
        "Arguments": {"HyperParameterTuningJobConfig": config, "TrainingJobDefinition": definition},
    }
    for key in ("Description", "CacheConfig", "RetryPolicies"):
        if key in training:
            step[key] = training[key]
    return step


def parameter_ranges(space: SearchSpace, tuned: TunedStep) -> dict[str, list[dict[str, Any]]]:
    """ParameterRanges of the space, named by the config keys the tuned step reads (rule 2)."""
    ranges: dict[str, list[dict[str, Any]]] = {
        "ContinuousParameterRanges": [],
        "IntegerParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for name, found in space.parameters.items():
        key = tuned.keys[name]
        if isinstance(found, Choice):
            ranges["CategoricalParameterRanges"].append({"Name": key, "Values": [to_argument(v) for v in found.choices]})
            continue
        kind = "ContinuousParameterRanges" if isinstance(found, FloatRange) else "IntegerParameterRanges"
        ranges[kind].append(
            {
                "Name": key,
                "MinValue": to_argument(found.low),
                "MaxValue": to_argument(found.high),
                "ScalingType": "Logarithmic" if found.log else "Linear",
            }
        )
    return {kind: found for kind, found in ranges.items() if found}


def best_training_output(step: str, path: str, output_parts: tuple[Value, ...]) -> Value:
    """Where the best training job of Tuning step `step` left output `path` (rule 5)."""
    suffix = {TRAINING_MODEL: "/output/model.tar.gz", TRAINING_OUTPUT: "/output/output.tar.gz"}.get(path)
    if suffix is None:
        raise PipelineError(f"step {step!r} output at {path}: a training job uploads only {TRAINING_MODEL} and {TRAINING_OUTPUT}")
    parts: list[Value] = []
    for part in output_parts:
        parts += [part, "/"]
    return join([*parts, step_property(step, "BestTrainingJob.TrainingJobName"), suffix])


def _refuse(problems: list[str], space: SearchSpace) -> None:
    subject = f"the tuning job of search space {space.source}"
    if len(problems) == 1:
        raise PipelineError(f"{subject}: {problems[0]}", hint=_HINT)
    if problems:
        raise problems_error(PipelineError, subject, problems, hint=_HINT)


def _sagemaker_problems(sagemaker: Mapping[str, Any]) -> list[str]:
    problems = [f"sagemaker: unknown key {k!r} (allowed: {', '.join(_SAGEMAKER_KEYS)})" for k in sagemaker if k not in _SAGEMAKER_KEYS]
    parallel = sagemaker.get("max_parallel_jobs", 1)
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        problems.append(f"sagemaker.max_parallel_jobs: expected an integer >= 1, got {parallel!r}")
    if sagemaker.get("strategy", "Bayesian") not in STRATEGIES:
        problems.append(f"sagemaker.strategy: expected {' or '.join(STRATEGIES)}, got {sagemaker['strategy']!r}")
    if sagemaker.get("early_stopping", "Auto") not in EARLY_STOPPING:
        problems.append(f"sagemaker.early_stopping: expected {' or '.join(EARLY_STOPPING)}, got {sagemaker['early_stopping']!r}")
    return problems
