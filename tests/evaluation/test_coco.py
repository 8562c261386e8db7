"""COCO metrics from faster-coco-eval: hand-made cases with known answers, and agreement with Ultralytics' mAP50."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from skyops.evaluation.coco import COCO_KEYS, coco_metrics
from skyops.evaluation.scored import ScoredImage

from .conftest import scored

SMALL = (10.0, 10.0, 30.0, 30.0)  # 20 x 20 = 400 px²: COCO small
MEDIUM = (100.0, 100.0, 150.0, 150.0)  # 2,500 px²
LARGE = (200.0, 200.0, 320.0, 320.0)  # 14,400 px²


def test_a_perfect_detector_scores_one_everywhere_it_has_ground_truth() -> None:
    images = [scored([(0, *SMALL), (1, *LARGE)], [(0, 0.9, *SMALL), (1, 0.8, *LARGE)])]
    summary = coco_metrics(images, 2).summary
    assert summary["ap"] == summary["ap50"] == summary["ap75"] == 1.0  # COCO's step-sampled curve has no 0.995 ceiling
    assert summary["ap_small"] == summary["ap_large"] == 1.0
    assert summary["ap_medium"] is None and summary["ar_medium"] is None  # no medium object: COCO's -1
    assert summary["ar1"] == summary["ar10"] == summary["ar100"] == 1.0


def test_half_the_objects_found_at_precision_one() -> None:
    # recall reaches 0.5 with precision 1, then nothing: 51 of COCO's 101 recall points (0.00..0.50) have precision 1
    images = [scored([(0, *MEDIUM), (0, *LARGE)], [(0, 0.9, *MEDIUM)])]
    result = coco_metrics(images, 1)
    assert result.summary["ap"] == pytest.approx(51 / 101)
    assert result.summary["ap50"] == pytest.approx(51 / 101)
    assert result.summary["ar100"] == pytest.approx(0.5)
    assert result.summary["ap_medium"] == pytest.approx(1.0) and result.summary["ap_large"] == pytest.approx(0.0)
    assert result.precision.shape == (101, 1)
    assert (result.precision[:51, 0] == 1).all() and (result.precision[51:, 0] == 0).all()


def test_a_false_positive_ranked_first_halves_precision() -> None:
    images = [scored([(0, *MEDIUM)], [(0, 0.9, *LARGE), (0, 0.5, *MEDIUM)])]
    summary = coco_metrics(images, 1).summary
    assert summary["ap50"] == pytest.approx(0.5)  # precision 0.5 at every recall point
    assert summary["ar1"] == 0.0 and summary["ar10"] == 1.0  # the one detection allowed by maxDets=1 is the false one


def test_ap75_needs_a_tighter_box() -> None:
    loose = (100.0, 100.0, 160.0, 150.0)  # IoU with MEDIUM = 2500 / 3000 = 0.83
    looser = (100.0, 100.0, 150.0, 170.0)  # IoU 2500 / 3500 = 0.71
    images = [scored([(0, *MEDIUM)], [(0, 0.9, *loose)]), scored([(0, *MEDIUM)], [(0, 0.9, *looser)])]
    summary = coco_metrics(images, 1).summary
    assert summary["ap50"] == pytest.approx(1.0)
    assert summary["ap75"] == pytest.approx(51 / 101)  # only the first is a hit at 0.75: recall 0.5 at precision 1


def test_no_ground_truth_gives_none_everywhere() -> None:
    result = coco_metrics([scored([], [(0, 0.9, *MEDIUM)])], 2)
    assert result.summary == dict.fromkeys(COCO_KEYS)
    assert (result.precision == -1).all()


def grid_scene(rng: np.random.Generator) -> ScoredImage:
    """Up to 6 objects on a 3 x 3 grid of 200 px cells (never overlapping), each found or not, plus strays in empty cells.

    Each prediction overlaps at most one ground-truth box and each box gets at most one prediction,
    so COCO (confidence order) and Ultralytics (IoU order) make the same matches.
    """
    cells = rng.permutation(9)
    gt, preds = [], []
    for cell in cells[: rng.integers(2, 7)]:
        x, y = 200.0 * (cell % 3) + 20, 200.0 * (cell // 3) + 20
        w, h = rng.uniform(30, 150, 2)
        cls = int(rng.integers(0, 2))
        gt.append((cls, x, y, x + w, y + h))
        if rng.random() < 0.75:  # found, more or less tightly; sometimes as the wrong class
            shift = rng.normal(0, 0.08, 4) * (w + h) / 2
            pred_cls = cls if rng.random() < 0.9 else 1 - cls
            preds.append((pred_cls, float(rng.uniform(0.05, 1.0)), *(np.array([x, y, x + w, y + h]) + shift)))
    for cell in cells[7:]:  # false alarms where nothing is
        x, y = 200.0 * (cell % 3) + 40, 200.0 * (cell // 3) + 40
        preds.append((int(rng.integers(0, 2)), float(rng.uniform(0.05, 1.0)), x, y, x + 60, y + 60))
    preds.sort(key=lambda p: -p[1])  # Ultralytics' matcher expects descending confidence
    return scored(gt, preds)


def test_ap50_agrees_with_ultralytics_map50_on_the_same_predictions(ultralytics_reference: Any) -> None:
    """Same predictions, same matches (see grid_scene): only the AP integration differs.

    Both integrate the same precision envelope over COCO's 101 recall points r_i = i / 100. COCO takes
    at each r_i the envelope's value at the first curve point with recall >= r_i and averages the 101
    values; Ultralytics interpolates the envelope linearly between curve points and integrates with
    the trapezoid rule. (1) Interpolation: between two consecutive curve points the two differ by at
    most the envelope's drop there, over the grid points inside that recall gap; with n ground-truth
    boxes of a class a gap is 1/n wide, holding at most 100/n + 1 grid points, and the drops add up to
    at most 1: the difference is at most (100/n + 1) / 101. (2) Averaging 101 values against the
    trapezoid over them differs by at most 1/100 (the end points' half weights and 1/101 against 1/100).
    With at least 100 boxes per class here: 2/101 + 1/100 < 0.03.
    """
    rng = np.random.default_rng(7)
    images = [grid_scene(rng) for _ in range(60)]
    counts = np.bincount(np.concatenate([i.boxes.gt_classes for i in images]), minlength=2)
    assert counts.min() >= 100
    classes, ap = ultralytics_reference([i.boxes for i in images])
    ultralytics_map50 = float(ap[:, 0].mean())
    coco_ap50 = coco_metrics(images, 2).summary["ap50"]
    assert classes.tolist() == [0, 1]
    assert 0.3 < ultralytics_map50 < 0.9  # neither trivial end, where agreement would prove nothing
    assert coco_ap50 == pytest.approx(ultralytics_map50, abs=0.03)
