"""Dataset builders for the profile, split and synth tests (plain functions; fixtures live in each test module).

They write the canonical layout themselves, with `layout.ImageRecord`, so these tests do not depend
on the converters under test elsewhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from skyops.data.layout import IMAGES, LABELS, ImageRecord, Manifest, link_or_copy

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
AERIAL_CARS = DATASETS / "aerial-cars" / "datasets"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def yolo_view(image_dirs: Iterable[Path], root: Path, names: Sequence[str]) -> Manifest:
    """Hard-link YOLO `<split>/images` (+ sibling `labels`) folders into a canonical dataset at `root`.

    Groups are left empty, so a split has to derive them from the file names.
    """
    records = []
    for image_dir in image_dirs:
        for image in sorted(image_dir.iterdir()):
            label = image_dir.parent / "labels" / f"{image.stem}.txt"
            link_or_copy(image, root / IMAGES / image.name)
            if label.is_file():
                link_or_copy(label, root / LABELS / label.name)
            else:
                (root / LABELS / label.name).write_text("")
            with Image.open(image) as im:
                width, height = im.size
            records.append(
                ImageRecord(
                    image=f"{IMAGES}/{image.name}",
                    label=f"{LABELS}/{label.name}",
                    width=width,
                    height=height,
                    sha256=sha256(image),
                    label_sha256=sha256(root / LABELS / label.name),
                    boxes=sum(1 for line in (root / LABELS / label.name).read_text().splitlines() if line.strip()),
                    source=str(image),
                )
            )
    manifest = Manifest(names=list(names), images=records)
    manifest.write(root)
    return manifest


def tiny_dataset(
    root: Path,
    images: Sequence[tuple[int, int, Sequence[tuple[int, float, float, float, float]]]],
    names: Sequence[str],
    groups: Sequence[str] = (),
) -> Manifest:
    """Write gray PNGs with the given boxes; `images` holds (width, height, [(class, x, y, w, h) in px])."""
    (root / IMAGES).mkdir(parents=True, exist_ok=True)
    (root / LABELS).mkdir(parents=True, exist_ok=True)
    records = []
    for index, (width, height, boxes) in enumerate(images):
        image, label = root / IMAGES / f"im{index:03d}.png", root / LABELS / f"im{index:03d}.txt"
        pixels = np.full((height, width), 40 + 10 * (index % 20), dtype=np.uint8)
        Image.fromarray(pixels).save(image)
        label.write_text(
            "".join(
                f"{c} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}\n" for c, x, y, w, h in boxes
            )
        )
        records.append(
            ImageRecord(
                image=f"{IMAGES}/{image.name}",
                label=f"{LABELS}/{label.name}",
                width=width,
                height=height,
                sha256=sha256(image),
                label_sha256=sha256(label),
                boxes=len(boxes),
                group=groups[index] if groups else "",
            )
        )
    manifest = Manifest(names=list(names), images=records)
    manifest.write(root)
    return manifest
