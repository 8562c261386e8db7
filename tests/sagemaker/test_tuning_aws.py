"""The tuned definition against a real moto server, and `skyops sagemaker compile --tune` from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skyops.aws.pipelines import SageMakerPipelines
from skyops.aws.session import AwsGuard
from skyops.pipeline.definition import Pipeline
from skyops.pipeline.sagemaker import compile_pipeline
from skyops.pipeline.search import load_search_space

from .conftest import BUCKET, ROLE, SETTINGS, MotoServer
from .test_aws import cli
from .test_tuning import SPACE, TUNED_SETTINGS, tunable, tuning_of  # noqa: F401  (tunable is a fixture)

pytestmark = pytest.mark.usefixtures("sagemaker_env")
# The drone pipeline as shipped: epochs and batch set the train step alone, so they can be tuned.
DRONE_SPACE = SPACE.replace("  lr0: {type: float, low: 0.001, high: 0.05, log: true}\n", "")


def test_the_tuned_definition_upserts_and_is_stored_as_sent(moto: MotoServer, tmp_path: Path, tunable: Pipeline) -> None:  # noqa: F811
    AwsGuard().client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": SETTINGS.region})
    space_file = tmp_path / "drone-detection.tune.yaml"
    space_file.write_text(SPACE)
    definition = compile_pipeline(tunable, TUNED_SETTINGS, tune=load_search_space(space_file, tunable))
    pipelines = SageMakerPipelines(AwsGuard())
    result = pipelines.upsert(tunable.name, definition, ROLE, tunable.description)
    assert result.created and pipelines.stored_definition(tunable.name) == definition
    assert tuning_of(pipelines.stored_definition(tunable.name))["Arguments"]["HyperParameterTuningJobConfig"]["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": 12,
        "MaxParallelTrainingJobs": 3,
    }


def test_cli_compile_tune_reads_the_space_file_given(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    space_file = tmp_path / "space.yaml"
    space_file.write_text(DRONE_SPACE)
    out_file = tmp_path / "definition.json"
    code, _, err = cli(capsys, "sagemaker", "compile", "drone-detection", "--tune", str(space_file), "--out", str(out_file))
    assert code == 0, err
    config = tuning_of(json.loads(out_file.read_text()))["Arguments"]["HyperParameterTuningJobConfig"]
    assert sorted(r["Name"] for kind in config["ParameterRanges"].values() for r in kind) == ["batch", "epochs"]
    assert moto.requests == []


def test_cli_compile_tune_without_a_space_file_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = tmp_path / "pipelines" / "drone-detection.yaml"
    pipeline.parent.mkdir()
    pipeline.write_text((Path(__file__).resolve().parents[2] / "pipelines" / "drone-detection.yaml").read_text())
    code, out, err = cli(capsys, "sagemaker", "compile", str(pipeline), "--tune")
    assert code == 2 and out == ""
    assert err.splitlines()[0] == f"error: no search space file {tmp_path / 'pipelines' / 'drone-detection.tune.yaml'}"
