"""Inside a SageMaker job the step runtime fills in the run id from the job's own name (SKYOPS_RUN_ID arrives empty).

SageMaker sets TRAINING_JOB_NAME in a training container and writes the processing job's
description, with its ProcessingJobName, to /opt/ml/config/processingjobconfig.json. Both are faked
here: the variable in the environment, the file mapped through SKYOPS_PATHS like any container path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skyops.errors import ContractError
from skyops.pipeline.catalog import EmptyConfig, StepDefinition
from skyops.pipeline.contract import JobKind, ScriptContract
from skyops.pipeline.runtime import PATHS_ENV, PROCESSING_JOB_CONFIG, prepare
from skyops.pipeline.spec import NodeType, StepSpec

from .conftest import ROOT

JOB = "pipelines-x1y2z3a4b5c6-registrar-AbCdEf1234"


def probe(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: object) -> None:
    """A script's main; these tests only prepare its call."""


def definition(kind: JobKind) -> StepDefinition:
    """A step reading SKYOPS_RUN_ID with the contract default "" (as train and register do)."""
    return StepDefinition(
        spec=StepSpec(step_type="probe", node_type=NodeType.SINK),
        contract=ScriptContract(entry_point="probe", job_kind=kind, optional_env={"SKYOPS_RUN_ID": ""}),
        config=EmptyConfig,
        func=probe,
    )


def run_id(kind: JobKind, environ: dict[str, str]) -> str:
    return prepare(definition(kind), [], environ)[2]["SKYOPS_RUN_ID"]


def test_a_processing_job_runs_under_its_job_name(tmp_path: Path) -> None:
    """A real step process: the toy registrar records the run id that registered its entry."""
    config = tmp_path / "processingjobconfig.json"
    config.write_text(
        json.dumps({"ProcessingJobName": JOB, "ProcessingJobArn": f"arn:aws:sagemaker:eu-west-1:123456789012:processing-job/{JOB}"})
    )
    paths = {"/opt/ml/processing/output/entry": str(tmp_path / "entry"), PROCESSING_JOB_CONFIG: str(config)}
    env = {
        **os.environ,
        PATHS_ENV: json.dumps(paths),
        "SKYOPS_RUN_ID": "",
        "SKYOPS_STATE_DIR": str(tmp_path / "state"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.pipeline.toysteps.registrar", "--name", "m"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "state" / "toy-registry" / "m").read_text() == f"registered by run {JOB}\n"


def test_a_training_job_runs_under_its_job_name() -> None:
    assert run_id(JobKind.TRAINING, {"SKYOPS_RUN_ID": "", "TRAINING_JOB_NAME": "pipelines-x1y2-train-Q9"}) == "pipelines-x1y2-train-Q9"


def test_a_run_id_the_engine_gives_is_kept(tmp_path: Path) -> None:
    config = tmp_path / "processingjobconfig.json"
    config.write_text(json.dumps({"ProcessingJobName": JOB}))
    environ = {
        "SKYOPS_RUN_ID": "20240101-000000-ab12",
        "TRAINING_JOB_NAME": "t",
        PATHS_ENV: json.dumps({PROCESSING_JOB_CONFIG: str(config)}),
    }
    assert run_id(JobKind.TRAINING, environ) == "20240101-000000-ab12"
    assert run_id(JobKind.PROCESSING, environ) == "20240101-000000-ab12"


def test_outside_sagemaker_an_empty_run_id_stays_empty(tmp_path: Path) -> None:
    environ = {"SKYOPS_RUN_ID": "", PATHS_ENV: json.dumps({PROCESSING_JOB_CONFIG: str(tmp_path / "absent.json")})}
    assert run_id(JobKind.PROCESSING, environ) == ""


def test_a_damaged_job_description_is_one_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "processingjobconfig.json"
    config.write_text('{"ProcessingJobName": ')
    environ = {"SKYOPS_RUN_ID": "", PATHS_ENV: json.dumps({PROCESSING_JOB_CONFIG: str(config)})}
    with pytest.raises(ContractError, match=rf"cannot read the processing job's name from {config}: ") as info:
        run_id(JobKind.PROCESSING, environ)
    assert info.value.hint == "SageMaker writes this file in every processing job; or set SKYOPS_RUN_ID"
