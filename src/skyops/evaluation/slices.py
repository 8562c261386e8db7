"""mAP per slice of the evaluated data: where a detector is weak, not only how good it is on average.

Families of slices (each slice gets mAP50, mAP50-95, its ground-truth boxes and images):

    size        COCO's small / medium / large on box area in original pixels (half-open, see detmetrics)
    class       one slice per class (the class's AP)
    brightness  the image's mean gray level: dark < 85 <= normal < 170 <= bright
    region      where the box centre lies on a 3x3 grid of the image: centre cell, edge cells, corner cells
    crowding    other ground-truth boxes touching the box grown by half its width and height on each
                side: isolated 0, group 1-3, crowd 4 or more
    occlusion   VisDrone's occlusion level (none, partial 1-50 %, heavy 50-100 %), when the dataset keeps it
    truncation  VisDrone's truncation level (none, partial 1-50 %), when the dataset keeps it

A slice is scored with the rules of COCO's area ranges, generalised (docs/evaluation-schema.md):
ground truth outside the slice is an ignore region; a prediction matched to it is dropped; an
unmatched prediction is a false positive only in the slice it belongs to. A prediction belongs to a
slice by its own box for size and region, by its image for brightness; for what only ground truth
has (crowding, occlusion, truncation) it takes the slice of the ground-truth box it overlaps most
(IoU > 0, any class); one that overlaps none is counted by its own neighbourhood for crowding, and is
a false positive in every slice for occlusion and truncation (a false alarm on background has no
occlusion level to excuse it).

All slices are matched in one pass over each image's predictions (`detmetrics.match_predictions_masks`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyops.evaluation.detmetrics import IOU_THRESHOLDS, SIZE_SLICES, ap_per_class, box_area, box_iou, match_predictions_masks
from skyops.evaluation.scored import ScoredImage

NOWHERE = -1  # in no slice of the family: ground truth is ignored everywhere, a prediction dropped everywhere
EVERY = -2  # a prediction that counts in every slice of the family (unmatched: a false positive in each)

SIZE_EDGES = np.array([hi for _, hi in SIZE_SLICES.values()][:-1])  # (2,) px²: 32², 96²
BRIGHTNESS_BANDS = ("dark", "normal", "bright")
BRIGHTNESS_EDGES = np.array([85.0, 170.0])  # mean gray level, thirds of 0-255
REGIONS = ("centre", "edge", "corner")
CROWDING = ("isolated", "group", "crowd")
CROWDING_EDGES = np.array([1, 4])  # neighbours: 0, 1-3, 4+
# Box attributes a dataset may carry (skyops.data.attributes), with the name of each level.
ATTRIBUTE_LEVELS: dict[str, tuple[str, ...]] = {"occlusion": ("none", "partial", "heavy"), "truncation": ("none", "partial")}
FAMILY_ORDER = ("size", "class", "brightness", "region", "crowding", *ATTRIBUTE_LEVELS)


@dataclass(frozen=True, kw_only=True)
class SliceResult:
    map50: float | None  # None: no ground truth in the slice
    map50_95: float | None
    instances: int  # ground-truth boxes in the slice
    images: int  # images with at least one of them

    def to_json(self) -> dict[str, Any]:
        return {"map50": self.map50, "map50_95": self.map50_95, "instances": self.instances, "images": self.images}


@dataclass(frozen=True)
class _Image:
    """An image with what every family needs: the ground-truth box each prediction overlaps most."""

    scored: ScoredImage
    nearest: np.ndarray  # (N,) row of gt_xyxy with the highest IoU (any class), NOWHERE when it overlaps none

    @classmethod
    def of(cls, scored: ScoredImage) -> _Image:
        n, m = len(scored.pred_xyxy), len(scored.gt_xyxy)
        nearest = np.full(n, NOWHERE)
        if n and m:
            iou = box_iou(scored.pred_xyxy, scored.gt_xyxy)  # (N, M)
            nearest = np.where(iou.max(axis=1) > 0, iou.argmax(axis=1), NOWHERE)
        return cls(scored, nearest)

    def borrowed(self, gt_labels: np.ndarray, background: np.ndarray | int) -> np.ndarray:
        """(N,) each prediction's slice: that of the ground truth it overlaps most, else `background`."""
        found = gt_labels[np.maximum(self.nearest, 0)] if len(gt_labels) else np.full(len(self.nearest), NOWHERE)
        return np.where(self.nearest >= 0, found, background)


@dataclass(frozen=True)
class Family:
    """A way of slicing: its slice names and, per image, the slice of every ground-truth box and prediction."""

    name: str
    slices: tuple[str, ...]
    labels: Callable[[_Image], tuple[np.ndarray, np.ndarray]]  # -> (M,), (N,): slice index, NOWHERE or EVERY


def _size(image: _Image) -> tuple[np.ndarray, np.ndarray]:
    s = image.scored
    gt_area = s.boxes.gt_areas if s.boxes.gt_areas is not None else box_area(s.gt_xyxy)
    pred_area = s.boxes.pred_areas if s.boxes.pred_areas is not None else box_area(s.pred_xyxy)
    return np.searchsorted(SIZE_EDGES, gt_area, side="right"), np.searchsorted(SIZE_EDGES, pred_area, side="right")


def _brightness(image: _Image) -> tuple[np.ndarray, np.ndarray]:
    s = image.scored
    band = int(np.searchsorted(BRIGHTNESS_EDGES, s.brightness, side="right"))
    return np.full(len(s.gt_xyxy), band), np.full(len(s.pred_xyxy), band)


def region_of(xyxy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, 4) boxes in pixels of an image of (height, width) -> (N,) index into REGIONS by box centre."""
    height, width = shape
    col = np.clip(((xyxy[:, 0] + xyxy[:, 2]) / 2 / width * 3).astype(int), 0, 2)
    row = np.clip(((xyxy[:, 1] + xyxy[:, 3]) / 2 / height * 3).astype(int), 0, 2)
    return (col != 1).astype(int) + (row != 1)  # 0 centre, 1 edge, 2 corner


def _region(image: _Image) -> tuple[np.ndarray, np.ndarray]:
    s = image.scored
    return region_of(s.gt_xyxy, s.shape), region_of(s.pred_xyxy, s.shape)


def neighbours(boxes: np.ndarray, others: np.ndarray, *, same: bool) -> np.ndarray:
    """(N,) how many of `others` touch each box grown by half its width and height on every side.

    `same`: `others` are `boxes` themselves, so a box is not its own neighbour.
    """
    if not len(boxes) or not len(others):
        return np.zeros(len(boxes), dtype=int)
    half = (boxes[:, 2:] - boxes[:, :2]) / 2  # (N, 2)
    grown = np.concatenate((boxes[:, :2] - half, boxes[:, 2:] + half), axis=1)
    overlap_x = np.minimum(grown[:, None, 2], others[None, :, 2]) - np.maximum(grown[:, None, 0], others[None, :, 0])
    overlap_y = np.minimum(grown[:, None, 3], others[None, :, 3]) - np.maximum(grown[:, None, 1], others[None, :, 1])
    touching = (overlap_x > 0) & (overlap_y > 0)  # (N, M)
    if same:
        np.fill_diagonal(touching, False)
    return touching.sum(axis=1)


def _crowding(image: _Image) -> tuple[np.ndarray, np.ndarray]:
    s = image.scored
    gt = np.searchsorted(CROWDING_EDGES, neighbours(s.gt_xyxy, s.gt_xyxy, same=True), side="right")
    own = np.searchsorted(CROWDING_EDGES, neighbours(s.pred_xyxy, s.gt_xyxy, same=False), side="right")
    return gt, image.borrowed(gt, own)


def _attribute(column: int, levels: int) -> Callable[[_Image], tuple[np.ndarray, np.ndarray]]:
    def labels(image: _Image) -> tuple[np.ndarray, np.ndarray]:
        s = image.scored
        if s.attributes is None:  # nothing known of this image: it takes no part in the family
            return np.full(len(s.gt_xyxy), NOWHERE), np.full(len(s.pred_xyxy), NOWHERE)
        values = s.attributes[:, column]
        gt = np.where((values >= 0) & (values < levels), values, NOWHERE)
        return gt, image.borrowed(gt, EVERY)

    return labels


def families(attribute_columns: Sequence[str] = ()) -> list[Family]:
    """The families sliced by masks (all but `class`, which comes from the per-class AP), in FAMILY_ORDER.

    Args:
        attribute_columns: the columns of ScoredImage.attributes; those named in ATTRIBUTE_LEVELS get a family.
    """
    found = [
        Family("size", tuple(SIZE_SLICES), _size),
        Family("brightness", BRIGHTNESS_BANDS, _brightness),
        Family("region", REGIONS, _region),
        Family("crowding", CROWDING, _crowding),
    ]
    for name, levels in ATTRIBUTE_LEVELS.items():
        if name in attribute_columns:
            found.append(Family(name, levels, _attribute(list(attribute_columns).index(name), len(levels))))
    return found


def slice_table(
    images: Sequence[ScoredImage], names: Sequence[str], attribute_columns: Sequence[str] = ()
) -> dict[str, dict[str, SliceResult]]:
    """mAP of every slice of every family, families in FAMILY_ORDER.

    Args:
        images: the evaluated images.
        names: class names by id (the `class` family has one slice per name, in id order).
        attribute_columns: the columns of the images' `attributes` (empty: no attribute families).

    Returns:
        family -> slice name -> SliceResult. A slice without ground truth has mAP None.
    """
    sliced = families(attribute_columns if any(i.attributes is not None for i in images) else ())
    keys = [("all", "all")] + [(f.name, name) for f in sliced for name in f.slices]
    s, t = len(keys), len(IOU_THRESHOLDS)
    tps, ignores, scores, pred_classes, gt_classes, gt_ins = [], [], [], [], [], []
    images_with = np.zeros(s, dtype=int)  # per slice: images with ground truth in it
    for scored in images:
        image, boxes = _Image.of(scored), scored.boxes
        order = np.argsort(-boxes.pred_scores, kind="stable")
        gt_rows, pred_rows = [np.ones(len(boxes.gt_classes), bool)], [np.ones(len(order), bool)]
        for family in sliced:
            gt, pred = family.labels(image)
            pred = pred[order]
            for k in range(len(family.slices)):
                gt_rows.append(gt == k)
                pred_rows.append((pred == k) | (pred == EVERY))
        gt_in, pred_in = np.array(gt_rows).reshape(s, -1), np.array(pred_rows).reshape(s, -1)  # (S, M), (S, N)
        classes = boxes.pred_classes[order]
        tp = np.zeros((s, len(order), t), dtype=bool)
        hit_ignored = np.zeros_like(tp)
        if len(order) and len(boxes.gt_classes):
            iou = box_iou(boxes.gt_boxes, boxes.pred_boxes[order]) * (boxes.gt_classes[:, None] == classes[None, :])
            masks, inverse = np.unique(~gt_in, axis=0, return_inverse=True)  # slices often share a mask (e.g. all ignored)
            tp_unique, hit_unique = match_predictions_masks(iou, masks)
            tp, hit_ignored = tp_unique[inverse.reshape(-1)], hit_unique[inverse.reshape(-1)]
        tps.append(tp)
        ignores.append(hit_ignored | (~pred_in[:, :, None] & ~tp))
        scores.append(boxes.pred_scores[order])
        pred_classes.append(classes)
        gt_classes.append(boxes.gt_classes)
        gt_ins.append(gt_in)
        images_with += gt_in.any(axis=1)
    if not images:
        empty = SliceResult(map50=None, map50_95=None, instances=0, images=0)
        table = {f.name: dict.fromkeys(f.slices, empty) for f in sliced} | {"class": dict.fromkeys(names, empty)}
        return {family: table[family] for family in FAMILY_ORDER if family in table}
    tp_all, ignored_all = np.concatenate(tps, axis=1), np.concatenate(ignores, axis=1)  # (S, N total, T)
    score_all, pred_all, gt_all = np.concatenate(scores), np.concatenate(pred_classes), np.concatenate(gt_classes)
    gt_in_all = np.concatenate(gt_ins, axis=1)  # (S, M total)
    table = {}
    overall_classes, overall_ap = np.zeros(0, int), np.zeros((0, t))
    for i, (family_name, name) in enumerate(keys):
        kept = gt_all[gt_in_all[i]]
        classes, ap = ap_per_class(tp_all[i], ignored_all[i], score_all, pred_all, kept)
        if family_name == "all":
            overall_classes, overall_ap = classes, ap
            continue
        table.setdefault(family_name, {})[name] = SliceResult(
            map50=float(ap[:, 0].mean()) if len(classes) else None,
            map50_95=float(ap.mean()) if len(classes) else None,
            instances=len(kept),
            images=int(images_with[i]),
        )
    table["class"] = _class_slices(images, names, overall_classes, overall_ap)
    return {family: table[family] for family in FAMILY_ORDER if family in table}


def _class_slices(images: Sequence[ScoredImage], names: Sequence[str], classes: np.ndarray, ap: np.ndarray) -> dict[str, SliceResult]:
    """One slice per class: a class's predictions only ever match its own ground truth, so a class's
    slice is its AP in the all-boxes evaluation."""
    row = {int(c): k for k, c in enumerate(classes)}
    instances = np.zeros(len(names), dtype=int)
    images_with = np.zeros(len(names), dtype=int)
    for image in images:
        present = np.bincount(image.boxes.gt_classes, minlength=len(names))[: len(names)]
        instances += present
        images_with += present > 0
    found = {}
    for class_id, name in enumerate(names):
        k = row.get(class_id)
        found[name] = SliceResult(
            map50=float(ap[k, 0]) if k is not None else None,
            map50_95=float(ap[k].mean()) if k is not None else None,
            instances=int(instances[class_id]),
            images=int(images_with[class_id]),
        )
    return found


def to_json(table: Mapping[str, Mapping[str, SliceResult]]) -> dict[str, dict[str, dict[str, Any]]]:
    return {family: {name: result.to_json() for name, result in slices.items()} for family, slices in table.items()}


def weakest_slice(slices: Mapping[str, Mapping[str, Mapping[str, Any]]], min_instances: int) -> dict[str, Any] | None:
    """The slice with the lowest mAP50-95 among those with at least `min_instances` ground-truth boxes.

    Args:
        slices: the document's `slices` section (family -> slice -> {map50, map50_95, instances, images}).
        min_instances: fewer boxes than this make a slice's AP too noisy to single out.

    Returns:
        {"family", "name", "map50", "map50_95", "instances"}, or None when no slice qualifies. Ties
        go to the first in family order.
    """
    weakest: dict[str, Any] | None = None
    for family, entries in slices.items():
        for name, entry in entries.items():
            if entry["map50_95"] is None or entry["instances"] < min_instances:
                continue
            if weakest is None or entry["map50_95"] < weakest["map50_95"]:
                weakest = {
                    "family": family,
                    "name": name,
                    "map50": entry["map50"],
                    "map50_95": entry["map50_95"],
                    "instances": entry["instances"],
                }
    return weakest


def compare_slices(
    challenger: Mapping[str, Mapping[str, Mapping[str, Any]]], champion: Mapping[str, Mapping[str, Mapping[str, Any]]], min_instances: int
) -> dict[str, Any]:
    """Per-slice mAP50-95 deltas (challenger minus champion) and the worst one: the `comparison.slices` section.

    Both documents score the same data (the comparison checks split and fingerprint), so a slice has
    the same ground truth in both. Compared: the slices both have with an mAP, and at least
    `min_instances` ground-truth boxes.
    """
    deltas: dict[str, dict[str, float]] = {}
    worst: dict[str, Any] | None = None
    for family, entries in challenger.items():
        for name, ours in entries.items():
            theirs = champion.get(family, {}).get(name)
            if theirs is None or ours["map50_95"] is None or theirs["map50_95"] is None or ours["instances"] < min_instances:
                continue
            delta = ours["map50_95"] - theirs["map50_95"]
            deltas.setdefault(family, {})[name] = delta
            if worst is None or delta < worst["delta"]:
                worst = {
                    "family": family,
                    "name": name,
                    "challenger": ours["map50_95"],
                    "champion": theirs["map50_95"],
                    "delta": delta,
                    "instances": ours["instances"],
                }
    compared = sum(len(v) for v in deltas.values())
    return {"min_instances": min_instances, "compared": compared, "worst": worst, "delta": deltas}
