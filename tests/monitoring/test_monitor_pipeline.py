"""The monitor pipeline like any other: run on the local engine by `skyops monitor run`, compiled for SageMaker.

The local run is real end to end: a split of synthetic scenes and its profile, a seeded YOLO11n as the
served model (detector_model.py), 40 requests captured in SageMaker's format; `skyops monitor run` in a
subprocess builds the baseline, measures the window and writes drift.json and report.html. A second
check with another alpha reuses the cached baseline and window. The compiled definition is checked
against the shared corrected schema and botocore's CreateProcessingJob shape, as the default pipeline's is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from skyops.data.profile import profile_dataset
from skyops.data.split import split_dataset
from skyops.data.synth import generate_scenes
from skyops.monitoring.drift import DriftResult
from skyops.pipeline.definition import load_pipeline
from skyops.pipeline.sagemaker import compile_pipeline
from tests.sagemaker.checks import all_steps, corrected_schema, parameter_defaults, request_errors, schema_errors
from tests.sagemaker.conftest import SAGEMAKER_ENV, SETTINGS

from .scenes import shots, write_captures

ROOT = Path(__file__).resolve().parents[2]
S3 = {"captures": "s3://skyops-data/capture/drone-detector/", "splits": "s3://skyops-data/splits/", "model": "s3://skyops-data/model/"}


def skyops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "YOLO_", "SKYOPS_"))}
    env |= {"SKYOPS_STATE_DIR": str(cwd / "state"), "SKYOPS_PROJECT_DIR": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "skyops", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, weights: Path) -> dict[str, Path]:
    """A split of 40 synthetic scenes, its profile, the served model and 40 captured requests."""
    root = tmp_path_factory.mktemp("served")
    generate_scenes(root / "data", count=40, size=128, seed=3, workers=1)
    split_dataset(root / "data", root / "splits", ratios=(0.8, 0.1, 0.1), seed=0)
    profile_dataset(root / "data", root / "profile", workers=1)
    write_captures(root / "captures", list(shots(5, 40)))
    return {"splits": root / "splits", "profile": root / "profile", "model": weights, "captures": root / "captures"}


def test_monitor_run_checks_a_window_and_reuses_the_baseline(served: dict[str, Path], tmp_path: Path) -> None:
    paths = [f"--{name}={path}" for name, path in served.items()]
    first = skyops("monitor", "run", *paths, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    result_line = next(line for line in first.stdout.splitlines() if line.startswith("result "))
    drift_json = Path(result_line.split()[1])
    result = DriftResult.from_json(drift_json)
    assert result.window["requests"] == 40 and result.window["source"] == str(served["captures"])
    assert result.baseline["images"] == 32  # the training split: 80% of 40
    assert (drift_json.parent / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert ("DRIFTED over 40 requests" if result.drifted else "no drift over 40 requests") in first.stdout
    baseline = json.loads(next(drift_json.parents[3].glob("*/outputs/baseline/baseline.json")).read_text())
    assert baseline["profile"] is True and baseline["dataset"]["split"] == "train"

    second = skyops("monitor", "run", *paths, "--alpha", "0.05", cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    statuses = {
        line.split()[0]: line.split()[1] for line in second.stdout.splitlines() if line.split()[:1] in (["baseline"], ["window"], ["drift"])
    }
    assert statuses == {"baseline": "cached", "window": "cached", "drift": "done"}


def test_monitor_run_refuses_missing_inputs_in_one_line(served: dict[str, Path], tmp_path: Path) -> None:
    done = skyops("monitor", "run", "--captures", str(served["captures"]), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: monitor run needs --splits and --model",
        "hint: give them, or --from-run latest to take them from the last skyops run",
    ]
    done = skyops("monitor", "run", "--captures", str(served["captures"]), "--from-run", "latest", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: no run 'latest' in "), done.stderr
    done = skyops(
        "monitor",
        "run",
        "--captures",
        str(served["captures"]),
        "--splits",
        str(served["splits"]),
        "--model",
        str(served["model"]),
        "--start",
        "yesterday",
        cwd=tmp_path,
    )
    assert done.returncode == 2 and done.stderr.splitlines()[0] == "error: --start 'yesterday' is not an ISO 8601 time", done.stderr


def test_the_monitor_pipeline_compiles_to_a_valid_sagemaker_definition() -> None:
    definition = compile_pipeline(load_pipeline("monitor", search=[ROOT / "pipelines"]), SETTINGS, S3)
    assert [s["Name"] for s in definition["Steps"]] == ["baseline", "window", "drift"]
    assert schema_errors(definition, corrected_schema()) == []  # processing jobs only: no training extension needed
    defaults = parameter_defaults(definition)
    assert {s["Name"]: request_errors(s, defaults) for s in all_steps(definition["Steps"])} == {"baseline": "", "window": "", "drift": ""}
    window = next(s for s in definition["Steps"] if s["Name"] == "window")
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in window["Arguments"]["ProcessingInputs"]}
    assert inputs["captures"] == {"Get": "Parameters.captures"}
    assert inputs["baseline"] == {"Get": "Steps.baseline.ProcessingOutputConfig.Outputs['baseline'].S3Output.S3Uri"}


def test_skyops_sagemaker_compile_monitor(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SKYOPS_")},
        **SAGEMAKER_ENV,
        "SKYOPS_STATE_DIR": str(tmp_path / "state"),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "skyops", "sagemaker", "compile", "monitor", *args]
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)

    unbound = run()
    assert unbound.returncode == 2
    assert "input 'captures' (${captures}) is ''; a SageMaker job reads its inputs from S3" in unbound.stderr
    out = tmp_path / "monitor.json"
    done = run(*(f"-p{k}={v}" for k, v in S3.items()), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert [s["Name"] for s in json.loads(out.read_text())["Steps"]] == ["baseline", "window", "drift"]


def test_from_run_takes_the_split_profile_and_model_of_a_runs_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from skyops.cli.monitor_cmd import _from_run
    from skyops.errors import ConfigError
    from skyops.pipeline.lineage import RunStatus, new_record, save_record

    monkeypatch.setenv("SKYOPS_STATE_DIR", str(tmp_path))
    steps = {"ingest": "ingest", "profile": "profile", "split": "split", "train": "train"}
    record = new_record("20260131-130000-aaaa", "drone-detection", {}, steps, "pipelines/drone-detection.yaml")
    for name, port in (("profile", "profile"), ("split", "splits"), ("train", "model")):
        record.steps[name].outputs[port] = {"path": f"/cache/{name}/outputs/{port}", "digest": "0" * 64}
    record.status = RunStatus.SUCCEEDED
    record.ended = record.started + 1
    save_record(tmp_path / "runs", record)
    assert _from_run("latest") == {
        "profile": "/cache/profile/outputs/profile",
        "splits": "/cache/split/outputs/splits",
        "model": "/cache/train/outputs/model",
    }
    del record.steps["train"].outputs["model"]
    save_record(tmp_path / "runs", record)
    with pytest.raises(ConfigError, match=r"run 20260131-130000-aaaa of 'drone-detection' has no finished model output"):
        _from_run("20260131")


def test_the_baseline_refuses_a_profile_of_other_data_and_too_small_a_split(served: dict[str, Path], detector, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from skyops.errors import DataValidationError
    from skyops.monitoring.baseline import build_baseline
    from skyops.monitoring.embedding import Thresholds

    generate_scenes(tmp_path / "other", count=4, size=128, seed=11, workers=1)
    profile_dataset(tmp_path / "other", tmp_path / "other-profile", workers=1)
    with pytest.raises(
        DataValidationError, match=r"profile .*profile.json is of dataset [0-9a-f]{12}\.\.\., the split of [0-9a-f]{12}\.\.\."
    ):
        build_baseline(served["splits"], detector, Thresholds(), tmp_path / "out", profile=tmp_path / "other-profile")
    with pytest.raises(DataValidationError, match=r"the baseline has 4 images with pixels, fewer than 20"):
        build_baseline(served["splits"], detector, Thresholds(), tmp_path / "out", split="test")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_window_and_drift_refuse_another_model_than_the_baselines(
    served: dict[str, Path], detector, monitoring_state: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from skyops.errors import DataValidationError
    from skyops.monitoring.baseline import build_baseline
    from skyops.monitoring.embedding import Thresholds
    from skyops.steps.drift.script import DriftConfig
    from skyops.steps.drift.script import main as drift_main
    from skyops.steps.window.script import WindowConfig
    from skyops.steps.window.script import main as window_main

    from .detector_model import build

    build_baseline(served["splits"], detector, Thresholds(), tmp_path / "baseline")
    other = tmp_path / "other-model"
    build(other, imgsz=128, seed=1, state_dir=monitoring_state)
    inputs = {"captures": served["captures"], "model": other, "baseline": tmp_path / "baseline"}
    with pytest.raises(
        DataValidationError, match=r"the model bound to window \([0-9a-f]{12}\.\.\.\) is not the baseline's \([0-9a-f]{12}\.\.\.\)"
    ):
        window_main(inputs, {"window": tmp_path / "window"}, {}, WindowConfig())
    assert not (tmp_path / "window").exists()

    window_main({**inputs, "model": served["model"]}, {"window": tmp_path / "window"}, {}, WindowConfig(last=35))
    assert json.loads((tmp_path / "window" / "window.json").read_text())["window"]["requests"] == 35
    shutil.copytree(tmp_path / "window", tmp_path / "window-other")
    doc = json.loads((tmp_path / "window-other" / "window.json").read_text())
    doc["model"]["weights_sha256"] = "0" * 64
    (tmp_path / "window-other" / "window.json").write_text(json.dumps(doc))
    with pytest.raises(DataValidationError, match=r"^the window was measured with another model than the baseline$"):
        drift_main(
            {"baseline": tmp_path / "baseline", "window": tmp_path / "window-other"}, {"drift": tmp_path / "drift"}, {}, DriftConfig()
        )
    drift_main({"baseline": tmp_path / "baseline", "window": tmp_path / "window"}, {"drift": tmp_path / "drift"}, {}, DriftConfig())
    assert sorted(p.name for p in (tmp_path / "drift").iterdir()) == ["drift.json", "report.html"]
