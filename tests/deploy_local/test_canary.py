"""The canary set: its file checked (every problem at once), and answers matched to expected detections one to one."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyops.errors import ConfigError
from skyops.serving.canary import CanaryResult, Expected, box_iou, load_canary, matches


def write_set(folder: Path, document: dict[str, object], images: dict[str, tuple[int, int]] | None = None) -> Path:
    """`folder` with canary.json = `document` and the named images (width, height) as JPEGs."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name, (width, height) in (images or {"images/a.jpg": (64, 48)}).items():
        cv2.imwrite(str(folder / name), np.full((height, width, 3), 90, np.uint8))
    (folder / "canary.json").write_text(json.dumps(document))
    return folder


def test_a_good_set_loads_with_its_defaults(tmp_path: Path) -> None:
    folder = write_set(
        tmp_path, {"format": 1, "images": [{"file": "images/a.jpg", "detections": [{"class_id": 1, "box": [1, 2, 30, 40]}]}]}
    )
    canary = load_canary(folder)
    assert (canary.conf, canary.max_det, canary.iou, canary.min_recall, canary.min_precision) == (None, None, 0.5, 0.8, 0.8)
    (image,) = canary.images
    assert (image.media_type, image.width, image.height, image.detections) == ("image/jpeg", 64, 48, (Expected(1, (1.0, 2.0, 30.0, 40.0)),))


def test_every_problem_of_a_set_is_named_at_once(tmp_path: Path) -> None:
    (tmp_path / "outside.jpg").write_bytes(b"")
    document = {
        "format": 2,
        "conf": 1.5,
        "max_det": 0,
        "min_recall": "high",
        "images": [
            {"file": "images/a.jpg", "detections": [{"class_id": 0, "box": [0, 0, 65, 10]}, {"class_id": -1, "box": [0, 0, 1, 1]}]},
            {"file": "../outside.jpg", "detections": []},
            {"file": "images/missing.jpg", "detections": []},
            {"file": "canary.json", "detections": []},
            "images/a.jpg",
        ],
    }
    with pytest.raises(ConfigError) as error:
        load_canary(write_set(tmp_path / "set", document))
    assert error.value.problems == [
        "conf is 1.5, not a number from 0 to 1 or null",
        "format is 2, expected 1",
        'images[0].detections[0] is not {"class_id": >= 0, "box": [x1, y1, x2, y2] inside the image}',
        'images[0].detections[1] is not {"class_id": >= 0, "box": [x1, y1, x2, y2] inside the image}',
        "images[1].file '../outside.jpg' is not a path inside the canary folder",
        "images[2].file images/missing.jpg cannot be read (No such file or directory)",
        "images[3].file canary.json is not a JPEG or PNG image",
        'images[4] is not {"file": "images/...", "detections": [...]}',
        "max_det is 0, not a positive integer or null",
        "min_recall is 'high', not a number from 0 to 1",
    ]
    assert error.value.message.startswith(f"10 problems in canary set {tmp_path / 'set' / 'canary.json'}:")


def test_a_set_that_expects_nothing_is_refused(tmp_path: Path) -> None:
    folder = write_set(tmp_path, {"format": 1, "images": [{"file": "images/a.jpg", "detections": []}]})
    with pytest.raises(
        ConfigError, match=r"no image expects a detection: such a set cannot tell a model that answers nothing from one that works"
    ):
        load_canary(folder)


def test_no_canary_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^no canary set at {tmp_path}: canary.json does not exist$"):
        load_canary(tmp_path)


def test_answers_match_one_to_one_by_class_and_overlap() -> None:
    expected = [Expected(0, (0, 0, 10, 10)), Expected(0, (20, 20, 30, 30)), Expected(1, (0, 0, 10, 10))]
    answered = [
        (Expected(0, (1, 1, 10, 10)), 0.9),  # IoU 0.81 with the first
        (Expected(0, (0, 0, 10, 10)), 0.5),  # the same box again: the first is taken, nothing else overlaps
        (Expected(1, (20, 20, 30, 30)), 0.8),  # the right place, the wrong class
        (Expected(1, (0, 0, 10, 12)), 0.7),  # IoU 0.83 with the class-1 box
    ]
    assert matches(expected, answered, 0.5) == 2
    assert matches(expected, answered, 0.85) == 1  # only the exact box of class 0 is that close


@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 100), st.integers(0, 100), st.integers(1, 50), st.integers(1, 50)), max_size=20)
)
def test_a_server_that_answers_what_is_expected_matches_all_of_it(boxes: list[tuple[int, int, int, int, int]]) -> None:
    expected = [Expected(c, (float(x), float(y), float(x + w), float(y + h))) for c, x, y, w, h in boxes]
    assert matches(expected, [(e, 0.5) for e in expected], 0.99) == len(expected)
    assert matches(expected, [], 0.5) == 0


def test_box_iou() -> None:
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_a_result_passes_only_above_both_thresholds_and_without_failures() -> None:
    result = CanaryResult(images=2, expected=10, answered=9, matched=8, min_recall=0.8, min_precision=0.8)
    assert result.passed and result.summary() == (
        "recall 0.80 >= 0.80 (8 of 10 expected detections found), precision 0.89 >= 0.80 (9 answered) on 2 images"
    )
    low = CanaryResult(images=2, expected=10, answered=40, matched=8, min_recall=0.8, min_precision=0.8)
    assert not low.passed and "precision 0.20 < 0.80 (40 answered)" in low.summary()
    failed = CanaryResult(images=2, expected=10, answered=9, matched=9, failures=["images/0000.jpg: answered 503 ...", "x"])
    assert not failed.passed and failed.summary() == "images/0000.jpg: answered 503 ... (and 1 more)"
