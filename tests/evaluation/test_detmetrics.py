"""detmetrics: AP on hand-made boxes with known values, COCO size slices, and agreement with Ultralytics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyops.evaluation.detmetrics import (
    IOU_THRESHOLDS,
    SIZE_SLICES,
    ImageBoxes,
    average_precision,
    box_iou,
    match_predictions,
    slice_metrics,
)

# Ultralytics' AP of a perfect detector: its curve falls to 0 at recall 1, and the trapezoid rule
# over 101 recall points loses half of the last 0.01-wide step.
PERFECT = 0.995
# One false positive ranked above the only true positive: precision 0.5 everywhere on recall (0, 1],
# so 0.5 * 0.99 + (0.5 + 0) / 2 * 0.01.
FP_FIRST = 0.4975


def scene(gt: list[tuple[int, float, float, float, float]], preds: list[tuple[int, float, float, float, float, float]]) -> ImageBoxes:
    """gt: (class, x0, y0, x1, y1); preds: (class, score, x0, y0, x1, y1); pixels."""
    return ImageBoxes(
        gt_boxes=np.array([g[1:] for g in gt], dtype=float).reshape(-1, 4),
        gt_classes=np.array([g[0] for g in gt], dtype=int),
        pred_boxes=np.array([p[2:] for p in preds], dtype=float).reshape(-1, 4),
        pred_classes=np.array([p[0] for p in preds], dtype=int),
        pred_scores=np.array([p[1] for p in preds], dtype=float),
    )


SMALL = (10.0, 10.0, 30.0, 30.0)  # 20 x 20 = 400 px²
MEDIUM = (100.0, 100.0, 150.0, 150.0)  # 50 x 50 = 2,500 px²
LARGE = (200.0, 200.0, 320.0, 320.0)  # 120 x 120 = 14,400 px²
FAR_SMALL = (400.0, 10.0, 420.0, 30.0)  # matches nothing
FAR_LARGE = (400.0, 200.0, 520.0, 320.0)  # matches nothing


def test_perfect_predictions_score_ultralytics_ceiling() -> None:
    images = [scene([(0, *SMALL), (1, *LARGE)], [(0, 0.9, *SMALL), (1, 0.8, *LARGE)])]
    result = slice_metrics(images)
    assert result.instances == 2
    assert result.map50 == pytest.approx(PERFECT)
    assert result.map50_95 == pytest.approx(PERFECT)


def test_false_positive_ranked_above_the_true_positive() -> None:
    images = [scene([(0, *MEDIUM)], [(0, 0.9, *FAR_LARGE), (0, 0.5, *MEDIUM)])]
    assert slice_metrics(images).map50 == pytest.approx(FP_FIRST)


def test_false_positive_ranked_below_the_true_positive_costs_nothing() -> None:
    images = [scene([(0, *MEDIUM)], [(0, 0.9, *MEDIUM), (0, 0.5, *FAR_LARGE)])]
    assert slice_metrics(images).map50 == pytest.approx(PERFECT)


def test_average_precision_of_an_empty_curve_is_zero() -> None:
    assert average_precision(np.zeros(0), np.zeros(0)) == 0.0


def test_a_ground_truth_box_is_claimed_once() -> None:
    iou = box_iou(np.array([MEDIUM]), np.array([MEDIUM, MEDIUM]))
    tp, hit_ignored = match_predictions(iou, np.array([False]))
    assert tp[:, 0].tolist() == [True, False]
    assert not hit_ignored.any()


def test_class_without_predictions_scores_zero_and_classes_without_ground_truth_are_left_out() -> None:
    # class 0: perfect; class 1: missed; class 2: a prediction with no ground truth of its class.
    images = [scene([(0, *SMALL), (1, *LARGE)], [(0, 0.9, *SMALL), (2, 0.95, *FAR_LARGE)])]
    result = slice_metrics(images)
    assert result.classes.tolist() == [0, 1]
    assert result.ap[:, 0].tolist() == pytest.approx([PERFECT, 0.0])
    assert result.map50 == pytest.approx(PERFECT / 2)


def test_iou_thresholds_decide_true_positives() -> None:
    # Shifted by 10 px: IoU = 40*50 / (2*2500 - 40*50) = 2000 / 3000 = 0.667 -> TP at 0.50..0.65 only.
    shifted = (110.0, 100.0, 160.0, 150.0)
    result = slice_metrics([scene([(0, *MEDIUM)], [(0, 0.9, *shifted)])])
    expected = np.where(IOU_THRESHOLDS <= 0.667, PERFECT, 0.0)
    assert result.ap[0] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("side", "slice_name"),
    [(31.9, "small"), (32.0, "medium"), (95.9, "medium"), (96.0, "large")],
)
def test_size_slices_are_half_open_on_area(side: float, slice_name: str) -> None:
    box = (0.0, 0.0, side, side)
    images = [scene([(0, *box)], [(0, 0.9, *box)])]
    counts = {name: slice_metrics(images, area).instances for name, area in SIZE_SLICES.items()}
    assert counts == {name: int(name == slice_name) for name in SIZE_SLICES}


def test_slices_count_their_ground_truth_and_empty_slices_have_no_map() -> None:
    images = [scene([(0, *SMALL), (0, *LARGE), (0, *LARGE)], [(0, 0.9, *SMALL), (0, 0.8, *LARGE)])]
    small, medium, large = (slice_metrics(images, SIZE_SLICES[n]) for n in ("small", "medium", "large"))
    assert (small.instances, medium.instances, large.instances) == (1, 0, 2)
    assert medium.map50 is None and medium.map50_95 is None
    assert small.map50 == pytest.approx(PERFECT)
    # One of two large boxes found: precision 1 up to recall 0.5, then 0 -> 0.49 + 0.01 / 2.
    assert large.map50 == pytest.approx(0.495)


def test_prediction_matched_to_out_of_slice_ground_truth_is_ignored_not_false() -> None:
    # In the small slice the large box is an ignore region: the confident prediction on it is neither
    # a TP nor an FP. Were it counted as an FP, small AP would drop to FP_FIRST.
    images = [scene([(0, *SMALL), (0, *LARGE)], [(0, 0.9, *LARGE), (0, 0.5, *SMALL)])]
    assert slice_metrics(images, SIZE_SLICES["small"]).map50 == pytest.approx(PERFECT)
    assert slice_metrics(images, SIZE_SLICES["large"]).map50 == pytest.approx(PERFECT)


def test_unmatched_prediction_counts_only_in_the_slice_of_its_own_area() -> None:
    images = [scene([(0, *SMALL), (0, *LARGE)], [(0, 0.95, *FAR_LARGE), (0, 0.9, *LARGE), (0, 0.5, *SMALL)])]
    assert slice_metrics(images, SIZE_SLICES["small"]).map50 == pytest.approx(PERFECT)  # FAR_LARGE ignored
    assert slice_metrics(images, SIZE_SLICES["large"]).map50 == pytest.approx(FP_FIRST)  # FAR_LARGE is an FP here


def test_prediction_prefers_a_kept_box_over_an_ignored_one() -> None:
    # Row 0 is an ignore region with IoU 0.9, row 1 a kept box with IoU 0.62. COCO takes the kept box
    # wherever it passes the threshold, and falls back to the ignored one only above 0.62.
    iou = np.array([[0.9], [0.62]])
    tp, hit_ignored = match_predictions(iou, np.array([True, False]))
    assert tp[0].tolist() == (IOU_THRESHOLDS <= 0.62).tolist()
    assert hit_ignored[0].tolist() == ((IOU_THRESHOLDS > 0.62) & (IOU_THRESHOLDS <= 0.9)).tolist()


def test_image_boxes_checks_shapes() -> None:
    with pytest.raises(ValueError, match=r"pred_scores has shape \(2,\), expected \(1,\)"):
        ImageBoxes(
            gt_boxes=np.zeros((0, 4)),
            gt_classes=np.zeros(0, dtype=int),
            pred_boxes=np.zeros((1, 4)),
            pred_classes=np.zeros(1, dtype=int),
            pred_scores=np.zeros(2),
        )


# --- properties -------------------------------------------------------------------------------

coordinate = st.floats(min_value=0, max_value=300, allow_nan=False)
extent = st.floats(min_value=1, max_value=200, allow_nan=False)
box = st.tuples(coordinate, coordinate, extent, extent).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))
boxes = st.lists(box, min_size=1, max_size=6).map(lambda bs: np.array(bs, dtype=float))


@given(a=boxes, b=boxes)
def test_iou_is_symmetric_bounded_and_one_on_itself(a: np.ndarray, b: np.ndarray) -> None:
    iou = box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert np.allclose(iou, box_iou(b, a).T)
    assert ((iou >= 0) & (iou <= 1)).all()
    assert np.allclose(np.diag(box_iou(a, a)), 1.0, atol=1e-6)


@given(gt=boxes, preds=boxes, ignore=st.lists(st.booleans(), min_size=6, max_size=6))
def test_matching_claims_each_box_once_and_loosens_with_the_threshold(gt: np.ndarray, preds: np.ndarray, ignore: list[bool]) -> None:
    gt_ignore = np.array(ignore[: len(gt)])
    tp, hit_ignored = match_predictions(box_iou(gt, preds), gt_ignore)
    assert not (tp & hit_ignored).any()
    assert (tp.sum(axis=0) <= (~gt_ignore).sum()).all()
    assert (hit_ignored.sum(axis=0) <= gt_ignore.sum()).all()
    matched = tp | hit_ignored
    if not gt_ignore.any():  # with ignore regions, see the next test
        assert (matched.sum(axis=0)[:-1] >= matched.sum(axis=0)[1:]).all()  # fewer matches at stricter thresholds


def test_a_stricter_threshold_can_free_a_kept_box_by_sending_a_prediction_to_an_ignored_one() -> None:
    """COCO's preference for kept boxes: at IoU 0.65 the first prediction takes the kept box (0.75) over the
    ignored one (0.8), and the second finds nothing left (0.6 to the ignored one); at 0.78 the first can only
    take the ignored box, the kept one is free and the second takes it (1.0). Two matches at the stricter
    threshold, one at the looser (found by Hypothesis)."""
    gt = np.array([(0.0, 0.0, 5.0, 1.0), (0.0, 0.0, 3.0, 1.0)])  # ignored (area 5), kept (area 3)
    preds = np.array([(0.0, 0.0, 4.0, 1.0), (0.0, 0.0, 3.0, 1.0)])  # IoU with them: (0.8, 0.75), (0.6, 1.0)
    tp, hit_ignored = match_predictions(box_iou(gt, preds), np.array([True, False]), np.array([0.65, 0.78]))
    assert tp.tolist() == [[True, False], [False, True]]
    assert hit_ignored.tolist() == [[False, True], [False, False]]


# --- agreement with Ultralytics' own implementation --------------------------------------------

labelled_box = st.tuples(st.integers(0, 2), box)
jitter = st.floats(min_value=-8, max_value=8, allow_nan=False)
image_strategy = st.tuples(
    st.lists(labelled_box, max_size=5),  # ground truth
    st.lists(st.tuples(jitter, st.floats(0.01, 1.0), st.booleans()), max_size=5),  # per gt: shift, score, wrong class
    st.lists(st.tuples(labelled_box, st.floats(0.01, 1.0)), max_size=3),  # stray predictions
)


@settings(max_examples=40, deadline=None)
@given(drawn=st.lists(image_strategy, min_size=1, max_size=6))
def test_all_sizes_slice_reproduces_ultralytics(drawn: list[Any], ultralytics_reference: Any) -> None:
    images = []
    for gt, hits, strays in drawn:
        preds = [
            (((cls + 1) % 3) if wrong else cls, score, *(np.array(b) + shift))
            for (cls, b), (shift, score, wrong) in zip(gt, hits, strict=False)
        ] + [(cls, score, *b) for (cls, b), score in strays]
        preds.sort(key=lambda p: -p[1])  # Ultralytics' matcher expects descending confidence
        images.append(scene([(cls, *b) for cls, b in gt], preds))
    classes, ap = ultralytics_reference(images)
    ours = slice_metrics(images)
    assert ours.classes.tolist() == classes.tolist()
    assert ours.ap == pytest.approx(ap, abs=1e-9)
