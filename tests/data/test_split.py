"""Split: groups never span two sides, determinism by seed, ratios, edge cases, atomic output."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyops.data.layout import SPLITS, Manifest, atomic_output_dir, group_of, image_stem, read_split
from skyops.data.split import SPLIT_REPORT, plan_split, split_dataset
from skyops.errors import ConfigError, DataValidationError, SkyopsError
from tests.data.fixtures_scenes import AERIAL_CARS, tiny_dataset, yolo_view

# The test's own notion of "same source frame", independent of `group_of`: Roboflow appends
# `_<ext>.rf.<hash>` to the original file stem.
SOURCE_STEM = re.compile(r"_(?:jpg|jpeg|png)\.rf\.[0-9a-f]+$", re.IGNORECASE)


def source_stem(image: str) -> str:
    return SOURCE_STEM.sub("", Path(image).stem)


@pytest.fixture(scope="module")
def aerial_view(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """aerial-cars (train + valid + test) as one canonical dataset, groups left to be derived."""
    if not AERIAL_CARS.is_dir():
        pytest.skip(f"real data set not found at {AERIAL_CARS}")
    root = tmp_path_factory.mktemp("aerial-cars")
    yolo_view([AERIAL_CARS / s / "images" for s in ("train", "valid", "test")], root, ["0", "1", "2", "3"])
    return root


@pytest.fixture(scope="module")
def aerial_split(aerial_view: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("split") / "out"
    split_dataset(aerial_view, target, seed=0)
    return target


def lists(root: Path) -> dict[str, list[str]]:
    return {split: read_split(root, split) for split in SPLITS}


def test_no_source_frame_on_two_sides(aerial_view: Path, aerial_split: Path) -> None:
    sides = lists(aerial_split)
    stems = {split: {source_stem(i) for i in images} for split, images in sides.items()}
    assert stems["train"] & stems["val"] == set()
    assert stems["train"] & stems["test"] == set()
    assert stems["val"] & stems["test"] == set()
    every = sorted(i for images in sides.values() for i in images)
    assert every == sorted(r.image for r in Manifest.read(aerial_view).images)  # each image exactly once
    # the data set really has augmented copies: a split ignoring them would leak
    assert len({source_stem(i) for i in every}) < len(every) * 0.8


def test_report_matches_written_lists(aerial_split: Path) -> None:
    report = json.loads((aerial_split / SPLIT_REPORT).read_text())
    sides = lists(aerial_split)
    assert report["leakage_clean"] is True
    assert report["leakage"] == {
        "groups_on_several_sides": [],
        "images_on_several_sides": [],
        "images_missing": [],
        "sources_on_several_sides": [],
    }
    assert report["seed"] == 0
    assert report["ratios_asked"] == {"train": 0.8, "val": 0.1, "test": 0.1}
    for split, images in sides.items():
        counts = report["counts"][split]
        assert counts["images"] == len(images)
        boxes = [
            line.split()[0]
            for i in images
            for line in (aerial_split / "labels" / f"{Path(i).stem}.txt").read_text().splitlines()
            if line.strip()
        ]
        assert counts["boxes"] == len(boxes)
        assert counts["per_class"] == {c: boxes.count(c) for c in sorted(set(boxes))}


def test_target_is_canonical_with_hard_links(aerial_view: Path, aerial_split: Path) -> None:
    assert (aerial_split / "manifest.json").read_bytes() == (aerial_view / "manifest.json").read_bytes()
    first = read_split(aerial_split, "train")[0]
    assert os.path.samefile(aerial_split / first, aerial_view / first)
    assert not list(aerial_split.parent.glob(".out.*"))  # no staging folder left behind


def test_same_seed_same_lists_other_seed_other_lists(aerial_view: Path, aerial_split: Path, tmp_path: Path) -> None:
    split_dataset(aerial_view, tmp_path / "again", seed=0)
    split_dataset(aerial_view, tmp_path / "other", seed=1)
    assert lists(tmp_path / "again") == lists(aerial_split)
    assert lists(tmp_path / "other") != lists(aerial_split)


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.5, 0.5, 0.0)])
def test_ratios_are_approximately_met(aerial_view: Path, tmp_path: Path, ratios: tuple[float, float, float]) -> None:
    report = split_dataset(aerial_view, tmp_path / "out", ratios=ratios, seed=3)
    total = sum(c.images for c in report.counts.values())
    for split, asked in zip(SPLITS, ratios, strict=True):
        assert abs(report.counts[split].images / total - asked) < 0.02, (split, report.ratios_got)


def test_zero_ratio_split_is_written_empty(tmp_path: Path) -> None:
    tiny_dataset(tmp_path / "src", [(32, 32, [])] * 10, ["a"])
    report = split_dataset(tmp_path / "src", tmp_path / "out", ratios=(0.7, 0.3, 0.0))
    assert (tmp_path / "out" / "test.txt").read_text() == ""
    assert report.counts["test"].images == 0
    assert report.counts["train"].images == 7 and report.counts["val"].images == 3


def test_manifest_groups_win_over_file_names(tmp_path: Path) -> None:
    groups = ["g0", "g0", "g0", "g1", "g1", "g2", "g3", "g4", "g5", "g6"]
    tiny_dataset(tmp_path / "src", [(32, 32, [])] * len(groups), ["a"], groups=groups)
    for seed in range(5):
        target = tmp_path / f"out{seed}"
        split_dataset(tmp_path / "src", target, ratios=(0.6, 0.2, 0.2), seed=seed)
        side = {i: s for s, images in lists(target).items() for i in images}
        assert side["images/im000.png"] == side["images/im001.png"] == side["images/im002.png"]
        assert side["images/im003.png"] == side["images/im004.png"]


def test_fewer_groups_than_splits_is_refused(tmp_path: Path) -> None:
    tiny_dataset(tmp_path / "src", [(32, 32, [])] * 4, ["a"], groups=["x", "x", "y", "y"])
    with pytest.raises(DataValidationError, match=r"cannot split 2 group\(s\) into 3 non-empty splits"):
        split_dataset(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    split_dataset(tmp_path / "src", tmp_path / "ok", ratios=(0.5, 0.5, 0.0))  # two sides are possible


def test_every_positive_split_gets_a_group(tmp_path: Path) -> None:
    # greedy alone would put all five images in train (targets 4 / 0.5 / 0.5)
    tiny_dataset(tmp_path / "src", [(32, 32, [])] * 5, ["a"])
    report = split_dataset(tmp_path / "src", tmp_path / "out")
    assert [report.counts[s].images for s in SPLITS] == [3, 1, 1]


@pytest.mark.parametrize(
    ("ratios", "message"),
    [
        ((0.8, 0.1), r"have 2 values; expected 3"),
        ((0.8, 0.3, 0.1), r"sum to 1\.2; expected 1"),
        ((1.1, -0.1, 0.0), r"must be finite and >= 0; got val=-0\.1"),
        ((float("nan"), 0.5, 0.5), r"must be finite and >= 0; got train=nan"),
    ],
)
def test_bad_ratios_are_refused_before_reading_data(tmp_path: Path, ratios: tuple[float, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_dataset(tmp_path / "no-such-dataset", tmp_path / "out", ratios=ratios)


def test_non_empty_target_is_refused(tmp_path: Path) -> None:
    tiny_dataset(tmp_path / "src", [(32, 32, [])] * 3, ["a"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(SkyopsError, match="already exists and is not an empty folder"):
        split_dataset(tmp_path / "src", tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_missing_files_are_all_reported(tmp_path: Path) -> None:
    tiny_dataset(tmp_path / "src", [(32, 32, [])] * 3, ["a"])
    (tmp_path / "src" / "images" / "im001.png").unlink()
    (tmp_path / "src" / "labels" / "im002.txt").unlink()
    with pytest.raises(
        DataValidationError, match=r"(?s)2 problems in dataset .*missing file images/im001\.png.*missing file labels/im002\.txt"
    ):
        split_dataset(tmp_path / "src", tmp_path / "out")


def test_atomic_output_dir_leaves_nothing_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), atomic_output_dir(tmp_path / "out") as staging:
        (staging / "half.txt").write_text("half-written")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("images/0000001_04527_d_0000008.jpg", "0000001"),  # VisDrone frame -> sequence
        ("DJI-00760-00003_jpg.rf.224a3025683634f0ec57e1d54c76af2a.jpg", "DJI-00760-00003"),  # Roboflow copy -> source stem
        ("MOS155_png.rf.026cd18e69fe0606d52f7e36de9ed0c6.jpg", "MOS155"),
        ("DJI_0007_JPG.rf.74b55eb9d498f083e94a2b69a8394d92.jpg", "DJI_0007"),
        ("0000001_04527_d_0000008_jpg.rf.0123456789abcdef.jpg", "0000001"),  # Roboflow copy of a VisDrone frame
        ("images/scene_000042.png", "scene_000042"),  # anything else -> the stem
        ("holiday.rf.jpg", "holiday.rf"),
    ],
)
def test_group_of(name: str, group: str) -> None:
    assert group_of(image_stem(name)) == group


group_sizes = st.lists(st.integers(min_value=1, max_value=12), min_size=3, max_size=40)
ratio_triples = st.tuples(st.integers(0, 10), st.integers(0, 10), st.integers(0, 10)).filter(lambda t: sum(t) > 0)


@settings(max_examples=150, deadline=None)
@given(sizes=group_sizes, weights=ratio_triples, seed=st.integers(0, 2**32 - 1))
def test_plan_keeps_groups_whole_and_assigns_every_image_once(sizes: list[int], weights: tuple[int, int, int], seed: int) -> None:
    ratios = tuple(w / sum(weights) for w in weights)
    images = [(f"g{g}_{i}.jpg", f"g{g}") for g, size in enumerate(sizes) for i in range(size)]
    plan = plan_split(images, ratios, seed)
    assigned = [i for split in SPLITS for i in plan[split]]
    assert sorted(assigned) == sorted(i for i, _ in images)  # every image exactly once
    group = dict(images)
    sides = {split: {group[i] for i in plan[split]} for split in SPLITS}
    assert not (sides["train"] & sides["val"] or sides["train"] & sides["test"] or sides["val"] & sides["test"])
    for split, ratio in zip(SPLITS, ratios, strict=True):
        assert (len(plan[split]) > 0) == (ratio > 0)  # enough groups here (>= 3), so no positive split is empty
    assert plan_split(images, ratios, seed) == plan
