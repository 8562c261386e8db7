"""Upsert, start, status and executions against a real moto server, through the profile guard, from the API and the CLI.

moto 5.2.5 stores pipelines without running them (every execution is 'Succeeded' at once) and does not
implement ListPipelineExecutionSteps or UpdateEndpoint; the tests say where that limits them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from skyops.aws.model_packages import ApprovalStatus, ModelPackages
from skyops.aws.pipelines import SageMakerPipelines
from skyops.aws.session import AwsGuard
from skyops.cli import main as skyops_main
from skyops.errors import ConfigError
from skyops.pipeline.definition import Pipeline
from skyops.pipeline.sagemaker import build_code_archive, compile_pipeline, with_code
from skyops.pipeline.sagemaker.parameters import check_start_parameters

from .conftest import BUCKET, REGION, ROLE, ROOT, SETTINGS, AwsFiles, MotoServer

pytestmark = pytest.mark.usefixtures("sagemaker_env")


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    """The artifacts bucket in moto; the request counter starts empty after it."""
    AwsGuard().client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    moto.counter.requests.clear()
    return BUCKET


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI finds pipelines/ of this repository."""
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(ROOT))


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `skyops ARGS` in this process: (exit code, stdout, stderr)."""
    code = 0
    try:
        skyops_main(list(args))
    except SystemExit as e:
        code = int(e.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def started(out: str) -> str:
    """The execution ARN `skyops sagemaker start` printed."""
    (line,) = [line for line in out.splitlines() if line.startswith("started ")]
    return line.split()[1]


def test_upsert_creates_then_updates_after_uploading_the_code(bucket: str, moto: MotoServer, drone: Pipeline) -> None:
    archive = build_code_archive({"skyops": ROOT / "src" / "skyops"})
    settings = with_code(SETTINGS, archive)
    pipelines = SageMakerPipelines(AwsGuard())
    assert pipelines.upload_code(bucket, settings.code_key, archive.data) == settings.code_uri
    first = pipelines.upsert(drone.name, compile_pipeline(drone, settings), ROLE, drone.description)
    changed = compile_pipeline(drone, settings, {"epochs": "30"})
    second = pipelines.upsert(drone.name, changed, ROLE)
    assert (first.created, second.created) == (
        True,
        False,
    ) and first.arn == second.arn == f"arn:aws:sagemaker:{REGION}:123456789012:pipeline/drone-detection"
    assert pipelines.stored_definition(drone.name) == changed
    assert pipelines.client("s3").get_object(Bucket=bucket, Key=settings.code_key)["Body"].read() == archive.data
    # PutObject; CreatePipeline; CreatePipeline (exists), UpdatePipeline; DescribePipeline; GetObject
    assert [r.split(" ")[0] for r in moto.requests] == ["PUT", "POST", "POST", "POST", "POST", "GET"]


def test_the_unbound_marker_is_the_only_object_under_its_prefix(bucket: str) -> None:
    pipelines = SageMakerPipelines(AwsGuard())
    assert pipelines.upload_unbound_marker(bucket, SETTINGS.unbound_key) == f"s3://{bucket}/skyops/unbound/.skyops-unbound"
    listed = pipelines.client("s3").list_objects_v2(Bucket=bucket, Prefix=SETTINGS.unbound_uri.removeprefix(f"s3://{bucket}/"))
    assert [o["Key"] for o in listed["Contents"]] == ["skyops/unbound/.skyops-unbound"]  # what a job downloads from the prefix


def test_start_status_and_executions(bucket: str, drone: Pipeline) -> None:
    pipelines = SageMakerPipelines(AwsGuard())
    pipelines.upsert(drone.name, compile_pipeline(drone, SETTINGS), ROLE)
    arn = pipelines.start(drone.name, {"epochs": "3"}, display_name="smoke")
    assert pipelines.latest(drone.name) == arn and [e.display_name for e in pipelines.executions(drone.name)] == ["smoke"]
    listed = pipelines.client("sagemaker").list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert listed == [{"Name": "epochs", "Value": "3"}]
    status = pipelines.status(arn)
    assert (status.arn, status.status) == (arn, "Succeeded")  # moto does not run pipelines
    assert status.steps is None and status.steps_unavailable == "ListPipelineExecutionSteps is not implemented by this endpoint (500)"


def test_latest_of_a_pipeline_without_executions(bucket: str, drone: Pipeline) -> None:
    pipelines = SageMakerPipelines(AwsGuard())
    pipelines.upsert(drone.name, compile_pipeline(drone, SETTINGS), ROLE)
    with pytest.raises(ConfigError, match="pipeline 'drone-detection' has no executions yet"):
        pipelines.latest(drone.name)


def test_start_parameters_are_checked_against_the_stored_definition(definition: dict[str, Any]) -> None:
    assert check_start_parameters("p", definition, {"epochs": "30", "min_map50": "0.6"}) == {"epochs": "30", "min_map50": "0.6"}
    with pytest.raises(ConfigError) as info:
        check_start_parameters("p", definition, {"epoch": "3", "batch": "many", "dataset": "s3://data/visdrone/"})
    assert [p.split(":")[0] for p in info.value.problems] == ["batch", "dataset", "epoch"]
    assert (
        "no step of the stored definition uses it" in info.value.problems[1]
        and "upsert again with --param dataset=s3://data/visdrone/" in info.value.problems[1]
    )


def test_cli_upsert_start_status_executions(bucket: str, project: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "sagemaker", "upsert", "drone-detection")
    assert code == 0, err
    assert out.startswith(
        "created arn:aws:sagemaker:eu-west-1:123456789012:pipeline/drone-detection\ncode     s3://skyops-artifacts/skyops/code/"
    )
    assert cli(capsys, "sagemaker", "upsert", "drone-detection", "-p", "epochs=5")[1].startswith("updated ")
    code, out, err = cli(capsys, "sagemaker", "start", "drone-detection", "-p", "epochs=3", "--display-name", "cli")
    assert code == 0, err
    source, cost, prices, _ = out.splitlines()[:4]
    assert source == "source  EvaluateChampion: registry:drone-detector@champion names nothing; the input stays unbound"
    # the estimate before the start (tests/aws/test_estimate.py checks its sums; here: that start prints it)
    assert re.fullmatch(
        r"cost    at most \$[0-9,]+\.[0-9]{2} for one execution of drone-detection in eu-west-1; "
        r"closer: skyops cost estimate drone-detection --hours STEP=H",
        cost,
    ), cost
    assert prices.startswith("        prices: ")
    assert out.splitlines()[3].startswith("started arn:aws:sagemaker:eu-west-1:")
    arn = started(out)
    code, out, _ = cli(capsys, "sagemaker", "status", "latest")
    assert code == 0 and out.splitlines()[:2] == [f"execution {arn}", "status    Succeeded"]
    assert "steps     not available: ListPipelineExecutionSteps is not implemented by this endpoint" in out
    code, out, _ = cli(capsys, "sagemaker", "executions", "drone-detection")
    assert code == 0 and f"Succeeded   {arn}  cli" in out


def test_cli_start_compares_with_the_newest_approved_version(bucket: str, project: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "sagemaker", "upsert", "drone-detection")[0] == 0
    marker = AwsGuard().client("s3").get_object(Bucket=bucket, Key=SETTINGS.unbound_key)["Body"].read()
    assert marker.startswith(b"skyops: an input bound to this folder is unbound")  # uploaded by upsert: the source's default
    packages = ModelPackages(AwsGuard())
    packages.ensure_group("drone-detector")
    # The raw store, as the pipeline's RegisterModel step and an approval in SageMaker Studio would leave it.
    approved = packages._register("drone-detector", "s3://models/run7/model.tar.gz", "image")
    packages._set_status(approved, ApprovalStatus.APPROVED, "reviewed")
    code, out, err = cli(capsys, "sagemaker", "start", "drone-detection")
    assert code == 0, err
    assert out.splitlines()[0] == "source  EvaluateChampion: registry:drone-detector@champion is s3://models/run7/model.tar.gz"
    arn = started(out)
    listed = AwsGuard().client("sagemaker").list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)["PipelineParameters"]
    assert {"Name": "EvaluateChampion", "Value": "s3://models/run7/model.tar.gz"} in listed


def test_cli_start_refuses_a_parameter_no_step_uses(
    bucket: str, project: None, moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "sagemaker", "upsert", "drone-detection")[0] == 0
    before = len(moto.requests)
    code, _, err = cli(capsys, "sagemaker", "start", "drone-detection", "-p", "dataset=s3://data/visdrone/")
    assert code == 2 and "dataset: no step of the stored definition uses it" in err
    assert [r.split(" ")[0] for r in moto.requests[before:]] == ["POST"]  # DescribePipeline only, nothing started


@pytest.mark.parametrize("profile_problem", ["another profile", "no profile"])
@pytest.mark.parametrize("command", [["upsert"], ["start"], ["status", "latest"], ["executions"]])
def test_every_aws_command_refuses_before_any_request(
    command: list[str],
    profile_problem: str,
    moto: MotoServer,
    aws_files: AwsFiles,
    project: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if profile_problem == "another profile":
        monkeypatch.setenv("AWS_PROFILE", "other")
    else:
        aws_files.config.write_text("")
        aws_files.credentials.write_text("")
    code, out, err = cli(capsys, "sagemaker", *command)
    assert code == 2 and "refused before any request" in err and out == ""
    assert moto.requests == []


def test_compile_needs_no_aws(moto: MotoServer, project: None, capsys: pytest.CaptureFixture[str], tmp_path: Any, drone: Pipeline) -> None:
    out_file = tmp_path / "definition.json"
    code, out, err = cli(capsys, "sagemaker", "compile", "drone-detection", "--out", str(out_file), "--spot")
    assert code == 0, err
    archive = build_code_archive({"skyops": ROOT / "src" / "skyops"})
    from skyops.cli.sagemaker_cmd import TRAIN_METRICS
    from skyops.pipeline.sagemaker import settings_from_env

    expected = compile_pipeline(
        drone, with_code(settings_from_env(os.environ, {"spot": True, "metric_definitions": TRAIN_METRICS}), archive)
    )
    assert json.loads(out_file.read_text()) == expected and out == ""
    assert f"code archive s3://{BUCKET}/skyops/code/{archive.sha256}/sourcedir.tar.gz" in err
    assert moto.requests == []


def test_compile_without_settings_names_each_missing_one(
    project: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("SKYOPS_SAGEMAKER_BUCKET", "SKYOPS_SAGEMAKER_ROLE_ARN", "SKYOPS_SAGEMAKER_IMAGE_URI"):
        monkeypatch.delenv(name)
    code, _, err = cli(capsys, "sagemaker", "compile")
    assert code == 2
    assert err.splitlines()[:4] == [
        "error: 3 problems in SageMaker settings:",
        "  - bucket is not set: use --bucket or SKYOPS_SAGEMAKER_BUCKET",
        "  - image_uris is not set: use --image-uri, SKYOPS_SAGEMAKER_IMAGE_URI (this region) or SKYOPS_SAGEMAKER_IMAGE_URIS (JSON: region -> URI)",
        "  - role_arn is not set: use --role-arn or SKYOPS_SAGEMAKER_ROLE_ARN",
    ]


def test_the_installed_command_upserts(bucket: str) -> None:
    env = {**os.environ, "SKYOPS_PROJECT_DIR": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "skyops", "sagemaker", "upsert"], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created arn:aws:sagemaker:eu-west-1:123456789012:pipeline/drone-detection")
