"""The data half of drone-detection through the local engine, on synthetic and on real data."""

import json
from pathlib import Path

import pytest
import yaml

from skyops.data.layout import Manifest, group_of, image_stem, read_split
from skyops.pipeline.definition import Pipeline, pipeline_from_dict
from skyops.pipeline.engine import LocalEngine, StateDir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine(tmp_path: Path) -> LocalEngine:
    return LocalEngine(StateDir(tmp_path / "state"), code_roots={"skyops": ROOT / "src" / "skyops"})


DATA_STEPS = ("ingest", "validate", "profile", "split")


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    """The data half of drone-detection: its YAML up to `split` (training is tested elsewhere)."""
    data = yaml.safe_load((ROOT / "pipelines" / "drone-detection.yaml").read_text())
    data["steps"] = [s for s in data["steps"] if s["step"] in DATA_STEPS]
    data.pop("gates")
    return pipeline_from_dict(data)


def data_steps(record) -> dict[str, str]:
    return {name: str(record.steps[name].status) for name in DATA_STEPS}


def output(record, step: str, port: str) -> Path:
    return Path(record.steps[step].outputs[port]["path"])


def test_synthetic_default_flows_through_validate_profile_split(engine: LocalEngine, pipeline) -> None:
    record = engine.run(pipeline, {"images": "24", "image_size": "128"}, run_id="synth")
    assert data_steps(record) == dict.fromkeys(["ingest", "validate", "profile", "split"], "done")
    report = json.loads((output(record, "validate", "report") / "validation.json").read_text())
    assert report["passed"] and report["images"] == 24
    profile = json.loads((output(record, "profile", "profile") / "profile.json").read_text())
    assert profile["dataset"]["images"] == 24
    splits = output(record, "split", "splits")
    assert sum(len(read_split(splits, s)) for s in ("train", "val", "test")) == 24
    assert json.loads((splits / "split.json").read_text())["leakage_clean"] is True


def test_real_roboflow_export_splits_without_leaking_frames(engine: LocalEngine, pipeline, shared_datasets: Path) -> None:
    record = engine.run(pipeline, {"dataset": str(shared_datasets / "aerial-cars"), "format": "yolo"})
    splits = output(record, "split", "splits")
    stems = {side: {group_of(image_stem(p)) for p in read_split(splits, side)} for side in ("train", "val", "test")}
    assert stems["train"] and stems["val"] and stems["test"]
    assert stems["train"] & stems["val"] == stems["train"] & stems["test"] == stems["val"] & stems["test"] == set()
    assert len(Manifest.read(splits).images) == 367


def test_visdrone_sample_ingests_with_its_class_names(engine: LocalEngine, pipeline, shared_datasets: Path) -> None:
    record = engine.run(pipeline, {"dataset": str(shared_datasets / "visdrone-sample"), "format": "visdrone"})
    manifest = Manifest.read(output(record, "ingest", "raw"))
    assert manifest.names[:4] == ["pedestrian", "people", "bicycle", "car"] and len(manifest.images) == 8


def test_misdeclared_format_fails_the_step_with_a_clear_message(engine: LocalEngine, pipeline, shared_datasets: Path) -> None:
    record = engine.run(pipeline, {"dataset": str(shared_datasets / "visdrone-sample"), "format": "coco"})
    assert data_steps(record) == {"ingest": "failed", "validate": "skipped", "profile": "skipped", "split": "skipped"}
    log = Path(record.steps["ingest"].log).read_text()
    assert "visdrone-sample is not a coco dataset" in log and "it looks like visdrone" in log
    assert "Traceback" not in log
