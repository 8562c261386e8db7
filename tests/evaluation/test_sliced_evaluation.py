"""The evaluation's full-frame-against-sliced section: its metrics, its place in evaluation.json and in the report, its config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from skyops.errors import ConfigError, DataValidationError
from skyops.evaluation import report as report_module
from skyops.evaluation.analysis import analyse
from skyops.evaluation.sliced_metrics import FrameBoxes, ratio, small_object_metrics
from skyops.steps.evaluate.script import EvaluateConfig
from skyops.steps.evaluate.sliced import sliced_section
from skyops.training.evaluation_doc import validate_evaluation
from tests.steps.conftest import evaluation_document

from .conftest import scored
from .test_report import NAMES, document

SMALL = np.array([[10, 10, 20, 18], [100, 100, 112, 110]], float)  # 80 and 120 px²: COCO-small
LARGE = np.array([[200, 200, 300, 300]], float)  # 10000 px²


def frame(found: np.ndarray, scores: list[float]) -> FrameBoxes:
    gt = np.concatenate([SMALL, LARGE])
    return FrameBoxes(gt, np.zeros(3, np.int64), found.reshape(-1, 4), np.array(scores, float), np.zeros(len(scores), np.int64), (400, 400))


def test_small_object_ap50_counts_small_objects_only() -> None:
    everything = small_object_metrics([frame(np.concatenate([SMALL, LARGE]), [0.9, 0.8, 0.7])], 1)
    assert everything["ap50"] == pytest.approx(1.0) and everything["ap50_small"] == pytest.approx(1.0)
    large_only = small_object_metrics([frame(LARGE, [0.9])], 1)
    assert large_only["ap50_small"] == 0.0 and large_only["ap_small"] == 0.0
    assert large_only["ap50"] == pytest.approx(1 / 3, abs=0.01)  # 1 of 3 found, at full precision: COCO's 101-point AP
    one_small = small_object_metrics([frame(SMALL[:1], [0.9])], 1)
    assert one_small["ap50_small"] == pytest.approx(0.5, abs=0.01)
    no_small = FrameBoxes(LARGE, np.zeros(1, np.int64), LARGE, np.array([0.9]), np.zeros(1, np.int64), (400, 400))
    assert small_object_metrics([no_small], 1)["ap50_small"] is None  # nothing small to score


def test_ratio() -> None:
    assert ratio(0.4, 0.1) == 4.0
    assert ratio(0.4, 0.0) is None and ratio(None, 0.2) is None


def section(ap50_small: float = 0.5) -> dict[str, Any]:
    side = {"ap": 0.2, "ap50": 0.4, "ap_small": 0.1, "ap50_small": 0.1, "ms_per_image": 40.0, "cpu_ms_per_image": 38.5}
    return {
        "settings": {"size": 256, "overlap": 0.2, "merge": "nmm", "imgsz": 256, "conf": 0.001, "iou": 0.7, "backend": "torch"},
        "images": 3,
        "full_frame": side,
        "sliced": {**side, "ap50_small": ap50_small, "ms_per_image": 900.0, "runs_per_image": 50.0},
        "ratio": {"ap50": 1.0, "ap50_small": ratio(ap50_small, 0.1)},
    }


def test_the_section_is_in_the_document_and_the_report() -> None:
    images = [scored([(0, 10, 10, 20, 20)], [(0, 0.9, 10, 10, 20, 20)], shape=(64, 64), name="a.png")]
    analysis = analyse(images, NAMES, min_slice_instances=1, report_conf=0.25, worst_count=0)
    validate_evaluation({**evaluation_document("a" * 64), "sliced": section()})  # the schema knows it; metrics.map50 stays where it was
    doc = {**document(analysis.sections), "sliced": section()}
    html = report_module.render(doc, coco=analysis.coco, worst=[], names=NAMES)
    assert "<h2>Sliced inference</h2>" in html
    assert "<td>sliced</td><td>0.200</td><td>0.400</td><td>0.100</td><td>0.500</td>" in html
    assert "AP50 on small objects: 5.0." in html
    plain = report_module.render(document(analysis.sections), coco=analysis.coco, worst=[], names=NAMES)
    assert "Sliced inference" not in plain  # off: no section


def test_a_wrong_section_is_refused_by_the_schema() -> None:
    with pytest.raises(DataValidationError, match=r"sliced\.sliced\.ap50_small"):
        validate_evaluation({**evaluation_document("a" * 64), "sliced": section(ap50_small=1.5)})


def test_slicing_is_off_by_default_and_bad_settings_are_one_line(tmp_path: Path) -> None:
    config = EvaluateConfig()
    assert (config.slice_size, config.slice_overlap, config.slice_merge) == (0, 0.2, "nms")
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"never loaded")
    with pytest.raises(
        ConfigError, match=r"^evaluate's slice settings: invalid slice settings: size=16: expected 0 \(off\) or at least 32 px$"
    ):
        sliced_section(
            weights, tmp_path, [], 4, imgsz=256, conf=0.001, iou=0.7, size=16, overlap=0.2, merge="nmm", state_dir=tmp_path / "state"
        )
