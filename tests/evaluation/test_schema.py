"""Schema 1.1 of evaluation.json: what it adds is required in 1.1 documents and refused in 1.0 ones."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skyops.errors import DataValidationError
from skyops.training.evaluation_doc import SCHEMA_VERSION, validate_evaluation
from tests.steps.conftest import evaluation_document

ADDED = ("coco", "slices", "weakest_slice", "confusion", "worst_images")


def document() -> dict[str, Any]:
    return evaluation_document("a" * 64)


def test_the_version_written_is_1_1_and_the_fixture_is_valid() -> None:
    assert SCHEMA_VERSION == document()["schema_version"] == "1.1"
    validate_evaluation(document())


@pytest.mark.parametrize("section", ADDED)
def test_a_1_1_document_needs_every_added_section(section: str) -> None:
    doc = document()
    del doc[section]
    with pytest.raises(DataValidationError, match=rf"<document>: '{section}' is a required property"):
        validate_evaluation(doc)


def test_a_1_0_document_must_not_carry_1_1_sections() -> None:
    doc = document()
    doc["schema_version"] = "1.0"
    with pytest.raises(DataValidationError, match=r"should not be valid under"):
        validate_evaluation(doc)


def test_a_1_1_comparison_needs_its_slices() -> None:
    doc = document()
    doc["comparison"] = {
        "champion": {"source": "weights", "weights_sha256": "c" * 64, "metrics": dict(doc["metrics"])},
        "delta": {"map50": 0.0, "map50_95": 0.0},
        "challenger_better": False,
    }
    with pytest.raises(DataValidationError, match=r"comparison: .* is not valid under any of the given schemas"):
        validate_evaluation(doc)
    doc["comparison"]["slices"] = None  # the champion's document had none: allowed, and said so
    validate_evaluation(doc)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("slices", "size", "small", "map50_95"), 1.5, r"slices\.size\.small\.map50_95: 1\.5 is greater than the maximum of 1"),
        (("slices", "size", "small", "images"), -1, r"slices\.size\.small\.images: -1 is less than the minimum of 0"),
        (("coco", "ap"), float("nan"), r"coco\.ap: nan is not a finite number"),
        (("confusion", "matrix"), [[1, -2]], r"confusion\.matrix\[0\]\[1\]: -2 is less than the minimum of 0"),
        (("settings", "min_slice_instances"), 0, r"settings\.min_slice_instances: 0 is less than the minimum of 1"),
    ],
)
def test_bad_values_are_refused_with_their_path(path: tuple[str, ...], value: Any, message: str) -> None:
    doc = copy.deepcopy(document())
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(DataValidationError, match=message):
        validate_evaluation(doc)


def test_an_unknown_slice_family_is_refused() -> None:
    doc = document()
    doc["slices"]["weather"] = {}
    with pytest.raises(DataValidationError, match=r"slices: 'weather' is not one of"):
        validate_evaluation(doc)
