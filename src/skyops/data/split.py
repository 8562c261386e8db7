"""Leak-free train/val/test split of a dataset in the canonical layout (see `skyops.data.layout`).

Related images (frames of one video sequence, augmented copies of one source photo) form a *group*
and always land on the same side, so the test set never holds a near-copy of a training image.
A group is `ImageRecord.group` from the manifest, or, where that is empty, `group_of(file name)`; in
a tiled dataset (`tiles.json`, see skyops.data.tiling) the file name is the tile's source image's, so
every tile of one image (the tiler also gives each tile its image's group) lands on one side.

Assignment: groups are shuffled with the seed, stably sorted largest first, and each goes to the
split furthest below its target image count (ratio x images). A split with ratio 0 is written empty.
Every split with a ratio > 0 receives at least one group; a dataset with fewer groups than such
splits is refused with an error.

The target is a canonical-layout dataset (images/labels hard-linked, manifest copied) plus
`train.txt`, `val.txt`, `test.txt` (image paths relative to the target) and `split.json` (the
`SplitReport`), and `tiles.json` when the dataset has one. The leakage check re-reads the written
lists, so it is independent of the assignment code; for a tiled dataset it also checks that no
source image has tiles on two sides. The target is built in a temporary folder and renamed into place.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from skyops.data.layout import (
    IMAGES,
    LABELS,
    MANIFEST,
    SPLITS,
    ImageRecord,
    Manifest,
    atomic_output_dir,
    attributes_file,
    group_of,
    image_stem,
    link_or_copy,
    read_split,
)
from skyops.data.tiling import TILES_JSON, read_tiles
from skyops.errors import ConfigError, DataValidationError, problems_error

SPLIT_REPORT = "split.json"
SPLIT_REPORT_VERSION = 1


def resolve_group(record: ImageRecord, source: str = "") -> str:
    """The manifest's group when set, else the one derived from the file name of `source` (a tile's
    source image) or of the image itself."""
    return record.group or group_of(image_stem(source or record.image))


def validate_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Check train/val/test ratios: three finite numbers >= 0 that sum to 1 (within 1e-6)."""
    values = tuple(float(r) for r in ratios)
    if len(values) != len(SPLITS):
        raise ConfigError(
            f"split ratios {values} have {len(values)} values; expected 3 (train, val, test)", hint="e.g. ratios=(0.8, 0.1, 0.1)"
        )
    bad = [f"{name}={value}" for name, value in zip(SPLITS, values, strict=True) if not math.isfinite(value) or value < 0]
    if bad:
        raise ConfigError(f"split ratios must be finite and >= 0; got {', '.join(bad)}", hint="e.g. ratios=(0.8, 0.1, 0.1)")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(
            f"split ratios {values} sum to {sum(values):.6g}; expected 1", hint="scale them so they add up to 1, e.g. (0.8, 0.1, 0.1)"
        )
    return values[0], values[1], values[2]


def plan_split(images: Sequence[tuple[str, str]], ratios: Sequence[float], seed: int) -> dict[str, list[str]]:
    """Assign whole groups of images to train/val/test, approximating the ratios by image count.

    Args:
        images: (image, group) pairs; image names must be unique.
        ratios: train, val, test fractions (validated by `validate_ratios`).
        seed: shuffles groups of equal size; the same seed gives the same plan.

    Returns:
        {"train": [...], "val": [...], "test": [...]}: image names, each list sorted.

    Raises:
        DataValidationError: no images, or fewer groups than splits with a ratio > 0.
    """
    wanted = validate_ratios(ratios)
    members: dict[str, list[str]] = defaultdict(list)
    for image, group in images:
        members[group].append(image)
    active = [i for i, r in enumerate(wanted) if r > 0]
    if not members:
        raise DataValidationError("cannot split an empty dataset: it has no images", hint="check the upstream ingest output")
    if len(members) < len(active):
        raise DataValidationError(
            f"cannot split {len(members)} group(s) into {len(active)} non-empty splits (ratios {wanted}): a group never spans two splits",
            hint="add data, set the ratio of an unneeded split to 0, or give the images finer groups in the manifest",
        )
    # Seeded shuffle of the (sorted, hence order-independent) groups; the stable sort keeps it for ties.
    names = sorted(members)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    order.sort(key=lambda g: len(members[g]), reverse=True)
    total = sum(len(m) for m in members.values())
    targets = [r * total for r in wanted]
    sizes = [0, 0, 0]
    assigned: list[list[str]] = [[], [], []]
    for group in order:
        side = max(active, key=lambda i: targets[i] - sizes[i])  # first of equal deficits: train, val, test
        assigned[side].append(group)
        sizes[side] += len(members[group])
    # A split with a ratio > 0 must not come out empty: give it the smallest group of the fullest split.
    for side in active:
        if not assigned[side]:
            donor = max((i for i in active if len(assigned[i]) > 1), key=lambda i: sizes[i] - targets[i])
            moved = min(assigned[donor], key=lambda g: len(members[g]))
            assigned[donor].remove(moved)
            assigned[side].append(moved)
            sizes[donor] -= len(members[moved])
            sizes[side] += len(members[moved])
    return {split: sorted(image for g in groups for image in members[g]) for split, groups in zip(SPLITS, assigned, strict=True)}


@dataclass(frozen=True, kw_only=True)
class SplitCounts:
    images: int
    groups: int
    boxes: int
    per_class: dict[str, int]  # boxes by class name; ids outside `names` are keyed by their number


@dataclass(frozen=True, kw_only=True)
class Leakage:
    """Found by re-reading the written lists. Every field must be empty for a valid split."""

    groups_on_several_sides: list[str]
    images_on_several_sides: list[str]
    images_missing: list[str]  # in the manifest but in no list
    sources_on_several_sides: list[str] = field(default_factory=list)  # tiled datasets: source images with tiles on two sides

    @property
    def clean(self) -> bool:
        return not (self.groups_on_several_sides or self.images_on_several_sides or self.images_missing or self.sources_on_several_sides)


@dataclass(frozen=True, kw_only=True)
class SplitReport:
    """What `split.json` holds: the seed, ratios asked vs got (by images), counts and the leakage check."""

    seed: int
    ratios_asked: dict[str, float]
    ratios_got: dict[str, float]
    counts: dict[str, SplitCounts]
    leakage: Leakage
    group_source: dict[str, int]  # images whose group came from the "manifest" vs the "file_name"
    version: int = SPLIT_REPORT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "leakage_clean": self.leakage.clean}


def _class_counts(label: Path) -> Counter[int]:
    counts: Counter[int] = Counter()
    for line in label.read_text().splitlines():
        fields = line.split()
        if fields:
            counts[int(float(fields[0]))] += 1
    return counts


def check_leakage(root: Path, manifest: Manifest) -> Leakage:
    """Re-read `<root>/<split>.txt` (and `tiles.json`) and find groups, images or tiled source images on
    more than one side, and lost images."""
    source_of = {t.image: t.source for t in read_tiles(root)}
    group_by_image = {r.image: resolve_group(r, source_of.get(r.image, "")) for r in manifest.images}
    sides_of_group: dict[str, set[str]] = defaultdict(set)
    sides_of_image: dict[str, set[str]] = defaultdict(set)
    sides_of_source: dict[str, set[str]] = defaultdict(set)
    for split in SPLITS:
        for image in read_split(root, split):
            sides_of_image[image].add(split)
            sides_of_group[group_by_image.get(image, group_of(image_stem(image)))].add(split)
            if image in source_of:
                sides_of_source[source_of[image]].add(split)
    return Leakage(
        groups_on_several_sides=sorted(g for g, sides in sides_of_group.items() if len(sides) > 1),
        images_on_several_sides=sorted(i for i, sides in sides_of_image.items() if len(sides) > 1),
        images_missing=sorted(set(group_by_image) - set(sides_of_image)),
        sources_on_several_sides=sorted(s for s, sides in sides_of_source.items() if len(sides) > 1),
    )


def split_dataset(root: Path, target: Path, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> SplitReport:
    """Split the canonical-layout dataset at `root` into train/val/test, keeping groups on one side.

    Args:
        root: a dataset in the canonical layout (manifest.json, images/, labels/). Not modified.
        target: where the split dataset is written; must not exist or be an empty folder.
        ratios: train, val, test fractions of the images; each >= 0, summing to 1.
        seed: the same seed and data give the same lists.

    Returns:
        The report, also written to `<target>/split.json`.

    Raises:
        ConfigError: invalid ratios.
        DataValidationError: no manifest, files listed in it missing, or too few groups.
    """
    asked = dict(zip(SPLITS, validate_ratios(ratios), strict=True))  # fail on bad settings before reading data
    root, target = Path(root), Path(target)
    manifest = Manifest.read(root)
    missing = [f"{rel} (listed in {MANIFEST})" for r in manifest.images for rel in (r.image, r.label) if not (root / rel).is_file()]
    if missing:
        raise problems_error(
            DataValidationError,
            f"dataset {root}",
            [f"missing file {m}" for m in missing],
            hint="re-run ingest; the manifest and files disagree",
        )
    source_of = {t.image: t.source for t in read_tiles(root)}  # {} unless the dataset is tiled
    lists = plan_split([(r.image, resolve_group(r, source_of.get(r.image, ""))) for r in manifest.images], ratios, seed)
    by_image = {r.image: r for r in manifest.images}

    with atomic_output_dir(target) as staging:
        for record in manifest.images:
            link_or_copy(root / record.image, staging / record.image)
            link_or_copy(root / record.label, staging / record.label)
            if (side := attributes_file(root, record.image)).is_file():  # optional box attributes travel with their label
                link_or_copy(side, attributes_file(staging, record.image))
        (staging / IMAGES).mkdir(exist_ok=True)  # an empty dataset still has the layout's folders
        (staging / LABELS).mkdir(exist_ok=True)
        shutil.copy2(root / MANIFEST, staging / MANIFEST)
        if source_of:  # the tiles' geometry travels with them (map_back needs it downstream)
            shutil.copy2(root / TILES_JSON, staging / TILES_JSON)
        for split, images in lists.items():
            (staging / f"{split}.txt").write_text("".join(f"{image}\n" for image in images))
        leakage = check_leakage(staging, manifest)
        if not leakage.clean:  # a bug in `plan_split`, never a data problem
            raise RuntimeError(f"split of {root} leaks between sides: {leakage}")
        counts = {split: _split_counts([by_image[i] for i in images], staging, manifest.names) for split, images in lists.items()}
        total = len(manifest.images)
        report = SplitReport(
            seed=seed,
            ratios_asked=asked,
            ratios_got={split: round(len(images) / total, 6) for split, images in lists.items()},
            counts=counts,
            leakage=leakage,
            group_source=dict(Counter("manifest" if r.group else "file_name" for r in manifest.images)),
        )
        (staging / SPLIT_REPORT).write_text(json.dumps(report.to_json(), indent=1))
    return report


def _split_counts(records: list[ImageRecord], root: Path, names: list[str]) -> SplitCounts:
    classes: Counter[int] = Counter()
    for record in records:
        classes.update(_class_counts(root / record.label))
    return SplitCounts(
        images=len(records),
        groups=len({resolve_group(r) for r in records}),
        boxes=sum(classes.values()),
        per_class={(names[c] if 0 <= c < len(names) else str(c)): n for c, n in sorted(classes.items())},
    )
