"""Convert one chunk of images into a staging folder; runs in the worker processes.

Per image: read the bytes once, hash them, take the size from the header (no pixel decode). Per
chunk: parse all annotations, then clip, drop zero-area boxes, map classes and normalise in one
numpy pass, and write one label file per image with a single `%`-format of all its rows.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from skyops.data.boxes import clip_xyxy, positive_area, xyxy_to_yolo
from skyops.data.formats import READERS, Format, SourceOptions
from skyops.data.formats.base import Item, Parsed, stem_of
from skyops.data.formats.files import link, read_bytes, write_new
from skyops.data.imageinfo import ImageHeaderError, probe
from skyops.data.layout import IMAGES, LABELS, ImageRecord

ROW = "%d %.6f %.6f %.6f %.6f\n"  # one YOLO label row: class cx cy w h


@dataclass(frozen=True)
class Chunk:
    fmt: Format
    options: SourceOptions
    rows: list[tuple[Any, ...]]  # `Item`s as plain tuples: they cross the process boundary
    staging: Path
    lookup: npt.NDArray[np.int64]  # target class id of each source class index
    classes: int  # number of target classes


# (name under images/, width, height, image sha256, label sha256, boxes, group, source): an
# `ImageRecord` as a plain tuple, built into one by `ChunkResult.image_records` in the main process.
RecordRow = tuple[str, int, int, str, str, int, str, str]


@dataclass
class ChunkResult:
    per_class: npt.NDArray[np.int64]  # boxes kept per target class
    records: list[RecordRow] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    clipped: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def image_records(self) -> list[ImageRecord]:
        """The converted images' manifest records, sorted by image path."""
        return [
            ImageRecord(
                image=f"{IMAGES}/{name}",
                label=f"{LABELS}/{stem_of(name)}.txt",
                width=width,
                height=height,
                sha256=sha,
                label_sha256=label_sha,
                boxes=boxes,
                group=group,
                source=source,
            )
            for name, width, height, sha, label_sha, boxes, group, source in sorted(self.records)
        ]

    def merge(self, other: ChunkResult) -> None:
        self.per_class += other.per_class
        self.records += other.records
        self.dropped += other.dropped
        self.clipped += other.clipped
        self.skipped += other.skipped
        self.problems += other.problems


def convert_chunk(chunk: Chunk) -> ChunkResult:
    """Convert one chunk of images into `chunk.staging`; problems and skips are reported, not raised."""
    result = ChunkResult(np.zeros(chunk.classes, dtype=np.int64))
    items, sizes, hashes = _read_images([Item._make(row) for row in chunk.rows], result)
    parsed = READERS[chunk.fmt].parse(items, sizes, chunk.options)
    result.dropped += parsed.dropped
    result.problems += parsed.problems
    ok, rows, bounds = _yolo_rows(parsed, items, sizes, chunk, result)

    images, labels = f"{chunk.staging}/{IMAGES}", f"{chunk.staging}/{LABELS}"
    for i, item in enumerate(items):
        if not ok[i]:
            continue
        first, last = bounds[i], bounds[i + 1]
        label = ((ROW * (last - first)) % tuple(rows[5 * first : 5 * last])).encode()
        stem = stem_of(item.name)
        write_new(f"{labels}/{stem}.txt", label)
        link(item.image, f"{images}/{item.name}")
        width, height = sizes[i]
        result.records.append(
            (item.name, width, height, hashes[i], hashlib.sha256(label).hexdigest(), last - first, item.group, item.source)
        )
    return result


def _read_images(chunk_items: list[Item], result: ChunkResult) -> tuple[list[Item], list[tuple[int, int]], list[str]]:
    """Read each image once: its sha256 and header size. Unreadable ones are skipped, size clashes reported."""
    items: list[Item] = []
    sizes: list[tuple[int, int]] = []
    hashes: list[str] = []
    for item in chunk_items:
        data = read_bytes(item.image)
        try:
            info = probe(data)
        except ImageHeaderError as e:
            result.skipped.append((item.source, f"unreadable image: {e}"))
            continue
        if item.declared_size and item.declared_size != (info.width, info.height):
            w, h = item.declared_size
            result.problems.append(f"{item.source}: the annotation says {w}x{h}, the image is {info.width}x{info.height}")
            continue
        items.append(item)
        sizes.append((info.width, info.height))
        hashes.append(hashlib.sha256(data).hexdigest())
    return items, sizes, hashes


def _yolo_rows(
    parsed: Parsed, items: list[Item], sizes: list[tuple[int, int]], chunk: Chunk, result: ChunkResult
) -> tuple[list[bool], list[float], list[int]]:
    """Box maths once for the whole chunk (every box carries its own image's size).

    Returns:
        ok: per image, False if it had a problem (not written);
        rows: flat [class, cx, cy, w, h, class, ...] of the kept boxes, image by image;
        bounds: image i owns rows bounds[i]:bounds[i + 1].
    """
    order = np.argsort(np.array(parsed.owner, dtype=np.int64), kind="stable")  # readers emit image by image; make sure
    owner = np.array(parsed.owner, dtype=np.int64)[order]
    classes = np.array(parsed.classes, dtype=np.int64)[order]
    unknown = (classes < 0) | (classes >= len(chunk.lookup))
    for i in sorted(set(owner[unknown].tolist())):
        bad = sorted(set(classes[unknown & (owner == i)].tolist()))
        result.problems.append(f"{items[i].source}: class id(s) {bad} outside the {len(chunk.lookup)} source classes")
    ok = np.ones(len(items), dtype=bool)
    ok[list(parsed.failed | set(owner[unknown].tolist()))] = False

    size = np.array(sizes, dtype=np.float64).reshape(-1, 2)
    width, height = size[owner, 0], size[owner, 1]
    boxes, changed = clip_xyxy(np.array(parsed.boxes, dtype=np.float64).reshape(-1, 4)[order], width, height)
    valid = ok[owner]
    keep = positive_area(boxes) & valid
    result.clipped = int(np.count_nonzero(changed & keep))
    if zero_area := int(np.count_nonzero(valid & ~keep)):
        result.dropped["zero_area"] += zero_area
    owner, target = owner[keep], chunk.lookup[classes[keep]]
    result.per_class += np.bincount(target, minlength=chunk.classes)
    rows = np.column_stack((target, xyxy_to_yolo(boxes[keep], width[keep], height[keep]))).ravel().tolist()
    bounds = np.searchsorted(owner, np.arange(len(items) + 1)).tolist()
    return ok.tolist(), rows, bounds
