"""Sliced inference: windows that cover the frame, boxes mapped back exactly, pieces merged into one object, the limit."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyops.serving.detect import Detections, letterbox, postprocess
from skyops.serving.sliced import MergeKind, SliceLimitError, SliceSettings, detect_sliced, merge, slice_count, slice_windows

NC = 2  # classes of the fake network


def white_boxes_network(blob: np.ndarray) -> np.ndarray:
    """A stand-in network with a known answer: one box per white blob, class 0 (1 when it is wider than tall).

    Returns the raw (4 + NC, N) head in letterboxed pixels, as the model does; the score grows with the
    blob's area, so a whole object beats a piece of it.
    """
    white = (blob[0].min(axis=0) > 0.9).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(white, connectivity=4)
    raw = np.zeros((4 + NC, max(count - 1, 0)), np.float32)
    for i, (x, y, w, h, area) in enumerate(stats[1:]):
        raw[:4, i] = (x + w / 2, y + h / 2, w, h)
        raw[4 + int(w > h), i] = min(0.99, 0.5 + area / 1e5)
    return raw


@given(width=st.integers(32, 900), height=st.integers(32, 900), size=st.sampled_from([32, 64, 128, 256]), overlap=st.floats(0, 0.75))
@settings(max_examples=200, deadline=None)
def test_windows_cover_the_frame_and_overlap_as_asked(width: int, height: int, size: int, overlap: float) -> None:
    windows = slice_windows(width, height, SliceSettings(size=size, overlap=overlap, max_slices=100_000))
    assert len(windows) == slice_count(width, height, size, overlap)
    covered = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in windows:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert x1 - x0 == min(size, width) and y1 - y0 == min(size, height)  # never a sliver: the last window is flush with the edge
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    shared = size - max(1, size - round(size * overlap))
    xs = sorted({int(x) for x in windows[:, 0]})
    for a, b in itertools.pairwise(xs[:-1]):  # neighbours before the flush last one share exactly the overlap
        assert a + size - b == shared
    if len(xs) > 1:
        assert xs[-2] + size - xs[-1] >= shared  # the last one shares at least that


def test_a_huge_image_is_refused_in_one_line_not_sliced() -> None:
    with pytest.raises(SliceLimitError, match=r"^a 20000x20000 image makes 9604 slices of 256 px at overlap 0.2, over the limit of 400$"):
        slice_windows(20000, 20000, SliceSettings(size=256))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"size": 16}, r"size=16: expected 0 \(off\) or at least 32 px"),
        ({"size": 256, "overlap": 0.9}, r"overlap=0.9: expected a fraction in \[0, 0.75\]"),
        ({"size": 256, "match": 0.0}, r"match=0.0: expected a number in \(0, 1\]"),
    ],
)
def test_bad_settings_are_named(given: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SliceSettings(**given)  # type: ignore[arg-type]


# Frame 600 x 500; windows of 128 px at overlap 0.25 (32 px shared) start at x 0, 96, 192, 288, 384, 472.
RECTS = [
    (10, 10, 30, 20),  # inside the first window only
    (100, 40, 150, 52),  # crosses x=128 (window 0's edge) but lies whole in window 1
    (80, 200, 150, 212),  # 70 px wide: no window holds it whole; windows 0 and 1 see pieces 80-128 and 96-150
    (560, 470, 600, 500),  # in the far corner, flush with both edges
    (300, 300, 308, 340),  # taller than wide: class 0
]


def frame_with_rects() -> np.ndarray:
    image = np.zeros((500, 600, 3), np.uint8)
    for x0, y0, x1, y1 in RECTS:
        image[y0:y1, x0:x1] = 255
    return image


def sliced(kind: MergeKind, full_frame: bool = False) -> Detections:
    found = detect_sliced(
        frame_with_rects(),
        white_boxes_network,
        128,
        SliceSettings(size=128, overlap=0.25, merge=kind, full_frame=full_frame),
        conf=0.1,
        iou=0.7,
        max_det=100,
    )
    assert found.slices == 30 and found.runs == 30 + full_frame
    return found.detections


def as_set(found: Detections) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in box) for box in np.round(found.boxes).tolist()}


def test_boxes_come_back_exactly_and_a_cut_object_as_one() -> None:
    found = sliced(MergeKind.NMM)
    assert len(found.scores) == len(RECTS)
    assert as_set(found) == set(RECTS)
    assert np.array_equal(found.boxes, np.round(found.boxes))  # windows of the input size are not resized: exact pixels
    assert sorted(found.classes.tolist()) == [0, 1, 1, 1, 1]


def test_nms_keeps_the_best_piece_and_nmm_the_whole() -> None:
    nms = as_set(sliced(MergeKind.NMS))
    assert (100, 40, 150, 52) in nms  # the whole object beat its piece (higher score)
    assert (80, 200, 150, 212) not in nms  # no window saw it whole: NMS keeps one piece ...
    assert (96, 200, 150, 212) in nms  # ... the larger one
    assert len(nms) == len(RECTS)


def best_iou(found: Detections, truth: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = truth
    b = found.boxes
    inter = (np.minimum(b[:, 2], x1) - np.maximum(b[:, 0], x0)).clip(0) * (np.minimum(b[:, 3], y1) - np.maximum(b[:, 1], y0)).clip(0)
    union = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) + (x1 - x0) * (y1 - y0) - inter
    return float((inter / union).max())


def test_the_full_frame_pass_finds_what_no_window_holds() -> None:
    image = np.zeros((256, 256, 3), np.uint8)
    image[20:220, 30:230] = 255  # 200 px: larger than any 64 px window
    with_full = detect_sliced(image, white_boxes_network, 64, SliceSettings(size=64, overlap=0.2), conf=0.1, iou=0.7, max_det=100)
    alone = detect_sliced(
        image, white_boxes_network, 64, SliceSettings(size=64, overlap=0.2, full_frame=False), conf=0.1, iou=0.7, max_det=100
    )
    assert with_full.runs == alone.runs + 1 == 26
    assert best_iou(with_full.detections, (30, 20, 230, 220)) > 0.95  # letterboxed 4x down: within a few px
    assert best_iou(alone.detections, (30, 20, 230, 220)) < 0.5  # windows only ever see pieces


def test_a_small_box_is_not_merged_into_a_large_weak_one_around_it() -> None:
    car = [100.0, 100.0, 111.0, 111.0]
    around = [0.0, 0.0, 1536.0, 1536.0]  # a weak box the whole frame wide: IoS 1.0 with the car
    piece = [105.0, 100.0, 118.0, 111.0]  # the same car's piece from the next window
    found = Detections(np.array([car, around, piece], np.float32), np.array([0.9, 0.01, 0.5], np.float32), np.zeros(3, np.int64))
    for kind in MergeKind:
        merged = merge(found, kind, 0.5, 100)
        grown = [100.0, 100.0, 118.0, 111.0] if kind is MergeKind.NMM else car  # with its piece only
        assert merged.boxes.tolist() == [grown, around]  # the large box is another object, kept behind it


def test_merge_keeps_classes_apart_and_caps_the_count() -> None:
    boxes = np.array([[0, 0, 10, 10], [3, 0, 20, 10], [0, 0, 10, 10], [100, 100, 110, 110]], np.float32)  # IoS of the first two: 0.7
    found = Detections(boxes, np.array([0.9, 0.8, 0.7, 0.6], np.float32), np.array([0, 0, 1, 0]))
    merged = merge(found, MergeKind.NMM, 0.5, 100)
    assert merged.boxes.tolist() == [[0, 0, 20, 10], [0, 0, 10, 10], [100, 100, 110, 110]]
    assert merged.classes.tolist() == [0, 1, 0]
    assert merge(found, MergeKind.NMS, 0.5, 100).boxes.tolist() == [[0, 0, 10, 10], [0, 0, 10, 10], [100, 100, 110, 110]]
    assert len(merge(found, MergeKind.NMM, 0.5, 2).scores) == 2


def test_slicing_off_is_the_unsliced_answer(model_dir: object) -> None:
    """With size 0 the real model answers exactly what an unsliced request answers."""
    from pathlib import Path

    from skyops.serving.backends import load_backend
    from skyops.serving.model import BackendName, read_model_info

    info = read_model_info(Path(str(model_dir)))
    backend = load_backend(info, BackendName.ONNX, threads=1, state_dir=Path("/nonexistent"))
    image = cv2.resize(frame_with_rects(), (400, 300))
    image[::7] = 90
    blob, box = letterbox(image, info.imgsz)
    plain = postprocess(backend.infer(blob), box, conf=0.001, iou=0.45, max_det=300)
    found = detect_sliced(image, backend.infer, info.imgsz, SliceSettings(size=0), conf=0.001, iou=0.45, max_det=300)
    assert found.slices == 0 and found.runs == 1
    assert len(plain.scores) > 0
    np.testing.assert_array_equal(found.detections.scores, plain.scores)
    np.testing.assert_array_equal(found.detections.boxes, plain.boxes)


def test_the_evaluate_steps_section_runs_the_real_model_both_ways(package: object, tmp_path: object) -> None:
    """The evaluate step's `sliced` section on two real scenes with the tiny model's best.pt: valid, both sides scored."""
    from pathlib import Path

    from skyops.steps.evaluate.sliced import sliced_section
    from skyops.training.evaluation_doc import validate_evaluation
    from tests.steps.conftest import evaluation_document

    scenes = Path(str(package)) / "scenes"
    found = sliced_section(
        Path(str(package)) / "model" / "best.pt",
        scenes,
        ["images/scene_000000.jpg", "images/scene_000001.jpg"],
        4,
        imgsz=256,
        conf=0.001,
        iou=0.7,
        size=128,
        overlap=0.2,
        merge="nmm",
        state_dir=Path(str(tmp_path)) / "state",
    )
    assert found["images"] == 2
    assert found["sliced"]["runs_per_image"] == 10  # 3 x 3 windows of 128 px in a 256 px scene, and the full frame
    for side in ("full_frame", "sliced"):
        assert found[side]["ap50"] is not None and 0 <= found[side]["ap50"] <= 1
        assert found[side]["ms_per_image"] > 0
    validate_evaluation({**evaluation_document("a" * 64), "sliced": found})
