"""The Tuning step: the search space file (pipeline/search.py) compiled for SageMaker, checked against the
shared schema, botocore's CreateHyperParameterTuningJob shape and moto, with the same space as the local engine."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import tarfile
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from skyops.cli.sagemaker_cmd import TRAIN_METRICS
from skyops.errors import PipelineError
from skyops.pipeline.config import to_argument
from skyops.pipeline.definition import Pipeline, pipeline_from_dict
from skyops.pipeline.runtime import report_progress
from skyops.pipeline.sagemaker import compile_pipeline
from skyops.pipeline.sagemaker.tuning import metric_key
from skyops.pipeline.search import Choice, FloatRange, IntRange, SearchSpace, load_search_space
from skyops.pipeline.wiring import ParamRef

from .checks import all_steps, definition_schema, parameter_defaults, request_errors, schema_errors
from .conftest import ROOT, SETTINGS

TUNED_SETTINGS = dataclasses.replace(SETTINGS, metric_definitions=TRAIN_METRICS)
SPACE = """
objective: {metric: map50, direction: maximize}
trials: 12
parameters:
  lr0: {type: float, low: 0.001, high: 0.05, log: true}
  epochs: {type: int, low: 4, high: 20}
  batch: {type: categorical, choices: [8, 16, 32]}
pruning: {warmup_epochs: 2}
sagemaker: {max_parallel_jobs: 3, strategy: Bayesian, early_stopping: Auto}
"""


@pytest.fixture(scope="module")
def tunable() -> Pipeline:
    """drone-detection with an lr0 parameter bound to the train step (a float to tune on a log scale)."""
    data = yaml.safe_load((ROOT / "pipelines" / "drone-detection.yaml").read_text())
    data["parameters"]["lr0"] = {"type": "float", "default": 0.01, "description": "initial learning rate"}
    next(s for s in data["steps"] if s["step"] == "train")["config"]["lr0"] = "${lr0}"
    return pipeline_from_dict(data, source=str(ROOT / "pipelines" / "drone-detection.yaml"))


def space_of(tmp_path: Path, pipeline: Pipeline, text: str = SPACE) -> SearchSpace:
    path = tmp_path / "drone-detection.tune.yaml"
    path.write_text(text)
    return load_search_space(path, pipeline)


def tuning_of(definition: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in all_steps(definition["Steps"]) if s["Type"] == "Tuning"]
    return step


def test_the_train_step_becomes_a_tuning_job_over_the_space(tmp_path: Path, tunable: Pipeline) -> None:
    definition = compile_pipeline(tunable, TUNED_SETTINGS, tune=space_of(tmp_path, tunable))
    step = tuning_of(definition)
    assert step["Name"] == "train" and "Training" not in {s["Type"] for s in all_steps(definition["Steps"])}
    config = step["Arguments"]["HyperParameterTuningJobConfig"]
    assert config == {
        "Strategy": "Bayesian",
        "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "map50"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3},
        "ParameterRanges": {
            "ContinuousParameterRanges": [{"Name": "lr0", "MinValue": "0.001", "MaxValue": "0.05", "ScalingType": "Logarithmic"}],
            "IntegerParameterRanges": [{"Name": "epochs", "MinValue": "4", "MaxValue": "20", "ScalingType": "Linear"}],
            "CategoricalParameterRanges": [{"Name": "batch", "Values": ["8", "16", "32"]}],
        },
        "TrainingJobEarlyStoppingType": "Auto",
    }
    job = step["Arguments"]["TrainingJobDefinition"]
    assert not {"lr0", "epochs", "batch"} & set(job["StaticHyperParameters"])  # tuned: not static
    assert job["StaticHyperParameters"]["imgsz"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.image_size"}]}}
    assert job["Environment"]["SKYOPS_ENTRY_POINT"] == "skyops.steps.train" and "SKYOPS_LAUNCHER" not in job["Environment"]
    assert "ContainerEntrypoint" not in job["AlgorithmSpecification"] and "CheckpointConfig" not in job
    assert {m["Name"] for m in job["AlgorithmSpecification"]["MetricDefinitions"]} == set(TRAIN_METRICS)


def test_evaluate_reads_the_best_training_jobs_model(tmp_path: Path, tunable: Pipeline) -> None:
    definition = compile_pipeline(tunable, TUNED_SETTINGS, tune=space_of(tmp_path, tunable))
    evaluate = next(s for s in all_steps(definition["Steps"]) if s["Name"] == "evaluate")
    (model,) = [i for i in evaluate["Arguments"]["ProcessingInputs"] if i["InputName"] == "model"]
    assert model["S3Input"]["S3Uri"] == {
        "Std:Join": {
            "On": "",
            "Values": [
                f"s3://{SETTINGS.bucket}/{SETTINGS.prefix}/drone-detection",
                "/",
                {"Get": "Execution.PipelineExecutionId"},
                "/",
                "train",
                "/",
                {"Get": "Steps.train.BestTrainingJob.TrainingJobName"},
                "/output/model.tar.gz",
            ],
        }
    }


def test_the_tuning_definition_validates_against_the_schema_and_botocore(tmp_path: Path, tunable: Pipeline) -> None:
    definition = compile_pipeline(tunable, dataclasses.replace(TUNED_SETTINGS, training_instance_count=2), tune=space_of(tmp_path, tunable))
    assert schema_errors(definition, definition_schema()) == []
    defaults = parameter_defaults(definition)
    assert {s["Name"]: request_errors(s, defaults) for s in all_steps(definition["Steps"]) if s["Type"] == "Tuning"} == {"train": ""}
    environment = tuning_of(definition)["Arguments"]["TrainingJobDefinition"]["Environment"]
    assert environment["SKYOPS_LAUNCHER"] == "skyops.training.distributed"


def test_the_request_check_catches_a_wrong_tuning_member(tmp_path: Path, tunable: Pipeline) -> None:
    step = tuning_of(compile_pipeline(tunable, TUNED_SETTINGS, tune=space_of(tmp_path, tunable)))
    step["Arguments"]["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxParallelTrainingJobs"] = "three"
    assert "Invalid type for parameter HyperParameterTuningJobConfig.ResourceLimits.MaxParallelTrainingJobs" in request_errors(step)


def test_parity_the_same_space_file_means_the_same_search_on_both_engines(tmp_path: Path, tunable: Pipeline) -> None:
    """Locally `skyops tune` sets pipeline parameter P, which sets the train config bound to ${P}; SageMaker varies that config."""
    space = space_of(tmp_path, tunable)
    config = tuning_of(compile_pipeline(tunable, TUNED_SETTINGS, tune=space))["Arguments"]["HyperParameterTuningJobConfig"]
    train = tunable.step("train")
    local = {}
    for name, found in space.parameters.items():
        (key,) = [k for k, ref in train.config.items() if isinstance(ref, ParamRef) and ref.name == name]
        if isinstance(found, Choice):
            local[key] = ("categorical", tuple(to_argument(v) for v in found.choices))
        else:
            kind = "float" if isinstance(found, FloatRange) else "int"
            local[key] = (kind, to_argument(found.low), to_argument(found.high), "Logarithmic" if found.log else "Linear")
    kinds = {"ContinuousParameterRanges": "float", "IntegerParameterRanges": "int"}
    compiled = {}
    for kind, ranges in config["ParameterRanges"].items():
        for r in ranges:
            if kind == "CategoricalParameterRanges":
                compiled[r["Name"]] = ("categorical", tuple(r["Values"]))
            else:
                compiled[r["Name"]] = (kinds[kind], r["MinValue"], r["MaxValue"], r["ScalingType"])
    assert compiled == local
    assert config["ResourceLimits"]["MaxNumberOfTrainingJobs"] == space.trials
    assert metric_key(config["HyperParameterTuningJobObjective"]["MetricName"]) == metric_key(space.objective.metric)
    assert isinstance(space.parameters["epochs"], IntRange)


def test_the_objective_regex_reads_the_train_steps_real_progress_line(tmp_path: Path, tunable: Pipeline) -> None:
    from skyops.steps.train.script import PROGRESS_METRICS

    step = tuning_of(compile_pipeline(tunable, TUNED_SETTINGS, tune=space_of(tmp_path, tunable)))
    name = step["Arguments"]["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    (regex,) = [
        m["Regex"] for m in step["Arguments"]["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"] if m["Name"] == name
    ]
    values = dict(zip(PROGRESS_METRICS, (1.25, 0.5, 1.0, 0.4123, 0.2311), strict=True))
    printed = io.StringIO()
    with redirect_stdout(printed):  # what the train step prints per epoch (report_progress, as in script.py)
        report_progress(3, 10, metrics={n.split("/")[-1]: v for n, v in values.items()})
    match = re.search(regex, printed.getvalue())
    assert match is not None and float(match.group(1)) == pytest.approx(0.412), printed.getvalue()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"image_size": {"type": "int", "low": 64, "high": 128}},
            "parameter 'image_size' also sets config 'synth_size' of step 'ingest', 'imgsz' of step 'evaluate', "
            "which a tuning job cannot vary",
        ),
        ({"images": {"type": "int", "low": 10, "high": 20}}, "parameter 'images' also sets config 'synth_images' of step 'ingest'"),
    ],
)
def test_a_parameter_that_feeds_another_step_is_refused(tmp_path: Path, tunable: Pipeline, change: dict[str, Any], problem: str) -> None:
    data = yaml.safe_load(SPACE)
    data["parameters"] = change
    with pytest.raises(PipelineError) as info:
        compile_pipeline(tunable, TUNED_SETTINGS, tune=space_of(tmp_path, tunable, yaml.safe_dump(data)))
    assert problem in info.value.message, info.value.message


def test_an_objective_the_training_job_does_not_define_is_refused(tmp_path: Path, tunable: Pipeline) -> None:
    space = space_of(tmp_path, tunable, SPACE.replace("metric: map50", "metric: recall"))
    with pytest.raises(
        PipelineError,
        match=r"objective.metric 'recall' is not a metric the training job defines \(MetricDefinitions: epoch, map50, map50_95\)",
    ):
        compile_pipeline(tunable, TUNED_SETTINGS, tune=space)


def test_sagemaker_settings_a_tuning_job_cannot_take_are_refused_together(tmp_path: Path, tunable: Pipeline) -> None:
    space = space_of(
        tmp_path, tunable, SPACE.replace("strategy: Bayesian, early_stopping: Auto", "strategy: Grid, early_stopping: Median, warm: 1")
    )
    with pytest.raises(PipelineError) as info:
        compile_pipeline(tunable, TUNED_SETTINGS, tune=space)
    assert info.value.problems == [
        "step 'train': sagemaker.early_stopping: expected Auto or Off, got 'Median'",
        "step 'train': sagemaker.strategy: expected Bayesian or Random, got 'Grid'",
        "step 'train': sagemaker: unknown key 'warm' (allowed: early_stopping, max_parallel_jobs, strategy)",
    ]


def test_docker_train_unpacks_the_code_and_runs_the_entry_point(tmp_path: Path) -> None:
    """The image's `train` (what a tuning job's training jobs run), here against a real archive and sh."""
    code = tmp_path / "code"
    code.mkdir()
    module = b"import os, sys\nprint('ran', __name__, os.environ['PYTHONPATH'], sys.argv[1:])\n"
    with tarfile.open(code / "sourcedir.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("hello_step.py")
        info.size = len(module)
        tar.addfile(info, io.BytesIO(module))
    unpacked = tmp_path / "unpacked"
    env = {"PATH": os.environ["PATH"], "SKYOPS_CODE_DIR": str(code), "SKYOPS_UNPACKED_CODE_DIR": str(unpacked)}
    done = subprocess.run(
        ["sh", str(ROOT / "docker" / "train")], env={**env, "SKYOPS_ENTRY_POINT": "hello_step"}, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (0, f"ran __main__ {unpacked} []\n"), done.stderr
    launched = subprocess.run(
        ["sh", str(ROOT / "docker" / "train")],
        env={**env, "SKYOPS_ENTRY_POINT": "step_module", "SKYOPS_LAUNCHER": "hello_step"},
        capture_output=True,
        text=True,
    )
    assert launched.stdout == f"ran __main__ {unpacked} ['step_module']\n", launched.stderr
    missing = subprocess.run(["sh", str(ROOT / "docker" / "train")], env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "SKYOPS_ENTRY_POINT: is not set" in missing.stderr
