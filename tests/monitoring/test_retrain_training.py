"""The retraining trigger starting the real drone-detection pipeline on a grown dataset version: ingest, validate,
profile, split, train (one epoch of YOLO11n), evaluate and register, the run's registration announced as an
approval request. Minutes of CPU: marked slow (pytest -m slow)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from skyops.monitoring.datasets import DatasetStore, external
from skyops.monitoring.retrain import RetrainPolicy, RetrainTrigger, Rule
from skyops.monitoring.sinks import Publisher
from skyops.pipeline.lineage import RunStatus, list_records
from skyops.settings import Settings

from .conftest import labelled_dataset, logged_events, with_yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_an_alert_trains_the_drone_detection_pipeline_on_the_grown_dataset(project: Settings, tmp_path: Path) -> None:
    from skyops.data.synth import generate_scenes

    shutil.copy(ROOT / "pipelines" / "drone-detection.yaml", project.project_dir / "pipelines" / "drone-detection.yaml")
    base = tmp_path / "base"
    generate_scenes(base, 24, size=128, seed=5, workers=1)
    with_yaml(base)
    extra = sorted((base / "images").glob("*.jpg"))[:6]
    store = DatasetStore(project.state_dir)
    version = store.grow(external(base), labelled_dataset(tmp_path, extra, "night"), labels_manifest=base / "manifest.json", job="night")

    params = {"epochs": "1", "image_size": "128", "batch": "8", "min_map50": "0", "max_invalid_fraction": "0.5"}
    trigger = RetrainTrigger(project, RetrainPolicy(min_new_labels=6), Publisher(project.state_dir / "events"), params=params)
    decision, _ = trigger.consider({"kind": "drift.detected", "event_id": "e1"}, version, store, wait=True)
    assert decision.rule is Rule.START
    assert decision.run is not None and decision.run.exit_code == 0, Path(decision.run.log).read_text()[-4000:] if decision.run else ""

    [run] = list_records(project.state_dir / "runs")
    assert run.status is RunStatus.SUCCEEDED and run.parameters["dataset"] == str(version.path)
    ingested = json.loads((Path(run.steps["ingest"].outputs["raw"]["path"]) / "ingest.json").read_text())
    assert ingested["fingerprint"] == version.fingerprint and ingested["images"] == 30
    registration = json.loads((Path(run.steps["register"].outputs["registration"]["path"]) / "registration.json").read_text())
    [requested] = [e for e in logged_events(project) if e["type"] == "approval.requested"]  # published by the started `skyops run`
    assert (requested["detail"]["model"], requested["detail"]["version"], requested["detail"]["run_id"]) == (
        registration["model"],
        registration["version"],
        run.run_id,
    )
