"""End to end on the moto server: `skyops infra deploy` -> `outputs` -> `skyops sagemaker compile|upsert|start` with no
bucket, role, region or image given: the stack's outputs are the SageMaker settings; an explicit setting still wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import skyops
from tests.aws.conftest import MotoServer

from .conftest import DEPLOY, Cli, admin
from .template import ACCOUNT, REGION

pytestmark = pytest.mark.usefixtures("cfn_outputs")

BUCKET = f"skyops-dev-{ACCOUNT}-{REGION}"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/skyops-dev-pipeline"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/skyops-dev:{skyops.__version__}"


def _images(definition: dict) -> set[str]:
    found = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            found.update(v for k, v in node.items() if k in ("ImageUri", "TrainingImage") and isinstance(v, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(definition)
    return found


def test_deploy_outputs_upsert_start_with_no_settings_given(cli: Cli, moto: MotoServer, project: Path, tmp_path: Path) -> None:
    assert cli(*DEPLOY)[0] == 0
    code, out, err = cli("infra", "outputs")
    assert code == 0 and f"  SKYOPS_SAGEMAKER_IMAGE_URIS={json.dumps({REGION: IMAGE})}" in out.splitlines(), err

    before = len(moto.requests)
    code, _, err = cli("sagemaker", "compile", "--out", str(tmp_path / "definition.json"))  # offline: the kept outputs
    assert code == 0, err
    assert len(moto.requests) == before
    compiled = json.loads((tmp_path / "definition.json").read_text())
    assert _images(compiled) == {IMAGE}

    code, out, err = cli("sagemaker", "upsert")
    assert code == 0, err
    assert out.splitlines()[0] == f"created arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/drone-detection"
    assert out.splitlines()[1].startswith(f"code     s3://{BUCKET}/skyops/code/")
    sagemaker = admin(moto, "sagemaker")
    stored = sagemaker.describe_pipeline(PipelineName="drone-detection")
    assert stored["RoleArn"] == ROLE and _images(json.loads(stored["PipelineDefinition"])) == {IMAGE}
    code_key = out.splitlines()[1].removeprefix(f"code     s3://{BUCKET}/")
    assert admin(moto, "s3").head_object(Bucket=BUCKET, Key=code_key)["ContentLength"] > 0

    code, out, err = cli("sagemaker", "start")
    assert code == 0, err
    assert out.splitlines()[-2].startswith(f"started arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/drone-detection/execution/")
    assert len(sagemaker.list_pipeline_executions(PipelineName="drone-detection")["PipelineExecutionSummaries"]) == 1


def test_upsert_looks_the_stack_up_when_nothing_is_kept_and_explicit_settings_win(
    cli: Cli, moto: MotoServer, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli(*DEPLOY)[0] == 0
    (project / "infra" / "dev.json").unlink()
    other = f"arn:aws:iam::{ACCOUNT}:role/hand-made"
    monkeypatch.setenv("SKYOPS_SAGEMAKER_ROLE_ARN", other)
    moto.counter.operations.clear()
    code, _out, err = cli("sagemaker", "upsert")
    assert code == 0, err
    assert moto.operations[0] == "DescribeStacks"
    assert admin(moto, "sagemaker").describe_pipeline(PipelineName="drone-detection")["RoleArn"] == other
    assert json.loads((project / "infra" / "dev.json").read_text())["core"]["BucketName"] == BUCKET


def test_without_a_stack_or_settings_upsert_says_both_ways(cli: Cli, moto: MotoServer, project: Path) -> None:
    code, _, err = cli("sagemaker", "upsert")
    assert code == 2
    assert "bucket is not set: use --bucket or SKYOPS_SAGEMAKER_BUCKET" in err
    assert err.splitlines()[-1].endswith(
        "or deploy the environment's stacks once (skyops infra deploy): their outputs become these settings"
    )
