"""High-resolution synthetic scenes: an absolute object scale, and defaults that draw what they always drew."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from skyops.data.layout import Manifest
from skyops.data.synth import generate_scenes
from skyops.data.synth_scene import render_scene
from skyops.errors import ConfigError
from skyops.steps.ingest.script import IngestConfig

CLASSES = ("car", "truck", "bus", "person")

# Drawn by the generator before `scale` existed (same machine's OpenCV): cache keys and the demo depend on them.
RAW_128 = "aebd2b8893028b2af9086705f4118311f06500c340993344a7766357364406ef"  # render_scene(rng([3, 1]), 128).image
BOXES_128 = "8eb45413b635c98b1a81e8c0f933ce844b1b5df8d651f92756df271cdab39e8d"
FILES_128 = [  # generate_scenes(count=3, size=128, seed=5): (image sha256, label sha256)
    (
        "dab592e7dd29e4e789e1570f52f000afbeebbb90e86b6631254144618d9f9f13",
        "759be5254c773b11a7efb116539088202243a513979e6e407722ba9c363cfcf3",
    ),
    (
        "92c0f6de2859bc76bf8e19d0836defed2e6a11313ac9611b3de2047e75fb8ee1",
        "d0eb963766d88d2b6d0b4936fb144b19e2712906a390230511a90fea65b51388",
    ),
    (
        "47cf25ab24b4681e4cfccce042ce107c69ceba709329e1c4b09ff14f73a25282",
        "357d9f054510d8304f0cffaa8b33a5606ef0939a8d2cc9f555495a6f7576683b",
    ),
]


def test_default_scene_is_unchanged() -> None:
    scene = render_scene(np.random.default_rng([3, 1]), 128, CLASSES)
    assert hashlib.sha256(scene.image.tobytes()).hexdigest() == RAW_128
    assert hashlib.sha256(scene.boxes.tobytes()).hexdigest() == BOXES_128


def test_default_files_and_manifest_are_unchanged(tmp_path: Path) -> None:
    manifest = generate_scenes(tmp_path / "d", 3, size=128, seed=5, workers=1)
    assert [(r.sha256, r.label_sha256) for r in manifest.images] == FILES_128
    assert "scale" not in manifest.stats
    assert all(":scale=" not in r.source for r in manifest.images)


def test_scale_gives_small_objects_in_a_large_frame() -> None:
    scene = render_scene(np.random.default_rng([0, 0]), 1024, CLASSES, scale=0.5)
    assert scene.image.shape == (1024, 1024, 3)
    _, x0, y0, x1, y1 = scene.boxes.T
    longest = np.maximum(x1 - x0, y1 - y0)
    # cars 8-15 px, people 5-7 px, buses up to 36 px at scale 0.5; every box is COCO-small (area < 32²)
    assert longest.max() <= 40
    assert np.median(longest) <= 16
    assert ((x1 - x0) * (y1 - y0) < 32**2).all()
    # the frame covers 8x the default ground's side: about 8x the objects of a default scene (a handful to ~30)
    assert len(scene.boxes) >= 40


def test_scale_equal_to_the_default_draws_the_default_scene() -> None:
    default = render_scene(np.random.default_rng([3, 1]), 128, CLASSES)
    explicit = render_scene(np.random.default_rng([3, 1]), 128, CLASSES, scale=0.5)
    assert np.array_equal(default.image, explicit.image)
    assert np.array_equal(default.boxes, explicit.boxes)


def test_scaled_scenes_are_recorded_and_deterministic(tmp_path: Path) -> None:
    one = generate_scenes(tmp_path / "a", 2, size=512, seed=1, workers=1, scale=0.5)
    two = generate_scenes(tmp_path / "b", 2, size=512, seed=1, workers=1, scale=0.5)
    assert [r.sha256 for r in one.images] == [r.sha256 for r in two.images]
    assert one.stats["scale"] == 0.5
    assert Manifest.read(tmp_path / "a").images[0].source.endswith(":scale=0.5")


@pytest.mark.parametrize("scale", [0.1, 20.0, float("nan"), 4.0])
def test_bad_scale_is_one_clear_error(tmp_path: Path, scale: float) -> None:
    with pytest.raises(ConfigError, match=rf"scale={scale}: expected 0.25..16.0 and at most size/64"):
        generate_scenes(tmp_path / "x", 1, size=128, scale=scale, workers=1)
    assert not (tmp_path / "x").exists()


def test_ingest_config_passes_the_scale() -> None:
    assert IngestConfig().synth_scale == 0.0  # 0: scale with the size, as before
    assert IngestConfig(synth_scale=0.5).synth_scale == 0.5
