"""`skyops infra upload-notebooks`: notebooks/<persona>/*.ipynb under each persona's prefix, which that persona's role
may use (IAM enforced on the moto server) and the other persona's may not write; none to upload is exit 2, no request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skyops.aws.session import AwsGuard
from tests.aws.conftest import MotoServer

from .conftest import Cli

pytestmark = pytest.mark.usefixtures("project", "cfn_outputs")

NOTEBOOK = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _notebooks(root: Path, names: dict[str, list[str]]) -> Path:
    for folder, files in names.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in files:
            (root / folder / name).write_text(NOTEBOOK)
    return root


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "no notebooks to upload: {root} has no data-scientist/*.ipynb or ml-engineer/*.ipynb"),
        ({"data-scientist": ["notes.txt"]}, "no notebooks to upload: {root} has no data-scientist/*.ipynb or ml-engineer/*.ipynb"),
        ({"analyst": ["a.ipynb"]}, "1 problem in notebooks in {root}:\n  - {root}/analyst/ holds notebooks but names no persona"),
    ],
    ids=["empty", "no ipynb", "unknown persona"],
)
def test_nothing_to_upload_is_exit_2_before_any_request(
    layout: dict[str, list[str]], message: str, cli: Cli, moto: MotoServer, tmp_path: Path
) -> None:
    root = _notebooks(tmp_path / "notebooks", layout)
    root.mkdir(exist_ok=True)
    code, out, err = cli("infra", "upload-notebooks", "--source", str(root))
    assert code == 2, out + err
    assert err.startswith("error: " + message.format(root=root)), err
    assert moto.requests == []


def test_each_persona_uses_its_own_prefix_only(cli: Cli, moto: MotoServer, separated: dict[str, Any], tmp_path: Path) -> None:
    root = _notebooks(tmp_path / "notebooks", {"data-scientist": ["explore.ipynb", "train.ipynb"], "ml-engineer": ["approve.ipynb"]})
    code, out, err = cli("infra", "upload-notebooks", "--source", str(root))
    assert code == 0, err
    bucket = separated["BucketName"]
    assert [line for line in out.splitlines() if line.startswith("uploaded ")] == [
        f"uploaded {root}/data-scientist/explore.ipynb -> s3://{bucket}/notebooks/data-scientist/explore.ipynb",
        f"uploaded {root}/data-scientist/train.ipynb -> s3://{bucket}/notebooks/data-scientist/train.ipynb",
        f"uploaded {root}/ml-engineer/approve.ipynb -> s3://{bucket}/notebooks/ml-engineer/approve.ipynb",
    ]
    assert "  (no Studio domain yet: skyops infra deploy --env dev --vpc-id VPC --subnet-ids SUBNET,SUBNET)" in out.splitlines()
    assert (
        f"    2. in Studio's terminal: aws s3 sync s3://{bucket}/notebooks/data-scientist/ ~/notebooks/data-scientist/" in out.splitlines()
    )

    from botocore.exceptions import ClientError

    guard = AwsGuard()
    scientist = guard.assume_role(separated["DataScientistRoleArn"], "test").client("s3")
    engineer = guard.assume_role(separated["MLEngineerRoleArn"], "test").client("s3")
    assert scientist.get_object(Bucket=bucket, Key="notebooks/data-scientist/explore.ipynb")["Body"].read() == NOTEBOOK.encode()
    scientist.put_object(Bucket=bucket, Key="notebooks/data-scientist/explore.ipynb", Body=b"{}")  # saves its own work
    assert engineer.get_object(Bucket=bucket, Key="notebooks/data-scientist/explore.ipynb")["Body"].read() == b"{}"  # reads it
    assert engineer.get_object(Bucket=bucket, Key="notebooks/ml-engineer/approve.ipynb")["Body"].read() == NOTEBOOK.encode()
    for client, key in ((scientist, "notebooks/ml-engineer/approve.ipynb"), (engineer, "notebooks/data-scientist/explore.ipynb")):
        with pytest.raises(ClientError, match="AccessDenied"):
            client.put_object(Bucket=bucket, Key=key, Body=b"overwritten")
    with pytest.raises(ClientError, match="AccessDenied"):
        scientist.get_object(Bucket=bucket, Key="notebooks/ml-engineer/approve.ipynb")
