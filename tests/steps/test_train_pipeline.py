"""Training and evaluation through the pipeline: real Ultralytics, tiny data, the engine's checkpoints."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from skyops.pipeline.lineage import load_record
from skyops.registry.models import ModelRegistry
from skyops.training.threads import OPENMP_SPIN, OPENMP_SPIN_VARIABLE
from skyops.training.tracking import TrackingStore

ROOT = Path(__file__).resolve().parents[2]
TINY = ["-p", "images=48", "-p", "image_size=96", "-p", "batch=8", "-p", "min_map50=0"]  # a 1-3 epoch model cannot pass the real gate


def skyops_run(state: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    # As from a user's shell: without the OpenMP setting this test process got from importing skyops.training.
    env = {**{k: v for k, v in os.environ.items() if k != OPENMP_SPIN_VARIABLE}, "SKYOPS_STATE_DIR": str(state), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "skyops", "run", "drone-detection", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def model_dir(state: Path) -> Path:
    record = load_record(state / "runs", "latest")
    return Path(record.steps["train"].outputs["model"]["path"])


def test_pipeline_trains_evaluates_registers_and_summarises(tmp_path: Path) -> None:
    done = skyops_run(tmp_path, *TINY, "-p", "epochs=2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    training = json.loads((model_dir(tmp_path) / "training.json").read_text())
    assert training["epochs_completed"] == 2 and training["resumed_from_epoch"] is None
    assert "metrics    mAP50 " in done.stdout and f"MLflow     run {training['mlflow_run_id']}" in done.stdout
    # The step's process set its OpenMP wait before torch loaded, and trained channels-last (both on record).
    params = TrackingStore.local(tmp_path).client.get_run(training["mlflow_run_id"]).data.params
    assert (params["openmp_spin"], training["memory_format"]) == (OPENMP_SPIN, "channels_last")
    record = load_record(tmp_path / "runs", "latest")
    evaluation = json.loads(Path(record.steps["evaluate"].outputs["evaluation"]["path"], "evaluation.json").read_text())
    assert evaluation["dataset"]["split"] == "test" and evaluation["model"]["imgsz"] == 96
    report = Path(record.steps["evaluate"].outputs["evaluation"]["path"], "report.html")
    assert report.is_file() and f"report     {report}" in done.stdout  # the HTML evaluation report, beside evaluation.json
    # upstream artifacts stay byte-for-byte as published (Ultralytics writes labels.cache into a private view)
    splits = Path(record.steps["split"].outputs["splits"]["path"])
    assert not list(splits.rglob("*.cache"))
    registration = json.loads(Path(record.steps["register"].outputs["registration"]["path"], "registration.json").read_text())
    assert registration["version"] == 1 and registration["status"] == "PendingManualApproval" and registration["gate"]["passed"]
    assert "registered drone-detector v1: PendingManualApproval" in done.stdout
    # the export step's package is on record with the version: its backends and the sha256 of its model.tar.gz
    package = Path(record.steps["export"].outputs["package"]["path"])
    assert registration["artifacts"][0] == "onnx" and registration["artifacts"][-1] == "torch"
    assert registration["package_sha256"] == hashlib.sha256((package / "model.tar.gz").read_bytes()).hexdigest()
    listing = subprocess.run(
        [sys.executable, "-m", "skyops", "models", "list"],
        env={**os.environ, "SKYOPS_STATE_DIR": str(tmp_path), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "PendingManualApproval" in listing.stdout and "passed" in listing.stdout
    # promote v1: the next run evaluates the same test split with the champion and compares
    for command in (["approve", "1"], ["promote", "1"]):
        done = subprocess.run(
            [sys.executable, "-m", "skyops", "models", *command, "--as", "alice"],
            env={**os.environ, "SKYOPS_STATE_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
    again = skyops_run(tmp_path, *TINY, "-p", "epochs=2")
    assert again.returncode == 0 and "comparing with the champion: drone-detector v1" in again.stdout
    record = load_record(tmp_path / "runs", "latest")
    assert record.steps["train"].status == "cached" and record.steps["evaluate"].status == "done"
    assert record.steps["export"].status == "cached"  # it reads the model and the split only, not the champion comparison
    evaluation = json.loads(Path(record.steps["evaluate"].outputs["evaluation"]["path"], "evaluation.json").read_text())
    assert evaluation["comparison"]["delta"]["map50_95"] == 0.0  # the same weights on the same split
    assert evaluation["comparison"]["slices"]["worst"]["delta"] == 0.0  # ... and on every slice: the slice rule passes
    assert "champion   worst slice " in again.stdout
    # evaluate re-ran, so register missed its cache: but these weights are v1 already, and stay v1 only
    assert record.steps["register"].status == "done"
    registration = json.loads(Path(record.steps["register"].outputs["registration"]["path"], "registration.json").read_text())
    assert (registration["version"], registration["created"], registration["status"]) == (1, False, "Approved")
    assert "already registered as drone-detector v1: Approved (registration gate passed)" in again.stdout
    registry = ModelRegistry(TrackingStore.local(tmp_path), "drone-detector")
    assert [v.version for v in registry.versions()] == [1]


def test_quality_gate_stops_registration(tmp_path: Path) -> None:
    done = skyops_run(tmp_path, *TINY, "-p", "epochs=1", "-p", "min_map50=0.99")
    assert done.returncode == 1
    assert "gate quality stopped export, register: the model's test mAP50 is below min_map50" in done.stdout
    assert "stopped at gate 'quality'" in done.stderr
    record = load_record(tmp_path / "runs", "latest")
    assert record.status == "gated" and record.steps["export"].status == record.steps["register"].status == "gated"


def test_killed_training_resumes_at_the_next_epoch(tmp_path: Path) -> None:
    env = {**os.environ, "SKYOPS_STATE_DIR": str(tmp_path), "COLUMNS": "200"}
    args = [sys.executable, "-m", "skyops", "run", "drone-detection", *TINY, "-p", "epochs=3"]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoints = tmp_path / "checkpoints"  # checkpoints/<train's cache key>/, owned by that execution
    deadline = time.time() + 600
    while not any(checkpoints.glob("*/resume.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert any(checkpoints.glob("*/resume.pt")), "no checkpoint after epoch 1"
    os.killpg(proc.pid, signal.SIGKILL)  # engine, fork host and trainer: as a lost spot instance
    proc.wait(30)
    done = skyops_run(tmp_path, *TINY, "-p", "epochs=3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    training = json.loads((model_dir(tmp_path) / "training.json").read_text())
    assert training["resumed_from_epoch"] == 2 and training["epochs_completed"] == 3, done.stdout[-2000:]
    rows = (model_dir(tmp_path) / "results.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 3  # header + one row per epoch, none repeated
    # The killed attempt's MLflow run was left RUNNING; the resumed train step marked it KILLED.
    killed, finished = sorted(TrackingStore.local(tmp_path).find_runs("drone-detection"), key=lambda r: r.start_time)
    assert (killed.status, finished.status) == ("KILLED", "FINISHED")
    assert "ended without ending this run (killed or crashed)" in killed.tags["skyops.killed_reason"]
    assert f"MLflow run {killed.run_id} was left RUNNING by a process that is gone; marked KILLED" in done.stdout + step_log(
        tmp_path, "train"
    )


def test_sigterm_to_training_ends_its_mlflow_run_killed(tmp_path: Path) -> None:
    env = {**os.environ, "SKYOPS_STATE_DIR": str(tmp_path), "COLUMNS": "200"}
    args = [sys.executable, "-m", "skyops", "run", "drone-detection", *TINY, "-p", "epochs=3"]
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoints = tmp_path / "checkpoints"  # checkpoints/<train's cache key>/
    deadline = time.time() + 600
    while not any(checkpoints.glob("*/resume.pt")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert any(checkpoints.glob("*/resume.pt")), "no checkpoint after epoch 1"
    (running,) = TrackingStore.local(tmp_path).find_runs("drone-detection")
    os.kill(int(running.tags["skyops.pid"]), signal.SIGTERM)  # the train step itself, mid-training
    assert proc.wait(300) == 1  # the step failed: the run stops there, resumable
    (run,) = TrackingStore.local(tmp_path).find_runs("drone-detection")
    assert (run.run_id, run.status, run.tags["skyops.killed_reason"]) == (running.run_id, "KILLED", "stopped by SIGTERM")
    assert "train: stopped by SIGTERM; the MLflow run ended KILLED" in step_log(tmp_path, "train")
    assert load_record(tmp_path / "runs", "latest").steps["train"].exit_code == -signal.SIGTERM


def step_log(state: Path, step: str) -> str:
    return Path(load_record(state / "runs", "latest").steps[step].log).read_text()


def test_two_epochs_on_real_drone_data(tmp_path: Path, shared_datasets: Path) -> None:
    real = [
        "-p",
        f"dataset={shared_datasets / 'aerial-cars'}",
        "-p",
        "format=yolo",
        "-p",
        "epochs=2",
        "-p",
        "image_size=96",
        "-p",
        "batch=16",
        "-p",
        "min_map50=0",
    ]
    done = skyops_run(tmp_path, *real)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    training = json.loads((model_dir(tmp_path) / "training.json").read_text())
    assert training["epochs_completed"] == 2 and training["names"] == ["0", "1", "2", "3"]
