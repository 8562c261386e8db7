"""The registration gate's worst-slice rule, from scored scenes to the decision: slices -> comparison -> gate.

(tests/sagemaker/test_registration.py checks that both engines decide the same on such comparisons.)
"""

from __future__ import annotations

from typing import Any

import pytest

from skyops.evaluation.slices import slice_table, to_json
from skyops.registry.gate import GatePolicy, champion_comparison, decide
from skyops.training.evaluate import compare
from skyops.training.evaluation_doc import validate_evaluation
from tests.steps.conftest import evaluation_document

from .conftest import scored

NAMES = ["car"]
SMALL_CARS = [(0, 20.0 + 40 * i, 20.0, 40.0 + 40 * i, 40.0) for i in range(12)]  # 20 x 20 px, 20 px apart
LARGE_CARS = [(0, 20.0 + 150 * i, 300.0, 140.0 + 150 * i, 420.0) for i in range(3)]  # 120 x 120 px


def document(found_small: int, weights: str) -> dict[str, Any]:
    """An evaluation of a model that finds `found_small` of the 12 small cars and every large one, on one image."""
    preds = [(0, 0.9, *box) for _, *box in LARGE_CARS] + [(0, 0.8, *box) for _, *box in SMALL_CARS[:found_small]]
    slices = to_json(slice_table([scored([*SMALL_CARS, *LARGE_CARS], preds)], NAMES))
    doc = evaluation_document(weights * 64)
    doc["slices"] = slices
    doc["settings"]["min_slice_instances"] = 3
    return doc


@pytest.fixture
def champion() -> dict[str, Any]:
    return document(12, "c")


def test_a_model_worse_on_small_objects_is_refused(champion: dict[str, Any]) -> None:
    challenger = document(8, "a")  # a third of the small cars lost; the large ones all found
    challenger["comparison"] = compare(challenger, champion, source="weights")
    validate_evaluation(challenger)
    worst = challenger["comparison"]["slices"]["worst"]
    assert (worst["family"], worst["name"], worst["instances"]) == ("size", "small", 12)
    assert worst["delta"] == pytest.approx(worst["challenger"] - worst["champion"]) and worst["delta"] < -0.3
    gate = decide(challenger, champion_comparison(challenger), GatePolicy(max_regression=1.0, max_slice_regression=0.05))
    assert gate["passed"] is False
    assert gate["reasons"][-1].startswith("worst slice size=small: mAP50-95 -0.3")
    assert gate["reasons"][-1].endswith("beyond the allowed slice regression 0.050")
    assert gate["policy"]["max_slice_regression"] == 0.05


def test_the_same_model_passes_within_a_wider_margin(champion: dict[str, Any]) -> None:
    challenger = document(8, "a")
    challenger["comparison"] = compare(challenger, champion, source="weights")
    gate = decide(challenger, champion_comparison(challenger), GatePolicy(max_regression=1.0, max_slice_regression=0.5))
    assert gate["passed"] is True
    assert gate["reasons"][-1].endswith("within the allowed slice regression 0.500")


def test_slices_with_too_few_boxes_are_not_compared(champion: dict[str, Any]) -> None:
    challenger = document(8, "a")
    challenger["settings"]["min_slice_instances"] = 100
    challenger["comparison"] = compare(challenger, champion, source="weights")
    assert challenger["comparison"]["slices"]["worst"] is None
    gate = decide(challenger, champion_comparison(challenger), GatePolicy(max_regression=1.0, max_slice_regression=0.0))
    assert gate["passed"] is True
    assert gate["reasons"][-1] == "slices not compared: none has the 100 ground-truth boxes a comparison needs"


def test_a_champion_document_without_slices_is_compared_on_the_rest(champion: dict[str, Any]) -> None:
    old = {k: v for k, v in champion.items() if k not in ("coco", "slices", "weakest_slice", "confusion", "worst_images")}
    old["schema_version"] = "1.0"
    old["dataset"] = {k: v for k, v in old["dataset"].items() if k != "box_attributes"}
    old["settings"] = {k: old["settings"][k] for k in ("conf", "iou", "batch")}
    validate_evaluation(old)  # an evaluation written before schema 1.1 is still valid
    challenger = document(8, "a")
    challenger["comparison"] = compare(challenger, old, source="document")
    assert challenger["comparison"]["slices"] is None
    validate_evaluation(challenger)
