"""Tiling: windows cover every pixel, each (box, tile) pair at least min_visible visible is written (counted here by
brute force, independently of the tiler), empty tiles are kept by share, and map_back undoes a tile's offset."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from skyops.data.layout import ImageRecord, Manifest, read_split
from skyops.data.split import split_dataset
from skyops.data.tiling import TILES_JSON, Tile, TileSettings, map_back, read_tiles, tile_dataset, tile_starts
from skyops.errors import ConfigError, DataValidationError
from tests.clirun import cli

SIZES = {"wide": (300, 200), "small": (100, 90), "odd": (257, 129)}  # "small" is below the tile size on both axes


@pytest.fixture
def make_dataset(tmp_path: Path, make_png: Callable[..., bytes]) -> Callable[..., Path]:
    """make_dataset(boxes_per_image, seed) -> a canonical-layout dataset of SIZES' PNGs with random labels."""
    import hashlib

    def make(boxes: int = 25, seed: int = 0, sizes: dict[str, tuple[int, int]] = SIZES) -> Path:
        root = tmp_path / f"data-{seed}"
        (root / "images").mkdir(parents=True)
        (root / "labels").mkdir()
        rng = np.random.default_rng(seed)
        records = []
        for k, (stem, (w, h)) in enumerate(sizes.items()):
            png = make_png(w, h, seed * 10 + k)
            (root / "images" / f"{stem}.png").write_bytes(png)
            x1, y1 = rng.uniform(0, w - 2, boxes), rng.uniform(0, h - 2, boxes)
            x2, y2 = np.minimum(x1 + rng.uniform(2, 80, boxes), w), np.minimum(y1 + rng.uniform(2, 80, boxes), h)
            rows = "".join(
                f"{c} {(a + b) / 2 / w:.6f} {(e + f) / 2 / h:.6f} {(b - a) / w:.6f} {(f - e) / h:.6f}\n"
                for c, a, e, b, f in zip(rng.integers(0, 3, boxes), x1, y1, x2, y2, strict=True)
            )
            (root / "labels" / f"{stem}.txt").write_text(rows)
            records.append(
                ImageRecord(
                    image=f"images/{stem}.png",
                    label=f"labels/{stem}.txt",
                    width=w,
                    height=h,
                    sha256=hashlib.sha256(png).hexdigest(),
                    label_sha256=hashlib.sha256(rows.encode()).hexdigest(),
                    boxes=boxes,
                )
            )
        Manifest(names=["car", "van", "person"], images=records).write(root)
        return root

    return make


def pixel_boxes(label: Path, width: int, height: int) -> list[tuple[int, float, float, float, float]]:
    """class, x1, y1, x2, y2 in pixels, by plain arithmetic (no skyops box code)."""
    found = []
    for line in label.read_text().splitlines():
        c, cx, cy, w, h = line.split()
        cx_, cy_, w_, h_ = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
        found.append((int(c), cx_ - w_ / 2, cy_ - h_ / 2, cx_ + w_ / 2, cy_ + h_ / 2))
    return found


@given(length=st.integers(1, 3000), size=st.integers(32, 1024), overlap=st.integers(0, 1023))
def test_windows_cover_every_pixel_with_at_least_the_overlap(length: int, size: int, overlap: int) -> None:
    overlap = min(overlap, size - 1)
    starts = tile_starts(length, size, size - overlap)
    ends = [min(s + size, length) for s in starts]
    assert starts[0] == 0 and ends[-1] == length and all(s >= 0 for s in starts)
    assert all(
        b <= a_end - overlap or a_end == length for a_end, b in zip(ends, starts[1:], strict=False)
    )  # next starts inside the previous
    assert all(b > a for a, b in itertools.pairwise(starts))


def test_every_box_at_least_min_visible_is_kept_counted_by_brute_force(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset(boxes=30, seed=1)
    settings = TileSettings(size=96, overlap=0.25, min_visible=0.4, empty_tile_fraction=1.0)
    report = tile_dataset(root, tmp_path / "tiles", settings)

    tiles = read_tiles(tmp_path / "tiles")
    expected_pairs, written_pairs, lost = 0, 0, 0
    seen: dict[tuple[str, int], bool] = {}
    for tile in tiles:
        w, h = SIZES[Path(tile.source).stem]
        expected = []
        for n, (c, x1, y1, x2, y2) in enumerate(pixel_boxes(root / "labels" / f"{Path(tile.source).stem}.txt", w, h)):
            seen.setdefault((tile.source, n), False)
            ix1, iy1, ix2, iy2 = max(x1, tile.x), max(y1, tile.y), min(x2, tile.x + tile.width), min(y2, tile.y + tile.height)
            visible = max(ix2 - ix1, 0.0) * max(iy2 - iy1, 0.0)
            if visible >= settings.min_visible * (x2 - x1) * (y2 - y1):
                seen[(tile.source, n)] = True
                expected.append((c, ix1 - tile.x, iy1 - tile.y, ix2 - tile.x, iy2 - tile.y))
        got = pixel_boxes(tmp_path / "tiles" / "labels" / f"{Path(tile.image).stem}.txt", tile.width, tile.height)
        assert len(got) == len(expected) == tile.boxes, tile
        for a, b in zip(sorted(got), sorted(expected), strict=True):
            assert a[0] == b[0] and np.allclose(a[1:], b[1:], atol=1e-3), (tile, a, b)
        expected_pairs += len(expected)
        written_pairs += len(got)
    lost = sum(1 for kept in seen.values() if not kept)
    assert expected_pairs == written_pairs == report.box_tiles > 0
    assert report.boxes == 90 and report.boxes_lost == lost
    assert report.empty_tiles == report.empty_tiles_kept  # fraction 1.0 keeps every tile
    assert report.tiles == len(tiles) == sum(len(tile_starts(w, 96, 72)) * len(tile_starts(h, 96, 72)) for w, h in SIZES.values())


def test_tile_pixels_are_the_source_window_and_a_small_image_is_one_whole_tile(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset(boxes=3)
    tile_dataset(root, tmp_path / "tiles", TileSettings(size=96, overlap=16, empty_tile_fraction=1.0))
    tiles = read_tiles(tmp_path / "tiles")
    for tile in tiles:
        source = np.asarray(Image.open(root / tile.source))
        cut = np.asarray(Image.open(tmp_path / "tiles" / tile.image))
        assert np.array_equal(cut, source[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width])
    small = [t for t in tiles if t.source == "images/small.png"]
    assert [(t.x, t.y, t.width, t.height) for t in small] == [(0, 0, 96, 90), (4, 0, 96, 90)]  # 100 px wide: two windows, 90 high: one
    assert [(t.x, t.y, t.width, t.height) for t in tiles if t.source == "images/odd.png"][:3] == [
        (0, 0, 96, 96),
        (80, 0, 96, 96),
        (160, 0, 96, 96),
    ]


def test_an_image_smaller_than_a_tile_is_one_unpadded_tile(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset(boxes=4, sizes={"tiny": (70, 50)})
    tile_dataset(root, tmp_path / "tiles", TileSettings(size=128))
    assert read_tiles(tmp_path / "tiles") == [
        Tile(image="images/tiny__x0_y0.png", source="images/tiny.png", x=0, y=0, width=70, height=50, boxes=4)
    ]
    rows = [np.loadtxt(p, ndmin=2) for p in (tmp_path / "tiles" / "labels" / "tiny__x0_y0.txt", root / "labels" / "tiny.txt")]
    assert np.allclose(rows[0], rows[1], atol=2e-6)  # the same boxes (re-normalised through pixels: last digit may differ)


def test_empty_tiles_are_kept_by_share_and_seed(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset(boxes=2, seed=3)
    none = tile_dataset(root, tmp_path / "none", TileSettings(size=64, overlap=0, empty_tile_fraction=0.0))
    half = tile_dataset(root, tmp_path / "half", TileSettings(size=64, overlap=0, empty_tile_fraction=0.5, seed=7))
    tile_dataset(root, tmp_path / "again", TileSettings(size=64, overlap=0, empty_tile_fraction=0.5, seed=7))
    assert none.empty_tiles == half.empty_tiles > 10 and none.empty_tiles_kept == 0
    assert half.empty_tiles_kept == round(0.5 * half.empty_tiles) and half.tiles == half.tiles_with_boxes + half.empty_tiles_kept
    assert all(t.boxes for t in read_tiles(tmp_path / "none"))
    assert read_tiles(tmp_path / "half") == read_tiles(tmp_path / "again")


def test_parallel_output_equals_serial(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset(boxes=8, seed=8, sizes={f"f{i}": (150, 100) for i in range(20)})
    settings = TileSettings(size=64, empty_tile_fraction=0.5)
    tile_dataset(root, tmp_path / "one", settings, workers=1)
    tile_dataset(root, tmp_path / "two", settings, workers=2)
    for name in ("tiles.json", "manifest.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_map_back_puts_tile_boxes_on_the_source_frame(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset(boxes=20, seed=4)
    tile_dataset(root, tmp_path / "tiles", TileSettings(size=96, min_visible=1.0, empty_tile_fraction=0.0))
    for tile in read_tiles(tmp_path / "tiles"):
        w, h = SIZES[Path(tile.source).stem]
        source = {
            (c, *np.round(b, 2)) for c, *b in pixel_boxes(root / tile.source.replace("images", "labels").replace(".png", ".txt"), w, h)
        }
        local = pixel_boxes(tmp_path / "tiles" / "labels" / f"{Path(tile.image).stem}.txt", tile.width, tile.height)
        back = map_back([b[1:] for b in local], tile)
        for (c, *_), box in zip(local, back, strict=True):  # min_visible 1.0: whole boxes, so they come back unchanged
            assert (c, *np.round(box, 2)) in source or any(np.allclose(box, s[1:], atol=0.02) for s in source if s[0] == c)
    scaled = Tile(image="images/t.png", source="images/s.png", x=100, y=50, width=200, height=200, scale=2.0)
    assert map_back([[10, 20, 30, 40]], scaled).tolist() == [[105.0, 60.0, 115.0, 70.0]]


def test_split_keeps_every_tile_of_a_source_image_on_one_side(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset(boxes=10, seed=5, sizes={f"frame{i}": (200, 150) for i in range(6)})
    tile_dataset(root, tmp_path / "tiles", TileSettings(size=64, overlap=0.1, empty_tile_fraction=0.3))
    report = split_dataset(tmp_path / "tiles", tmp_path / "split", ratios=(0.5, 0.25, 0.25), seed=1)
    assert report.leakage.clean
    source_of = {t.image: t.source for t in read_tiles(tmp_path / "split")}  # tiles.json travels with the split
    sides: dict[str, set[str]] = {}
    for side in ("train", "val", "test"):
        for image in read_split(tmp_path / "split", side):
            sides.setdefault(source_of[image], set()).add(side)
    assert len(sides) == 6 and all(len(s) == 1 for s in sides.values())
    assert json.loads((tmp_path / "split" / TILES_JSON).read_text())["settings"]["overlap_pixels"] == 6


def test_split_groups_tiles_by_their_source_image_from_tiles_json(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    """Tiles whose manifest carries no group (another tiler's output) are still grouped by source image."""
    root = make_dataset(boxes=10, seed=6, sizes={f"frame{i}": (200, 150) for i in range(4)})
    tile_dataset(root, tmp_path / "tiles", TileSettings(size=64, empty_tile_fraction=1.0))
    manifest = Manifest.read(tmp_path / "tiles")
    Manifest(names=manifest.names, images=[dataclasses.replace(r, group="") for r in manifest.images]).write(tmp_path / "tiles")
    split_dataset(tmp_path / "tiles", tmp_path / "split", ratios=(0.5, 0.25, 0.25), seed=2)
    source_of = {t.image: t.source for t in read_tiles(tmp_path / "tiles")}
    sides = {side: {source_of[i] for i in read_split(tmp_path / "split", side)} for side in ("train", "val", "test")}
    assert all(sides.values()) and sum(len(s) for s in sides.values()) == 4  # each of the 4 frames on exactly one side


def test_attributes_follow_their_boxes_into_the_tiles(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset(boxes=15, seed=9, sizes={"frame": (200, 150)})
    (root / "attributes").mkdir()
    (root / "attributes" / "frame.txt").write_text("".join(f"{n} {n % 3}\n" for n in range(15)))  # row n names box n
    tile_dataset(root, tmp_path / "tiles", TileSettings(size=80, min_visible=1.0, empty_tile_fraction=0.0))
    source = pixel_boxes(root / "labels" / "frame.txt", 200, 150)
    tiles = read_tiles(tmp_path / "tiles")
    assert tiles and sum(t.boxes for t in tiles) > 0
    for tile in tiles:
        stem = Path(tile.image).stem
        rows = [tuple(map(int, line.split())) for line in (tmp_path / "tiles" / "attributes" / f"{stem}.txt").read_text().splitlines()]
        local = pixel_boxes(tmp_path / "tiles" / "labels" / f"{stem}.txt", tile.width, tile.height)
        assert len(rows) == len(local) == tile.boxes
        for (n, occlusion), (c, *box) in zip(rows, local, strict=True):
            assert occlusion == n % 3 and c == source[n][0]
            assert np.allclose(map_back([box], tile)[0], source[n][1:], atol=0.02)  # whole boxes (min_visible 1.0): the same box


def test_tiles_are_never_written_inside_the_dataset(make_dataset: Callable[..., Path]) -> None:
    root = make_dataset().resolve()
    with pytest.raises(DataValidationError, match=f"^target {re.escape(str(root / 'tiles'))} overlaps the dataset {re.escape(str(root))}$"):
        tile_dataset(root, root / "tiles", TileSettings(size=64))
    assert not (root / "tiles").exists()


def test_bad_settings_are_listed_together(make_dataset: Callable[..., Path], tmp_path: Path) -> None:
    root = make_dataset()
    with pytest.raises(
        ConfigError,
        match=r"3 problem\(s\) in the tile settings: size 16 is below 32 pixels; .*min_visible 0 must be in \(0, 1\]; empty_tile_fraction 2",
    ):
        tile_dataset(root, tmp_path / "out", TileSettings(size=16, min_visible=0, empty_tile_fraction=2))
    with pytest.raises(ConfigError, match=r"overlap of 64 px leaves no stride in tiles of 64 px"):
        tile_dataset(root, tmp_path / "out", TileSettings(size=64, overlap=64))
    assert not (tmp_path / "out").exists()


def test_tile_command_prints_its_counts(make_dataset: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_dataset(boxes=5, sizes={"frame": (200, 100)})
    code, out, err = cli(
        capsys, "data", "tile", str(root), str(tmp_path / "tiles"), "--size", "100", "--overlap", "0", "--empty-fraction", "1"
    )
    tiles = read_tiles(tmp_path / "tiles")
    with_boxes, empty = sum(1 for t in tiles if t.boxes), sum(1 for t in tiles if not t.boxes)
    assert (code, err) == (0, "") and [(t.x, t.width) for t in tiles] == [(0, 100), (100, 100)]
    assert (
        out.splitlines()[0] == f"1 images -> 2 tiles in {tmp_path / 'tiles'} ({with_boxes} with boxes, {empty} of {empty} empty ones kept)"
    )
    assert out.splitlines()[1].startswith(f"boxes: {sum(t.boxes for t in tiles)} in tiles (")


def test_tile_command_refuses_a_zero_min_visible(
    make_dataset: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "data", "tile", str(make_dataset()), str(tmp_path / "tiles"), "--min-visible", "0")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "error: 1 problem(s) in the tile settings: min_visible 0.0 must be in (0, 1]",
        "hint: e.g. size=640, overlap=0.2",
    ]
    assert not (tmp_path / "tiles").exists()
