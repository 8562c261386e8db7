"""End to end on real VisDrone-DET: convert, split, a one-epoch YOLO11n, the evaluate step: occlusion and truncation slices, the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from skyops.data.convert import convert
from skyops.data.split import split_dataset
from skyops.steps.evaluate.script import EvaluateConfig, main


@pytest.mark.slow
def test_the_evaluate_step_slices_real_visdrone_by_occlusion_and_truncation(
    shared_datasets: Path, ultra_state: Path, tmp_path: Path
) -> None:
    from skyops.data.layout import write_data_yaml
    from skyops.training.ultra import import_ultralytics

    convert(shared_datasets / "visdrone-sample" / "VisDrone2019-DET-val", tmp_path / "converted", "visdrone")
    split_dataset(tmp_path / "converted", tmp_path / "splits", (0.5, 0.25, 0.25), seed=0)
    import_ultralytics(ultra_state)
    from ultralytics import YOLO

    from skyops.data.layout import Manifest

    names = Manifest.read(tmp_path / "splits").names
    data_yaml = write_data_yaml(tmp_path / "splits", tmp_path / "data.yaml", names)
    YOLO("yolo11n.yaml").train(
        data=str(data_yaml), epochs=1, imgsz=320, batch=2, workers=0, device="cpu", val=False, plots=False,
        project=str(tmp_path / "train"), name="run", verbose=False, amp=False,
    )  # fmt: skip
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(tmp_path / "train" / "run" / "weights" / "last.pt", model / "best.pt")
    before = sorted(p.relative_to(tmp_path / "splits") for p in (tmp_path / "splits").rglob("*"))

    out = tmp_path / "evaluation"
    out.mkdir()
    main(
        {"model": model, "splits": tmp_path / "splits"},
        {"evaluation": out},
        {"SKYOPS_STATE_DIR": str(ultra_state)},
        EvaluateConfig(imgsz=320, batch=2),
    )

    doc = json.loads((out / "evaluation.json").read_text())
    assert doc["dataset"]["box_attributes"]["columns"] == ["truncation", "occlusion"]
    assert doc["dataset"]["box_attributes"]["images"] == doc["dataset"]["images"] > 0
    assert doc["dataset"]["box_attributes"]["unaligned"] == 0
    occlusion, truncation = doc["slices"]["occlusion"], doc["slices"]["truncation"]
    assert sum(e["instances"] for e in occlusion.values()) == doc["dataset"]["instances"]  # every box has a known level
    assert sum(e["instances"] for e in truncation.values()) == doc["dataset"]["instances"]
    assert occlusion["partial"]["instances"] > 0
    html = (out / "report.html").read_text()
    assert "<h3>occlusion</h3>" in html and "http://" not in html and "https://" not in html
    assert sorted(p.relative_to(tmp_path / "splits") for p in (tmp_path / "splits").rglob("*")) == before  # the input is untouched
