"""Box maths: known values, round trips (hypothesis), clipping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from skyops.data.boxes import (
    as_boxes,
    clip_xyxy,
    positive_area,
    xywh_to_xyxy,
    xywh_to_yolo,
    xyxy_to_xywh,
    xyxy_to_yolo,
    yolo_to_xywh,
    yolo_to_xyxy,
)

sizes = st.integers(min_value=1, max_value=8000)
coordinate = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)
extent = st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False)


@st.composite
def xywh_boxes(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(min_value=0, max_value=20))
    corners = draw(arrays(np.float64, (n, 2), elements=coordinate))
    extents = draw(arrays(np.float64, (n, 2), elements=extent))
    return np.hstack([corners, extents])


def test_known_values() -> None:
    xywh = np.array([[10.0, 20.0, 30.0, 40.0]])
    np.testing.assert_array_equal(xywh_to_xyxy(xywh), [[10, 20, 40, 60]])
    np.testing.assert_allclose(xywh_to_yolo(xywh, 100, 200), [[0.25, 0.2, 0.3, 0.2]])
    np.testing.assert_allclose(yolo_to_xyxy([[0.5, 0.5, 1.0, 1.0]], 64, 48), [[0, 0, 64, 48]])


@settings(max_examples=200, deadline=None)
@given(boxes=xywh_boxes())
def test_xywh_xyxy_round_trip(boxes: np.ndarray) -> None:
    np.testing.assert_allclose(xyxy_to_xywh(xywh_to_xyxy(boxes)), boxes, rtol=0, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(boxes=xywh_boxes(), width=sizes, height=sizes)
def test_yolo_round_trips(boxes: np.ndarray, width: int, height: int) -> None:
    xyxy = xywh_to_xyxy(boxes)
    np.testing.assert_allclose(yolo_to_xyxy(xyxy_to_yolo(xyxy, width, height), width, height), xyxy, rtol=0, atol=1e-6)
    np.testing.assert_allclose(yolo_to_xywh(xywh_to_yolo(boxes, width, height), width, height), boxes, rtol=0, atol=1e-6)
    yolo = xyxy_to_yolo(xyxy, width, height)
    np.testing.assert_allclose(xyxy_to_yolo(yolo_to_xyxy(yolo, width, height), width, height), yolo, rtol=0, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(boxes=xywh_boxes(), width=sizes, height=sizes)
def test_clip_keeps_boxes_inside_and_flags_changes(boxes: np.ndarray, width: int, height: int) -> None:
    xyxy = xywh_to_xyxy(boxes)
    clipped, changed = clip_xyxy(xyxy, width, height)
    assert (clipped[:, [0, 2]] >= 0).all() and (clipped[:, [0, 2]] <= width).all()
    assert (clipped[:, [1, 3]] >= 0).all() and (clipped[:, [1, 3]] <= height).all()
    inside = (xyxy[:, :2] >= 0).all(axis=1) & (xyxy[:, 2] <= width) & (xyxy[:, 3] <= height)
    np.testing.assert_array_equal(changed, ~inside)
    np.testing.assert_array_equal(clipped[inside], xyxy[inside])  # boxes inside are untouched


@settings(max_examples=100, deadline=None)
@given(boxes=xywh_boxes(), width=sizes, height=sizes)
def test_per_box_sizes_match_one_call_per_image(boxes: np.ndarray, width: int, height: int) -> None:
    """Sizes given per box (many images in one call) equal scalar calls, box by box."""
    xyxy = xywh_to_xyxy(boxes)
    widths = np.where(np.arange(len(xyxy)) % 2 == 0, width, width + 7).astype(np.float64)
    heights = np.full(len(xyxy), float(height))
    together, _ = clip_xyxy(xyxy, widths, heights)
    for i in range(len(xyxy)):
        alone, _ = clip_xyxy(xyxy[i : i + 1], widths[i], heights[i])
        np.testing.assert_array_equal(together[i : i + 1], alone)
        np.testing.assert_allclose(xyxy_to_yolo(xyxy, widths, heights)[i : i + 1], xyxy_to_yolo(xyxy[i : i + 1], widths[i], heights[i]))


def test_clip_collapses_outside_boxes_to_zero_area() -> None:
    xyxy = np.array([[-10.0, -10.0, -2.0, 5.0], [60.0, 10.0, 70.0, 20.0], [1.0, 1.0, 2.0, 2.0], [5.0, 5.0, 5.0, 9.0]])
    clipped, changed = clip_xyxy(xyxy, 64, 48)
    np.testing.assert_array_equal(clipped[1], [60, 10, 64, 20])
    np.testing.assert_array_equal(changed, [True, True, False, False])
    np.testing.assert_array_equal(positive_area(clipped), [False, True, True, False])


def test_empty_input_and_bad_shape() -> None:
    assert xywh_to_yolo([], 10, 10).shape == (0, 4)
    assert clip_xyxy(np.zeros((0, 4)), 10, 10)[1].shape == (0,)
    with pytest.raises(ValueError, match=r"expected boxes of shape \(N, 4\), got \(2, 3\)"):
        as_boxes(np.zeros((2, 3)))
