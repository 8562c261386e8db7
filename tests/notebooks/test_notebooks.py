"""The persona notebooks: committed without outputs, parameterised by their first cell, executed headless with
nbclient in a fresh temporary project, and found by `skyops infra upload-notebooks` under their persona's prefix."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ALL, DATA_SCIENTIST, END_TO_END, ML_ENGINEER, NOTEBOOKS, ROOT, execute, free_port, outputs, parameters, streams

SMALL = {"images": 16, "image_size": 64, "epochs": 1, "batch": 8, "template": str(ROOT)}


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_committed_notebooks_carry_no_outputs_and_open_with_a_parameters_cell(path: Path) -> None:
    book = json.loads(path.read_text())
    code = [c for c in book["cells"] if c["cell_type"] == "code"]
    assert [c for c in code if c["outputs"] or c["execution_count"] is not None] == []
    assert "parameters" in book["cells"][0]["metadata"].get("tags", []), "the first cell holds the parameters"
    assert book["metadata"]["kernelspec"]["name"] == "python3"
    source = "".join("".join(c["source"]) for c in code)
    assert "subprocess" not in source and "!skyops" not in source, "notebooks use the Python API, never the CLI"


def test_parameters_cell_is_plain_assignments_the_tests_can_replace() -> None:
    import ast

    for path in ALL:
        first = "".join(json.loads(path.read_text())["cells"][0]["source"])
        names = {t.id for node in ast.parse(first).body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
        assert {"images", "image_size", "epochs", "template"} <= names, path


def test_data_scientist_notebook_explores_profiles_validates_and_splits(clean_environment: Path) -> None:
    """The default suite's smoke test: the Data Scientist notebook up to its training section (data only)."""
    book = execute(DATA_SCIENTIST, {**SMALL, "shared_datasets": str(ROOT.parent / "shared" / "datasets")}, stop_before="## 5.")
    assert outputs(book, "error") == []
    assert len(outputs(book, "image/png")) >= 2  # the scenes' preview and the class/size plot
    assert len(outputs(book, "text/html")) >= 2  # the class table and the split table
    assert not (ROOT / "notebooks" / "data-scientist" / "work").exists()  # the project is a temporary folder
    assert list(clean_environment.glob("skyops-ds-*/project/work/split")), "the notebook wrote into its own project"


@pytest.mark.slow
def test_data_scientist_notebook_trains_and_compares_two_runs(clean_environment: Path) -> None:
    book = execute(DATA_SCIENTIST, {**SMALL, "shared_datasets": str(ROOT.parent / "shared" / "datasets")})
    assert outputs(book, "error") == []
    assert len(outputs(book, "image/png")) >= 3  # preview, classes, validation curves
    comparison = [o for o in outputs(book, "text/html") if "map50_95" in o["data"]["text/html"]]
    assert comparison, "the runs' comparison table"


@pytest.mark.slow
def test_end_to_end_notebook_runs_registers_promotes_and_reproduces(clean_environment: Path) -> None:
    book = execute(END_TO_END, SMALL)
    assert outputs(book, "error") == []
    assert outputs(book, "image/png") and outputs(book, "text/html")
    text = streams(book)
    assert "approve" in text and "promote" in text  # the audit tail
    assert "reproduced {'reproduced': True" in text  # the verdict line, not "NOT reproduced {..."


@pytest.mark.slow
def test_ml_engineer_notebook_deploys_monitors_rolls_back_and_stops_what_it_started(clean_environment: Path) -> None:
    from skyops.deploy_local import procs

    defaults = parameters(ML_ENGINEER)  # the notebook's own training defaults: the smallest that pass the canary check
    values = {**defaults, "template": str(ROOT), "port": free_port()}  # never a developer's staging server on 8081
    book = execute(ML_ENGINEER, values)
    assert outputs(book, "error") == []
    assert len(outputs(book, "image/png")) >= 1  # the SageMaker step graph
    text = streams(book)
    assert f"applied: staging: start drone-detector v2 on http://127.0.0.1:{values['port']} (after its canary)" in text
    assert "drifted - report:" in text  # the dusk half of the traffic drifts
    assert "refused: " in text and "@champion -> v1" in text
    [state] = list(clean_environment.glob("skyops-mle-*/project/.skyops"))
    assert procs.marked(state, "staging") == []  # the notebook stopped the router and server it started


def test_upload_notebooks_puts_each_under_its_persona_prefix() -> None:
    """The committed notebooks, as `skyops infra upload-notebooks` finds and uploads them (moto, in process)."""
    import boto3
    from moto import mock_aws

    from skyops.aws.infra_notebooks import find_notebooks, upload_notebooks

    found = find_notebooks(NOTEBOOKS)
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="artifacts", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        upload_notebooks(s3, "artifacts", found)
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="artifacts")["Contents"])
        body = s3.get_object(Bucket="artifacts", Key=keys[0])["Body"].read()
    assert keys == [
        "notebooks/data-scientist/explore-train-compare.ipynb",
        "notebooks/ml-engineer/end-to-end-demo.ipynb",
        "notebooks/ml-engineer/pipeline-deploy-monitor.ipynb",
    ]
    assert body == (NOTEBOOKS / "data-scientist" / "explore-train-compare.ipynb").read_bytes()


def test_importing_the_api_loads_no_heavy_library() -> None:
    code = (
        "import sys, skyops.api; print(sorted(m for m in ('torch', 'ultralytics', 'mlflow', 'boto3', 'cv2', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
