"""The check's criteria and the variants' rule, on injected measurements and hand-made head outputs."""

from __future__ import annotations

import numpy as np
import pytest

from skyops.errors import ExportCheckError
from skyops.serving.export_check import Agreement, BackendRun, Tolerance, detections_differing, export_problems, keep_variant, raise_for
from skyops.serving.export_runtime import Detections

TOLERANCE = Tolerance()


def verdict(latency_ms: float, map50: float | None, fp32_latency_ms: float = 10.0, fp32_map50: float | None = 0.6) -> tuple[bool, str]:
    found = keep_variant(
        "int8", latency_ms=latency_ms, map50=map50, fp32_latency_ms=fp32_latency_ms, fp32_map50=fp32_map50, tolerance=TOLERANCE
    )
    return found.kept, found.reason


def test_a_faster_variant_within_the_loss_is_kept() -> None:
    assert verdict(8.0, 0.595) == (
        True,
        "int8 kept: 8.00 ms/image vs 10.00 for fp32 ONNX Runtime (1.25x); mAP50 0.5950 vs 0.6000 (loss 0.0050, allowed 0.01)",
    )


def test_a_loss_of_exactly_the_allowance_is_kept_and_a_gain_is_fine() -> None:
    assert verdict(9.0, 0.59)[0] is True
    assert verdict(9.0, 0.7)[0] is True


def test_a_variant_that_is_not_faster_is_dropped_even_when_exact() -> None:
    assert verdict(10.0, 0.6) == (False, "int8 dropped: not faster (10.00 ms/image vs 10.00 for fp32 ONNX Runtime)")


def test_a_faster_variant_that_loses_too_much_is_dropped() -> None:
    assert verdict(5.0, 0.58) == (False, "int8 dropped: mAP50 0.5800 vs 0.6000 (loss 0.0200, allowed 0.01)")


def test_both_reasons_are_given() -> None:
    assert verdict(12.0, 0.5) == (
        False,
        "int8 dropped: not faster (12.00 ms/image vs 10.00 for fp32 ONNX Runtime); mAP50 0.5000 vs 0.6000 (loss 0.1000, allowed 0.01)",
    )


def test_without_ground_truth_the_loss_is_unknown_so_the_variant_is_dropped() -> None:
    assert verdict(5.0, None, fp32_map50=None) == (
        False,
        "int8 dropped: its mAP50 loss cannot be measured (the split has no ground-truth boxes)",
    )


def head(boxes: list[list[float]], scores: list[list[float]]) -> np.ndarray:
    """A raw head output (1, 4 + nc, anchors) from per-anchor xywh and class scores."""
    return np.concatenate([np.array(boxes).T, np.array(scores).T])[None].astype(np.float32)


def test_agreement_compares_anchor_by_anchor() -> None:
    reference = head([[10, 10, 4, 4], [30, 30, 8, 8], [50, 50, 2, 2]], [[0.9, 0.0], [0.0, 0.5], [0.0, 0.0]])
    shifted = head([[10, 10, 4, 4], [30.4, 30, 8, 8], [60, 60, 2, 2]], [[0.9, 0.0], [0.0, 0.4995], [0.0, 0.0]])
    agreement = Agreement()
    agreement.add(reference, shifted)
    # anchor 3 moved far, but it scores 0 in both: it can never become a detection, so its box is not compared
    assert (agreement.anchors, agreement.boxes) == (3, 2)
    assert agreement.worst_iou == pytest.approx((7.6 * 8) / (2 * 64 - 7.6 * 8), abs=1e-6)
    assert agreement.worst_score_delta == pytest.approx(5e-4, abs=1e-6)
    assert export_problems(0.5, 0.5, agreement, TOLERANCE) == ["boxes overlap their PyTorch twins with IoU down to 0.9048 < 0.99"]


def test_every_failed_criterion_is_one_line_of_the_error() -> None:
    agreement = Agreement(anchors=84, boxes=10, worst_iou=0.5, worst_score_delta=0.25)
    problems = export_problems(0.61, 0.2, agreement, TOLERANCE)
    assert problems == [
        "mAP50 0.2000 (onnx) vs 0.6100 (torch): |difference| 0.4100 > 0.005",
        "class scores differ by up to 0.25 > 0.001",
        "boxes overlap their PyTorch twins with IoU down to 0.5000 < 0.99",
    ]
    with pytest.raises(
        ExportCheckError,
        match=r"^the ONNX export does not match the PyTorch model on the test split \(8 images\): mAP50 0.2000 \(onnx\) vs 0.6100",
    ) as info:
        raise_for(problems, images=8, split="test")
    assert info.value.exit_code == 1 and "nothing was packaged" in info.value.hint
    raise_for([], images=8, split="test")  # no problems: no error


def test_a_map_difference_within_the_tolerance_passes() -> None:
    assert export_problems(0.600, 0.6049, Agreement(), TOLERANCE) == []
    assert export_problems(None, None, Agreement(), TOLERANCE) == []  # no ground truth: the boxes decide


def detections(*found: tuple[float, float, float, float, float, int]) -> Detections:
    rows = np.array(found, dtype=np.float64).reshape(-1, 6)
    return Detections(boxes=rows[:, :4], scores=rows[:, 4], classes=rows[:, 5].astype(int))


def test_detections_differing_counts_detections_without_a_twin_on_either_side() -> None:
    a = BackendRun(detections=[detections((0, 0, 10, 10, 0.9, 0), (20, 20, 30, 30, 0.8, 1), (40, 40, 50, 50, 0.1, 0))])
    b = BackendRun(detections=[detections((0, 0, 10, 11, 0.9, 0), (20, 20, 30, 30, 0.8, 0))])  # second box: other class
    # at conf 0.25: a has 2, b has 2; the first pair matches, a's second and b's second do not
    assert detections_differing(a, b, 0.25) == 2 / 4
    assert detections_differing(BackendRun(detections=[detections()]), BackendRun(detections=[detections()]), 0.25) == 0.0
