"""`private_view`: Ultralytics reads the dataset through it and writes labels.cache only into it; images are never copied.

The view is made in the default temp dir, as the train and evaluate steps do. Where the source is on
the same filesystem its files are hard-linked; on another one (a tmpfs mounted for the test, as a
SageMaker channel is not on /tmp's filesystem) they are symbolic links. Ultralytics' own dataset
object is built on the view both ways.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skyops.data.layout import IMAGES, LABELS, private_view, write_data_yaml
from skyops.errors import DataValidationError

NAMES = ["red", "blue"]


def make_split_dataset(root: Path, images: int = 6, size: int = 64) -> Path:
    """Noise images with one box each, labels, and train/val lists, in the canonical layout."""
    rng = np.random.default_rng(0)
    (root / IMAGES).mkdir(parents=True)
    (root / LABELS).mkdir()
    for i in range(images):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)  # (H, W, 3)
        pixels[16:40, 8:32] = (220, 30, 30)
        Image.fromarray(pixels).save(root / IMAGES / f"frame{i}.png")
        (root / LABELS / f"frame{i}.txt").write_text("0 0.3125 0.4375 0.375 0.375\n")
    (root / "train.txt").write_text("".join(f"images/frame{i}.png\n" for i in range(images - 2)))
    (root / "val.txt").write_text("".join(f"images/frame{i}.png\n" for i in range(images - 2, images)))
    (root / "manifest.json").write_text("{}\n")
    return root


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def other_filesystem(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh tmpfs: a filesystem that is not the default temp dir's."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path_factory.mktemp("tmpfs")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


@pytest.fixture(scope="module")
def ultralytics_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skyops.training.ultra import import_ultralytics

    state = tmp_path_factory.mktemp("ultra-state")
    import_ultralytics(state)
    return state


def load_with_ultralytics(view: Path, work: Path) -> tuple[int, int]:
    """Build Ultralytics' train dataset on the view as its trainer does; (images, boxes) it found."""
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(write_data_yaml(view, work / "data.yaml", NAMES)))
    dataset = YOLODataset(img_path=data["train"], imgsz=64, augment=False, data=data, task="detect", batch_size=2)
    image, _, _ = dataset.load_image(0)  # the pixels, read through the link
    assert image.shape == (64, 64, 3)
    return len(dataset.labels), sum(len(label["cls"]) for label in dataset.labels)


def test_on_the_same_filesystem_files_are_hard_links_and_the_cache_stays_in_the_view(tmp_path: Path, ultralytics_state: Path) -> None:
    source = make_split_dataset(tmp_path / "source")
    before = tree_digest(source)
    view = private_view(source, tmp_path / "work" / "data")
    for folder in (IMAGES, LABELS):
        for link in (view / folder).iterdir():
            assert not link.is_symlink() and link.stat().st_ino == (source / folder / link.name).stat().st_ino
    assert load_with_ultralytics(view, tmp_path / "work") == (4, 4)
    assert (view / "labels.cache").is_file()
    assert tree_digest(source) == before  # no labels.cache, nothing changed


def test_across_filesystems_files_are_symlinks_and_no_image_is_copied(
    other_filesystem: Path, tmp_path: Path, ultralytics_state: Path
) -> None:
    source = make_split_dataset(other_filesystem / "channel")
    assert os.stat(source).st_dev != os.stat(tmp_path).st_dev
    before = tree_digest(source)
    view = private_view(source, tmp_path / "data")
    for folder in (IMAGES, LABELS):
        links = sorted((view / folder).iterdir())
        assert len(links) == 6
        for link in links:
            assert link.is_symlink() and Path(os.readlink(link)) == source / folder / link.name
    assert load_with_ultralytics(view, tmp_path) == (4, 4)
    assert (view / "labels.cache").is_file() and not (view / "labels.cache").is_symlink()
    assert tree_digest(source) == before  # the channel holds no labels.cache


def test_the_split_lists_and_manifest_are_the_views_own(tmp_path: Path) -> None:
    source = make_split_dataset(tmp_path / "source")
    view = private_view(source, tmp_path / "view")
    for name in ("train.txt", "val.txt", "manifest.json"):
        assert (view / name).read_bytes() == (source / name).read_bytes()
        assert (view / name).stat().st_ino != (source / name).stat().st_ino


def test_a_file_that_cannot_be_linked_is_one_clear_error(tmp_path: Path) -> None:
    # As root, permissions stop nothing: a link whose path passes PATH_MAX (4096) fails either way (ENAMETOOLONG).
    source = make_split_dataset(tmp_path / "source", images=1)
    long_name = "x" * 240 + ".png"
    (source / IMAGES / "frame0.png").rename(source / IMAGES / long_name)
    wanted = 4096 - len(f"/{IMAGES}/{long_name}") + 4  # the target's length that puts the link's path past PATH_MAX
    target = tmp_path
    while len(str(target)) < wanted:
        target /= "d" * max(1, min(200, wanted - len(str(target)) - 1))
    assert len(str(target / IMAGES / long_name)) > 4096 > len(str(target / IMAGES))
    with pytest.raises(DataValidationError, match=rf"cannot link .*{long_name} into the private data view .*: File name too long$"):
        private_view(source, target)
