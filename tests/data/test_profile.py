"""Profile: counts against labels read independently, COCO size buckets, image statistics, outputs."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from PIL import Image

from skyops.data.profile import FEATURES, PROFILE_HTML, PROFILE_JSON, PROFILE_JSON_SCHEMA, decode_gray, image_statistics, profile_dataset
from skyops.errors import DataValidationError
from tests.data.fixtures_scenes import AERIAL_CARS, tiny_dataset, yolo_view

SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def aerial_profile(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    if not AERIAL_CARS.is_dir():
        pytest.skip(f"real data set not found at {AERIAL_CARS}")
    root = tmp_path_factory.mktemp("aerial-cars")
    yolo_view([AERIAL_CARS / s / "images" for s in SPLITS], root, ["0", "1", "2", "3"])
    out = tmp_path_factory.mktemp("profile") / "out"
    return profile_dataset(root, out), out


def sized_boxes(root: Path) -> Path:
    """Two images with boxes on both sides of the COCO thresholds (32², 96² px²)."""
    boxes = [(0, 0, 0, 31, 31), (0, 40, 0, 33, 33), (1, 0, 100, 95, 95), (1, 100, 100, 97, 97)]
    # 400 x 100 image: a 40 x 20 px box is 800 px² (small); reading it in a square frame would say otherwise
    tiny_dataset(root, [(256, 256, boxes), (400, 100, [(2, 10, 10, 40, 20)])], ["a", "b", "c"])
    return root


@pytest.fixture(scope="module")
def tiny_profile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = sized_boxes(tmp_path_factory.mktemp("tiny") / "src")
    return profile_dataset(root, root.parent / "out", sample_cap=3)


def test_class_counts_match_labels_read_independently(aerial_profile: tuple[dict[str, Any], Path]) -> None:
    profile, _ = aerial_profile
    lines = [
        line
        for s in SPLITS
        for f in sorted((AERIAL_CARS / s / "labels").glob("*.txt"))
        for line in f.read_text().splitlines()
        if line.strip()
    ]
    per_class = Counter(line.split()[0] for line in lines)
    assert {name: c["boxes"] for name, c in profile["classes"].items()} == {name: per_class[name] for name in ("0", "1", "2", "3")}
    assert profile["dataset"]["boxes"] == len(lines)
    assert profile["dataset"]["images"] == sum(len(list((AERIAL_CARS / s / "images").iterdir())) for s in SPLITS)
    assert sum(profile["size_buckets"].values()) == len(lines)
    per_image = profile["features"]["boxes_per_image"]["summary"]
    assert per_image["mean"] == pytest.approx(len(lines) / profile["dataset"]["images"], abs=1e-5)
    assert profile["image_sizes"] == {"416x416": profile["dataset"]["images"]}


def test_size_buckets_use_coco_areas_in_original_pixels(tiny_profile: dict[str, Any]) -> None:
    profile = tiny_profile
    assert profile["size_buckets"] == {"small": 2, "medium": 2, "large": 1}
    assert profile["classes"]["a"] == {"boxes": 2, "images": 1, "small": 1, "medium": 1, "large": 0}
    assert profile["classes"]["b"] == {"boxes": 2, "images": 1, "small": 0, "medium": 1, "large": 1}
    assert profile["classes"]["c"] == {"boxes": 1, "images": 1, "small": 1, "medium": 0, "large": 0}
    aspect = profile["features"]["aspect_ratio"]["summary"]
    assert aspect["max"] == pytest.approx(2.0, abs=1e-3)  # the 40 x 20 px box


def test_image_statistics_of_known_images() -> None:
    flat = np.full((600, 900), 77, np.uint8)
    assert image_statistics(flat) == pytest.approx((77.0, 0.0, 0.0))
    halves = np.zeros((64, 64), np.uint8)
    halves[:, 32:] = 200
    brightness, contrast, sharpness = image_statistics(halves)
    assert (brightness, contrast) == pytest.approx((100.0, 100.0))
    assert sharpness > 0
    blurred = np.asarray(Image.fromarray(halves).resize((8, 8)).resize((64, 64), Image.Resampling.BILINEAR))
    assert image_statistics(blurred).sharpness < sharpness


def test_monitoring_recomputes_the_baseline_features(aerial_profile: tuple[dict[str, Any], Path]) -> None:
    """decode_gray + image_statistics on raw bytes (what a server receives) give the profile's values."""
    profile, _ = aerial_profile
    first = sorted((AERIAL_CARS / "train" / "images").iterdir())[0]  # the manifest's first image, kept first in the sample
    gray = decode_gray(first.read_bytes())
    assert gray is not None
    stats = image_statistics(gray)
    for name in ("brightness", "contrast", "sharpness"):
        assert profile["features"][name]["sample"][0] == pytest.approx(getattr(stats, name), abs=1e-5), name
    assert decode_gray(b"not an image") is None


def test_profile_json_validates_against_its_schema(aerial_profile: tuple[dict[str, Any], Path], tiny_profile: dict[str, Any]) -> None:
    profile, out = aerial_profile
    written = json.loads((out / PROFILE_JSON).read_text())
    jsonschema.validate(written, PROFILE_JSON_SCHEMA)
    assert written == json.loads(json.dumps(profile))
    for name, feature in written["features"].items():
        histogram = feature["histogram"]
        assert len(histogram["counts"]) == len(histogram["edges"]) - 1
        assert sum(histogram["counts"]) == feature["summary"]["count"], name
    jsonschema.validate(tiny_profile, PROFILE_JSON_SCHEMA)
    with pytest.raises(jsonschema.ValidationError, match="'brightness' is a required property"):
        jsonschema.validate({**written, "features": {}}, PROFILE_JSON_SCHEMA)


def test_histogram_edges_are_fixed_so_profiles_compare(aerial_profile: tuple[dict[str, Any], Path], tiny_profile: dict[str, Any]) -> None:
    profile, other = aerial_profile[0], tiny_profile
    for name in FEATURES:
        assert other["features"][name]["histogram"]["edges"] == profile["features"][name]["histogram"]["edges"], name


def test_samples_are_capped_and_aligned(tiny_profile: dict[str, Any]) -> None:
    features = tiny_profile["features"]
    assert len(features["box_area"]["sample"]) == 3  # 5 boxes, capped
    assert len(features["brightness"]["sample"]) == 2
    assert features["width"]["sample"] == [256.0, 400.0]  # image samples keep dataset order


def test_html_is_self_contained(aerial_profile: tuple[dict[str, Any], Path]) -> None:
    _, out = aerial_profile
    html = (out / PROFILE_HTML).read_text()
    images = re.findall(r'src="(data:image/png;base64,[A-Za-z0-9+/=]+)"', html)
    assert len(images) == len(list((out / "plots").glob("*.png"))) >= 4
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # base64 may spell anything
    assert not re.search(r"https?://", text)
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)  # nothing loaded from elsewhere, not even relatively


def test_html_shows_the_numbers(aerial_profile: tuple[dict[str, Any], Path]) -> None:
    profile, out = aerial_profile
    html = (out / PROFILE_HTML).read_text()
    assert f"{profile['dataset']['images']} images, {profile['dataset']['boxes']} boxes" in html
    for name, counts in profile["classes"].items():
        assert f"<td>{name}</td><td>{counts['boxes']}</td><td>{counts['images']}</td><td>{counts['small']}</td>" in html


def test_unreadable_images_are_reported_together(tmp_path: Path) -> None:
    root = sized_boxes(tmp_path / "src")
    for name in ("im000.png", "im001.png"):
        (root / "images" / name).write_bytes(b"not an image")
    with pytest.raises(DataValidationError, match=r"(?s)2 problems in dataset .*im000\.png: not a readable image.*im001\.png"):
        profile_dataset(root, tmp_path / "out")
    assert not (tmp_path / "out").exists()
