"""The operating-point views: per-image errors, the worst images, the confusion matrix."""

from __future__ import annotations

import numpy as np

from skyops.evaluation.mistakes import confusion_matrix, image_errors, worst_images

from .conftest import scored

A = (10.0, 10.0, 60.0, 60.0)
B = (100.0, 100.0, 160.0, 160.0)
C = (300.0, 300.0, 360.0, 360.0)
NEAR_A = (12.0, 12.0, 62.0, 62.0)  # IoU with A about 0.85


def test_image_errors_count_at_the_operating_point() -> None:
    image = scored(
        [(0, *A), (1, *B), (0, *C)],
        [(0, 0.9, *NEAR_A), (0, 0.8, *B), (1, 0.7, *C), (0, 0.1, *C)],  # a hit, a wrong class, a wrong class, a hit below 0.25
    )
    errors = image_errors(image, conf=0.25)
    assert errors.counts == (1, 2, 2)  # TP, FP, FN
    assert errors.f1 == 2 * 1 / (2 * 1 + 2 + 2)
    assert errors.matched_gt.tolist() == [True, False, False]
    assert errors.tp.tolist() == [True, False, False, False] and errors.kept.tolist() == [True, True, True, False]
    assert image_errors(image, conf=0.05).counts == (2, 2, 1)  # the low-confidence hit now counts


def test_a_box_is_found_once_even_by_two_predictions() -> None:
    errors = image_errors(scored([(0, *A)], [(0, 0.9, *A), (0, 0.8, *NEAR_A)]))
    assert errors.counts == (1, 1, 0)


def test_worst_images_have_the_lowest_f1_and_skip_images_with_nothing_to_judge() -> None:
    perfect = scored([(0, *A)], [(0, 0.9, *A)], name="perfect.png")
    missed = scored([(0, *A), (0, *B)], [], name="missed-two.png")  # F1 0, 2 errors
    alarm = scored([], [(0, 0.9, *A)], name="false-alarm.png")  # F1 0, 1 error
    half = scored([(0, *A), (0, *B)], [(0, 0.9, *A)], name="half.png")  # F1 2/3
    empty = scored([], [(0, 0.1, *A)], name="empty.png")  # nothing at the operating point
    found = worst_images([image_errors(i) for i in (perfect, missed, alarm, half, empty)], 3)
    assert [e.image.name for e in found] == ["missed-two.png", "false-alarm.png", "half.png"]
    assert found[0].to_json() == {"image": "missed-two.png", "f1": 0.0, "tp": 0, "fp": 0, "fn": 2, "instances": 2}
    assert image_errors(empty).f1 is None


def test_confusion_matrix_rows_are_the_truth_and_background_is_last() -> None:
    images = [
        scored(
            [(0, *A), (1, *B), (0, *C)],
            [(0, 0.9, *NEAR_A), (0, 0.8, *B), (1, 0.6, 400.0, 10.0, 450.0, 60.0), (1, 0.1, *C)],
        )
    ]
    matrix = confusion_matrix(images, 2, conf=0.25, iou=0.45)
    assert matrix.tolist() == [
        [1, 0, 1],  # car: once seen as car, once missed (C's only prediction is below the confidence)
        [1, 0, 0],  # person: seen as car
        [0, 1, 0],  # background: one false person
    ]
    assert matrix.sum(axis=1)[:2].tolist() == [2, 1]  # every true box is counted once


def test_confusion_matrix_takes_the_highest_iou_first() -> None:
    # two predictions on A: the tighter one (class 1) takes it, the other becomes a false alarm
    images = [scored([(0, *A)], [(0, 0.9, 14.0, 14.0, 64.0, 64.0), (1, 0.5, *A)])]
    assert confusion_matrix(images, 2).tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 0]]
    assert np.asarray(confusion_matrix([], 2)).sum() == 0
