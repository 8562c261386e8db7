"""Two `skyops run` at once on one state folder: real Ultralytics on tiny data, one registry.

Each registered version must be made of its own run's training (weights, card, results.csv), and a
run that needs the very step another run is executing waits and reuses it instead of training too.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from skyops.pipeline.lineage import RunRecord, list_records
from skyops.registry.models import ModelRegistry
from skyops.training.tracking import TrackingStore

ROOT = Path(__file__).resolve().parents[2]
TINY = ["-p", "images=48", "-p", "image_size=96", "-p", "batch=8", "-p", "min_map50=0"]


def start(state: Path, *params: str) -> subprocess.Popen[str]:
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state), "COLUMNS": "200"}
    args = [sys.executable, "-m", "skyops", "run", "drone-detection", *TINY, *params]
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(*procs: subprocess.Popen[str]) -> None:
    for proc in procs:
        out, _ = proc.communicate(timeout=1500)
        assert proc.returncode == 0, out[-3000:]


def output(record: RunRecord, step: str, port: str) -> Path:
    return Path(record.steps[step].outputs[port]["path"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def epochs_in(results_csv: Path) -> list[int]:
    rows = results_csv.read_text().strip().splitlines()[1:]
    return [int(float(row.split(",")[0])) for row in rows]


def test_runs_with_different_settings_each_register_their_own_training(tmp_path: Path) -> None:
    two, three = start(tmp_path, "-p", "epochs=2"), start(tmp_path, "-p", "epochs=3")
    finish(two, three)
    records = {r.parameters["epochs"]: r for r in list_records(tmp_path / "runs")}
    assert sorted(records) == [2, 3] and all(r.status == "succeeded" for r in records.values())
    registry = ModelRegistry(TrackingStore.local(tmp_path), "drone-detector")
    assert len(registry.versions()) == 2
    artifacts = tmp_path / "mlartifacts"
    for epochs, record in records.items():
        model = output(record, "train", "model")
        training = json.loads((model / "training.json").read_text())
        registration = json.loads((output(record, "register", "registration") / "registration.json").read_text())
        assert epochs_in(model / "results.csv") == list(range(1, epochs + 1))  # no row of the other run's training
        assert training["epochs_completed"] == epochs
        version = registry.get(registration["version"])
        # the version is this run's: its MLflow run, its pipeline run, its weights byte for byte
        assert version.run_id == training["mlflow_run_id"] == registration["mlflow_run_id"]
        assert version.card["pipeline_run"] == record.run_id
        assert version.weights_sha256 == sha256(model / "best.pt") == registration["weights_sha256"]
        (logged,) = artifacts.rglob(f"{training['mlflow_run_id']}/artifacts/weights/best.pt")
        assert sha256(logged) == sha256(model / "best.pt")
    # different settings never shared a checkpoint folder, and both were cleaned up once published
    assert not list((tmp_path / "checkpoints").glob("*/*"))


def test_runs_with_the_same_settings_train_once_and_register_once(tmp_path: Path) -> None:
    first, second = start(tmp_path, "-p", "epochs=2"), start(tmp_path, "-p", "epochs=2")
    finish(first, second)
    records = list_records(tmp_path / "runs")
    assert len(records) == 2 and all(r.status == "succeeded" for r in records)
    assert sorted(str(r.steps["train"].status) for r in records) == ["cached", "done"]
    waited = next(r for r in records if r.steps["train"].status == "cached").steps["train"]
    assert waited.waited > 0 and "another run executed this step" in waited.cache_reason
    assert len({output(r, "train", "model") for r in records}) == 1  # one published model, read by both
    registry = ModelRegistry(TrackingStore.local(tmp_path), "drone-detector")
    assert [v.version for v in registry.versions()] == [1]
    assert len(TrackingStore.local(tmp_path).find_runs("drone-detection")) == 1  # one training, one MLflow run
