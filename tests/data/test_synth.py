"""Synthetic scenes: determinism, exact labels in the canonical layout, settings honoured, preview."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyops.data.layout import Manifest
from skyops.data.synth import generate_scenes, preview
from skyops.data.synth_draw import SUPERSAMPLE, place, rasterise
from skyops.data.synth_scene import SPRITES
from skyops.errors import ConfigError, SkyopsError

COUNT, SIZE = 12, 256


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def imread(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    assert image is not None, f"{path} is not readable"
    return image


def read_boxes(label: Path) -> np.ndarray:
    """(N, 5) class, cx, cy, w, h as written."""
    return np.array([[float(v) for v in line.split()] for line in label.read_text().splitlines()]).reshape(-1, 5)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("synth") / "scenes"
    generate_scenes(target, COUNT, size=SIZE, seed=0, workers=2)
    return target


def test_same_seed_gives_identical_files_whatever_the_workers(scenes: Path, tmp_path: Path) -> None:
    generate_scenes(tmp_path / "again", COUNT, size=SIZE, seed=0, workers=1)
    assert tree_digest(tmp_path / "again") == tree_digest(scenes)


def test_other_seed_gives_other_scenes(scenes: Path, tmp_path: Path) -> None:
    generate_scenes(tmp_path / "other", 3, size=SIZE, seed=1, workers=1)
    other, base = tree_digest(tmp_path / "other"), tree_digest(scenes)
    for i in range(3):
        assert other[f"images/scene_{i:06d}.jpg"] != base[f"images/scene_{i:06d}.jpg"]
        assert other[f"labels/scene_{i:06d}.txt"] != base[f"labels/scene_{i:06d}.txt"]


def test_manifest_describes_the_files(scenes: Path) -> None:
    manifest = Manifest.read(scenes)
    assert manifest.names == ["car", "truck", "bus", "person"]
    assert manifest.source_format == "synthetic"
    assert len(manifest.images) == COUNT == len(list((scenes / "images").iterdir()))
    assert len({r.group for r in manifest.images}) == COUNT  # each scene is its own group
    files = tree_digest(scenes)
    for record in manifest.images:
        assert files[record.image] == record.sha256 and files[record.label] == record.label_sha256
        assert record.boxes == len(read_boxes(scenes / record.label))
        assert (record.width, record.height) == (SIZE, SIZE) == imread(scenes / record.image).shape[1::-1]
    assert manifest.stats["boxes"] == sum(r.boxes for r in manifest.images) > COUNT * 5
    assert manifest.stats["hidden_objects"] > 0  # occlusion happens, and is kept out of the labels


def test_labels_are_valid_and_every_class_occurs(scenes: Path) -> None:
    boxes = np.concatenate([read_boxes(p) for p in sorted((scenes / "labels").glob("*.txt"))])
    assert set(boxes[:, 0].astype(int)) == {0, 1, 2, 3}
    assert np.array_equal(boxes[:, 0], np.round(boxes[:, 0]))
    cx, cy, w, h = boxes[:, 1:].T
    assert np.all((w > 0) & (h > 0))
    assert np.all((cx - w / 2 >= -1e-6) & (cx + w / 2 <= 1 + 1e-6) & (cy - h / 2 >= -1e-6) & (cy + h / 2 <= 1 + 1e-6))
    longest = np.maximum(w, h) * SIZE
    inside = (cx - w / 2 > 1 / SIZE) & (cx + w / 2 < 1 - 1 / SIZE) & (cy - h / 2 > 1 / SIZE) & (cy + h / 2 < 1 - 1 / SIZE)
    assert longest[(boxes[:, 0] == 3) & inside].min() >= 8  # people stay >= 8 px unless cut by the frame
    assert np.median(longest[boxes[:, 0] == 0]) == pytest.approx(23, abs=6)  # cars 16-30 px long at 256 px


def contrast_with_surroundings(gray: np.ndarray, x0: int, y0: int, x1: int, y1: int, pad: int = 3) -> float | None:
    """90th percentile of |pixel - median of a `pad` px ring around the box| over the box's pixels."""
    h, w = gray.shape
    ox0, oy0, ox1, oy1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h)
    outer = gray[oy0:oy1, ox0:ox1].astype(np.float64)
    ring = np.ones(outer.shape, bool)
    ring[y0 - oy0 : y1 - oy0, x0 - ox0 : x1 - ox0] = False
    inner = gray[y0:y1, x0:x1].astype(np.float64)
    if not ring.any() or inner.size == 0:
        return None
    return float(np.percentile(np.abs(inner - np.median(outer[ring])), 90))


def test_each_box_holds_a_drawn_object(scenes: Path) -> None:
    on_box, beside_box = [], []
    for label in sorted((scenes / "labels").glob("*.txt")):
        gray = imread(scenes / "images" / f"{label.stem}.jpg", cv2.IMREAD_GRAYSCALE)
        for _, cx, cy, w, h in read_boxes(label):
            x0, y0, x1, y1 = (round(v * SIZE) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
            on_box.append(contrast_with_surroundings(gray, x0, y0, x1, y1))
            shift = x1 - x0 + 4
            if x1 + shift < SIZE:
                beside_box.append(contrast_with_surroundings(gray, x0 + shift, y0, x1 + shift, y1))
    on = np.array([v for v in on_box if v is not None])
    beside = np.array([v for v in beside_box if v is not None])
    assert on.min() >= 8  # every labelled box differs from what surrounds it (min ~11 over 200 scenes)
    assert np.median(on) > 1.8 * np.median(beside)  # and the same box moved aside mostly does not


@settings(max_examples=120, deadline=None)
@given(
    name=st.sampled_from(sorted(SPRITES)),
    seed=st.integers(0, 2**32 - 1),
    angle=st.floats(0, 2 * math.pi),
    k=st.sampled_from([0.5, 1.0, 2.0]),
)
def test_label_box_is_the_tight_box_of_the_drawn_object(name: str, seed: int, angle: float, k: float) -> None:
    """A label is the box of its sprite's outline: every drawn pixel lies inside it, and it is tight."""
    sprite = SPRITES[name](np.random.default_rng(seed), k)
    centre = np.array([100.3, 99.8])
    _, coverage, px, py = rasterise(sprite, centre, angle)  # coverage[i, j] is image pixel (px + j, py + i)
    outline = place(sprite.outline, centre, angle)
    (x0, y0), (x1, y1) = outline.min(axis=0) - [px, py], outline.max(axis=0) - [px, py]
    in_box = np.zeros(coverage.shape, bool)  # pixel x spans [x, x + 1): the pixels the box touches
    in_box[math.floor(y0) : math.ceil(y1), math.floor(x0) : math.ceil(x1)] = True
    # outside the box, at most a sliver one sub-sample wide (fixed-point rounding of the rasteriser)
    assert coverage[~in_box].max(initial=0.0) <= 1 / SUPERSAMPLE + 1e-6
    ys, xs = np.nonzero(coverage > 0)
    assert xs.min() <= x0 + 0.5 and xs.max() + 1 >= x1 - 0.5  # and the box is tight on every side
    assert ys.min() <= y0 + 0.5 and ys.max() + 1 >= y1 - 0.5


def test_count_size_and_classes_are_honoured(tmp_path: Path) -> None:
    manifest = generate_scenes(tmp_path / "people", 5, size=96, seed=7, classes=("person",), workers=1)
    assert manifest.names == ["person"]
    assert len(manifest.images) == 5
    for record in manifest.images:
        assert imread(tmp_path / "people" / record.image).shape == (96, 96, 3)
        assert set(read_boxes(tmp_path / "people" / record.label)[:, 0]) <= {0.0}
    assert manifest.stats["boxes"] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, r"count=0: expected at least 1 image"),
        ({"size": 32}, r"size=32: expected 64\.\.4096 px"),
        ({"seed": -1}, r"seed=-1: expected a non-negative integer"),
        ({"classes": ("car", "plane")}, r"classes=\['car', 'plane'\]: expected distinct names among \['car', 'truck', 'bus', 'person'\]"),
        ({"classes": ("car", "car")}, r"expected distinct names"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    settings = {"count": 2, "size": 64, "seed": 0, "classes": ("car",), **kwargs}
    with pytest.raises(ConfigError, match=message):
        generate_scenes(tmp_path / "out", **settings)
    assert not (tmp_path / "out").exists()


def test_existing_dataset_is_not_overwritten(scenes: Path) -> None:
    before = tree_digest(scenes)
    with pytest.raises(SkyopsError, match="already exists and is not an empty folder"):
        generate_scenes(scenes, 2, seed=5, workers=1)
    assert tree_digest(scenes) == before


def test_preview_tiles_images(scenes: Path, tmp_path: Path) -> None:
    out = preview(scenes, tmp_path / "sheet" / "preview.png", n=9)
    sheet = imread(out)
    assert sheet.shape == (3 * SIZE + 2 * 4, 3 * SIZE + 2 * 4, 3)
    first = imread(scenes / "images" / "scene_000000.jpg")
    assert np.any(sheet[:SIZE, :SIZE] != first)  # boxes are drawn over the image
