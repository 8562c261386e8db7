"""Small named fixtures of the data tests."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.data.hostile import World

# converters and validation

SHARED_DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


def _shared(name: str) -> Path:
    path = SHARED_DATASETS / name
    if not path.is_dir():
        pytest.skip(f"shared dataset {path} is absent (see ../shared/datasets/README.md)")
    return path


@pytest.fixture
def visdrone_sample() -> Path:
    """8 real VisDrone-DET val images + annotations (read in place, never written)."""
    return _shared("visdrone-sample") / "VisDrone2019-DET-val"


@pytest.fixture
def aerial_cars() -> Path:
    """367 real Roboflow drone photos in YOLO format, splits under datasets/{train,valid,test}."""
    return _shared("aerial-cars")


def _encode(width: int, height: int, fmt: str, seed: int, **save: object) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **save)
    return buffer.getvalue()


@pytest.fixture
def make_jpeg() -> Callable[..., bytes]:
    """make_jpeg(width, height, seed=0, orientation=None) -> JPEG bytes of random pixels (distinct per seed)."""

    def make(width: int, height: int, seed: int = 0, orientation: int | None = None) -> bytes:
        if orientation is None:
            return _encode(width, height, "JPEG", seed)
        exif = Image.Exif()
        exif[0x0112] = orientation
        return _encode(width, height, "JPEG", seed, exif=exif)

    return make


@pytest.fixture
def make_png() -> Callable[..., bytes]:
    """make_png(width, height, seed=0) -> PNG bytes of random pixels."""
    return lambda width, height, seed=0: _encode(width, height, "PNG", seed)


@pytest.fixture
def image_set(tmp_path: Path, make_jpeg: Callable[..., bytes], make_png: Callable[..., bytes]) -> dict[str, tuple[int, int]]:
    """Three images under tmp_path/src/images: a.jpg 64x48, b.jpg 80x60, c.png 50x40. Returns name -> (w, h)."""
    sizes = {"a.jpg": (64, 48), "b.jpg": (80, 60), "c.png": (50, 40)}
    folder = tmp_path / "src" / "images"
    folder.mkdir(parents=True)
    for seed, (name, (w, h)) in enumerate(sizes.items()):
        (folder / name).write_bytes(make_png(w, h, seed) if name.endswith(".png") else make_jpeg(w, h, seed))
    return sizes


@pytest.fixture
def write_dataset() -> Callable[..., Path]:
    """write_dataset(root, images={name: bytes}, labels={stem: text}) -> root, in the canonical layout (no manifest)."""

    def write(root: Path, images: dict[str, bytes], labels: dict[str, str]) -> Path:
        (root / "images").mkdir(parents=True)
        (root / "labels").mkdir()
        for name, data in images.items():
            (root / "images" / name).write_bytes(data)
        for stem, text in labels.items():
            (root / "labels" / f"{stem}.txt").write_text(text)
        return root

    return write


@pytest.fixture
def tree_digest() -> Callable[[Path], dict[str, str]]:
    """tree_digest(folder) -> {relative path: sha256} of every file below it (to prove a source unchanged)."""

    def digest(root: Path) -> dict[str, str]:
        return {
            os.path.relpath(os.path.join(folder, name), root): hashlib.sha256(Path(folder, name).read_bytes()).hexdigest()
            for folder, _, names in os.walk(root)
            for name in names
        }

    return digest


# hostile sources (tests/data/hostile.py builds them; hostile_cases.py lists them)


@pytest.fixture
def world(tmp_path: Path) -> World:
    """tmp_path/world: an empty dataset folder ds/ beside foreign files that hold the SECRET marker."""
    return World(tmp_path / "world")


@pytest.fixture
def source_state() -> Callable[[Path], dict[str, str]]:
    """source_state(folder) -> {relative path: sha256 of a file, or 'link -> target' of a symlink}: the whole tree, links included."""

    def state(root: Path) -> dict[str, str]:
        found = {}
        for folder, dirs, files in os.walk(root):  # does not follow links to folders: they are recorded as links
            for name in dirs + files:
                path = Path(folder, name)
                rel = os.path.relpath(path, root)
                if path.is_symlink():
                    found[rel] = f"link -> {os.readlink(path)}"
                elif path.is_file():
                    found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found

    return state
