"""Slices: per-slice AP on hand-made scenes whose answers are known, and the one-pass matcher against one pass per slice."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyops.evaluation.detmetrics import IOU_THRESHOLDS, SIZE_SLICES, box_iou, match_predictions, match_predictions_masks, slice_metrics
from skyops.evaluation.slices import compare_slices, neighbours, region_of, slice_table, to_json, weakest_slice

from .conftest import scored

# Ultralytics' AP of a perfect detector (its curve falls to 0 after the last recall; trapezoid rule).
PERFECT = 0.995
# One false positive ranked above the only true positive: precision 0.5 on the whole curve.
FP_FIRST = 0.4975
NAMES = ["car", "person"]

CENTRE = (280.0, 280.0, 320.0, 320.0)  # 40 x 40 px in the middle of a 600 x 600 image
CORNER = (10.0, 10.0, 50.0, 50.0)
EDGE = (280.0, 10.0, 320.0, 50.0)  # top middle cell
FAR = (500.0, 300.0, 540.0, 340.0)  # overlaps none of the above


def ap(table: dict, family: str, name: str) -> float | None:
    return table[family][name].map50_95


def test_region_slices_score_where_the_boxes_are() -> None:
    # centre found, corner missed; the edge cell has no ground truth
    image = scored([(0, *CENTRE), (0, *CORNER)], [(0, 0.9, *CENTRE)])
    table = slice_table([image], NAMES)
    assert ap(table, "region", "centre") == pytest.approx(PERFECT)
    assert ap(table, "region", "corner") == 0.0
    assert ap(table, "region", "edge") is None
    assert (table["region"]["centre"].instances, table["region"]["corner"].instances, table["region"]["edge"].instances) == (1, 1, 0)


def test_a_false_alarm_counts_only_in_the_slice_it_lies_in() -> None:
    # a confident false alarm in an edge cell ranks above the centre's true positive: only the edge pays
    image = scored([(0, *CENTRE), (0, *CORNER)], [(0, 0.95, *EDGE), (0, 0.9, *CENTRE), (0, 0.8, *CORNER)])
    table = slice_table([image], NAMES)
    assert ap(table, "region", "centre") == pytest.approx(PERFECT)
    assert ap(table, "region", "corner") == pytest.approx(PERFECT)
    assert table["region"]["edge"].map50 is None  # no ground truth there: nothing to score, the FP has no recall to spoil


def test_brightness_slices_split_by_image() -> None:
    dark = scored([(0, *CENTRE)], [(0, 0.9, *CENTRE)], brightness=40.0, name="dark.png")
    bright = scored([(0, *CENTRE)], [], brightness=200.0, name="bright.png")
    table = slice_table([dark, bright], NAMES)
    assert ap(table, "brightness", "dark") == pytest.approx(PERFECT)
    assert ap(table, "brightness", "bright") == 0.0
    assert ap(table, "brightness", "normal") is None
    assert [table["brightness"][b].images for b in ("dark", "normal", "bright")] == [1, 0, 1]


@pytest.mark.parametrize(("level", "band"), [(84.99, "dark"), (85.0, "normal"), (169.99, "normal"), (170.0, "bright")])
def test_brightness_bands_are_half_open(level: float, band: str) -> None:
    table = slice_table([scored([(0, *CENTRE)], [(0, 0.9, *CENTRE)], brightness=level)], NAMES)
    assert [name for name, s in table["brightness"].items() if s.instances] == [band]


def test_crowding_slices_count_touching_neighbours() -> None:
    lone = (0, 500.0, 500.0, 520.0, 520.0)
    crowd = [(0, 100.0 + 22 * i, 100.0, 120.0 + 22 * i, 120.0) for i in range(6)]  # a row of 20 px boxes, 2 px apart
    preds = [(0, 0.9, *lone[1:])]  # the lone car is found, the parked row is missed
    table = slice_table([scored([lone, *crowd], preds)], NAMES)
    assert neighbours(np.array([g[1:] for g in crowd]), np.array([g[1:] for g in crowd]), same=True).tolist() == [1, 2, 2, 2, 2, 1]
    assert ap(table, "crowding", "isolated") == pytest.approx(PERFECT)
    assert ap(table, "crowding", "group") == 0.0  # one or two neighbours each: a group, not yet a crowd
    assert table["crowding"]["group"].instances == 6 and table["crowding"]["crowd"].instances == 0


def test_crowd_needs_four_neighbours() -> None:
    centre = (0, 300.0, 300.0, 320.0, 320.0)
    around = [(0, 300.0 + dx, 300.0 + dy, 320.0 + dx, 320.0 + dy) for dx, dy in ((22, 0), (-22, 0), (0, 22), (0, -22))]
    table = slice_table([scored([centre, *around], [])], NAMES)
    assert table["crowding"]["crowd"].instances == 1  # the middle box touches all four
    assert table["crowding"]["group"].instances == 4  # each outer box touches only the middle one


def test_size_family_equals_the_size_slices_of_detmetrics() -> None:
    rng = np.random.default_rng(3)
    images = []
    for _ in range(12):
        gt = [(int(rng.integers(0, 2)), *_box(rng)) for _ in range(int(rng.integers(0, 8)))]
        hits = [(c, float(rng.random()), *(np.array(b) + rng.normal(0, 3, 4))) for c, *b in gt if rng.random() < 0.7]
        strays = [(int(rng.integers(0, 2)), float(rng.random()), *_box(rng)) for _ in range(int(rng.integers(0, 4)))]
        images.append(scored(gt, hits + strays))
    table = slice_table(images, NAMES)
    for name, area in SIZE_SLICES.items():
        reference = slice_metrics([i.boxes for i in images], area)
        assert table["size"][name].instances == reference.instances
        assert table["size"][name].map50_95 == reference.map50_95  # the same computation, to the bit
    overall = slice_metrics([i.boxes for i in images])
    for k, class_id in enumerate(overall.classes):
        assert table["class"][NAMES[class_id]].map50 == pytest.approx(overall.ap[k, 0], abs=1e-12)


def _box(rng: np.random.Generator) -> tuple[float, float, float, float]:
    x, y = rng.uniform(0, 450, 2)
    w, h = rng.uniform(8, 150, 2)
    return float(x), float(y), float(x + w), float(y + h)


def test_class_slices_are_each_class_s_ap_and_a_class_without_ground_truth_has_none() -> None:
    image = scored([(0, *CENTRE), (0, *CORNER)], [(0, 0.9, *CENTRE), (1, 0.8, *FAR)])
    table = slice_table([image], NAMES)
    assert table["class"]["car"].map50 == pytest.approx(0.5, abs=0.006)  # half the cars at precision 1: AP about 0.5
    assert table["class"]["person"].map50 is None and table["class"]["person"].instances == 0


def test_occlusion_and_truncation_slices_from_the_dataset_attributes() -> None:
    image = scored([(0, *CENTRE), (0, *CORNER)], [(0, 0.9, *CENTRE)], attributes=[(0, 2), (1, 0)])
    table = slice_table([image], NAMES, ("truncation", "occlusion"))
    assert ap(table, "occlusion", "heavy") == pytest.approx(PERFECT)  # the heavily occluded centre box was found
    assert ap(table, "occlusion", "none") == 0.0  # the corner box was missed
    assert ap(table, "occlusion", "partial") is None
    assert ap(table, "truncation", "none") == pytest.approx(PERFECT)
    assert ap(table, "truncation", "partial") == 0.0


def test_a_background_false_alarm_counts_in_every_occlusion_slice() -> None:
    image = scored([(0, *CENTRE), (0, *CORNER)], [(0, 0.95, *FAR), (0, 0.9, *CENTRE), (0, 0.8, *CORNER)], attributes=[(0, 2), (0, 0)])
    table = slice_table([image], NAMES, ("truncation", "occlusion"))
    assert ap(table, "occlusion", "heavy") == pytest.approx(FP_FIRST)
    assert ap(table, "occlusion", "none") == pytest.approx(FP_FIRST)


def test_a_false_alarm_on_an_object_counts_in_that_object_s_slice_only() -> None:
    # a confident, badly placed car box on the heavily occluded car (IoU 0.14): a false positive of heavy occlusion only
    shifted = (300.0, 300.0, 340.0, 340.0)
    image = scored([(0, *CENTRE), (0, *CORNER)], [(0, 0.95, *shifted), (0, 0.9, *CENTRE), (0, 0.8, *CORNER)], attributes=[(0, 2), (0, 0)])
    table = slice_table([image], NAMES, ("truncation", "occlusion"))
    assert ap(table, "occlusion", "heavy") == pytest.approx(FP_FIRST)
    assert ap(table, "occlusion", "none") == pytest.approx(PERFECT)


def test_unknown_attributes_are_ignored_and_an_image_without_them_takes_no_part() -> None:
    known = scored([(0, *CENTRE), (0, *CORNER)], [(0, 0.9, *CENTRE)], attributes=[(0, 0), (-1, -1)], name="known.png")
    unknown = scored([(0, *CENTRE)], [(0, 0.99, *FAR)], name="unknown.png")  # no attributes at all: its false alarm is not counted
    table = slice_table([known, unknown], NAMES, ("truncation", "occlusion"))
    assert table["occlusion"]["none"].instances == 1
    assert ap(table, "occlusion", "none") == pytest.approx(PERFECT)  # the missed corner box's level is unknown: ignored
    assert sum(s.instances for s in table["occlusion"].values()) == 1


def test_no_attribute_families_without_attributes() -> None:
    table = slice_table([scored([(0, *CENTRE)], [(0, 0.9, *CENTRE)])], NAMES, ("truncation", "occlusion"))
    assert list(table) == ["size", "class", "brightness", "region", "crowding"]


def test_no_images_give_empty_slices() -> None:
    table = to_json(slice_table([], NAMES))
    assert table["size"]["small"] == {"map50": None, "map50_95": None, "instances": 0, "images": 0}
    assert table["class"]["car"] == {"map50": None, "map50_95": None, "instances": 0, "images": 0}


def test_region_of_uses_a_three_by_three_grid() -> None:
    boxes = np.array([CENTRE, CORNER, EDGE, (590.0, 290.0, 600.0, 310.0)])
    assert region_of(boxes, (600, 600)).tolist() == [0, 2, 1, 1]


def test_weakest_slice_needs_enough_boxes() -> None:
    slices = {
        "size": {"small": {"map50": 0.1, "map50_95": 0.05, "instances": 4}, "medium": {"map50": 0.6, "map50_95": 0.3, "instances": 40}},
        "class": {"car": {"map50": 0.5, "map50_95": 0.25, "instances": 44}, "bus": {"map50": None, "map50_95": None, "instances": 0}},
    }
    assert weakest_slice(slices, 5) == {"family": "class", "name": "car", "map50": 0.5, "map50_95": 0.25, "instances": 44}
    assert weakest_slice(slices, 4)["name"] == "small"
    assert weakest_slice(slices, 100) is None


def test_compare_slices_finds_the_worst_delta_among_slices_with_enough_boxes() -> None:
    ours = {"size": {"small": _entry(0.10, 50), "medium": _entry(0.40, 50), "large": _entry(0.10, 3)}, "class": {"car": _entry(0.3, 100)}}
    theirs = {"size": {"small": _entry(0.16, 50), "medium": _entry(0.35, 50), "large": _entry(0.60, 3)}, "class": {"car": _entry(0.3, 100)}}
    found = compare_slices(ours, theirs, min_instances=10)
    assert found["compared"] == 3  # large has 3 boxes: too few (its -0.5 is noise)
    assert found["worst"] == pytest.approx(
        {"family": "size", "name": "small", "challenger": 0.10, "champion": 0.16, "delta": -0.06, "instances": 50}
    )
    assert found["delta"]["size"] == pytest.approx({"small": -0.06, "medium": 0.05})
    assert found["delta"]["class"] == {"car": 0.0}


def _entry(map50_95: float, instances: int) -> dict[str, float | int]:
    return {"map50": min(1.0, 2 * map50_95), "map50_95": map50_95, "instances": instances, "images": 1}


# --- the one-pass matcher against the plain per-prediction loop, mask by mask --------------------


def reference_match(iou: np.ndarray, gt_ignore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy rule written out plainly: per threshold, per prediction in order, the best unclaimed kept box, else ignored box."""
    m, n = iou.shape
    tp = np.zeros((n, len(IOU_THRESHOLDS)), dtype=bool)
    hit = np.zeros_like(tp)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        claimed = np.zeros(m, dtype=bool)
        for j in range(n):
            for pool, out in ((~gt_ignore, tp), (gt_ignore, hit)):
                candidates = [(iou[i, j], i) for i in range(m) if pool[i] and not claimed[i]]
                if not out[j, t] and not tp[j, t] and not hit[j, t] and candidates:
                    best_iou, best = max(candidates, key=lambda c: (c[0], -c[1]))
                    if best_iou >= threshold:
                        out[j, t] = claimed[best] = True
    return tp, hit


coordinate = st.floats(min_value=0, max_value=100, allow_nan=False)
box = st.tuples(coordinate, coordinate, st.floats(5, 60), st.floats(5, 60)).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))


@settings(max_examples=60, deadline=None)
@given(
    gt=st.lists(box, min_size=1, max_size=6),
    preds=st.lists(box, min_size=1, max_size=8),
    masks=st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=5),
)
def test_masks_at_once_equal_the_plain_loop_for_each_mask(gt: list, preds: list, masks: list) -> None:
    iou = box_iou(np.array(gt, dtype=float), np.array(preds, dtype=float))
    ignore = np.array([m[: len(gt)] for m in masks], dtype=bool)
    tp, hit = match_predictions_masks(iou, ignore)
    assert tp.shape == hit.shape == (len(masks), len(preds), len(IOU_THRESHOLDS))
    for s, mask in enumerate(ignore):
        want_tp, want_hit = reference_match(iou, mask)
        assert (tp[s] == want_tp).all() and (hit[s] == want_hit).all()
        single_tp, single_hit = match_predictions(iou, mask)
        assert (single_tp == want_tp).all() and (single_hit == want_hit).all()
