"""Convert one chunk of images into a staging folder; runs in the worker processes.

Per image: read the bytes once, hash them, take the size from the header (no pixel decode). Per
chunk: parse all annotations, then sort out bad boxes, clip, map classes and normalise in one numpy
pass (Python only touches the few boxes that get a finding), and write one label file per image
with a single `%`-format of all its rows. An image whose source has no annotation gets no label
file, so that validation can tell "nobody labelled it" (`label.missing`) from "no objects". A format
that keeps box attributes (VisDrone) also gets `attributes/<stem>.txt` beside each label file, and
one with oriented boxes (DOTA), asked for them (`obb`), `labels-obb/<stem>.txt` (see formats/dota.py).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from skyops.data.attributes import ATTRIBUTES
from skyops.data.attributes import COLUMNS as ATTRIBUTE_COLUMNS
from skyops.data.attributes import ROW as ATTRIBUTE_ROW
from skyops.data.boxes import clip_xyxy, positive_area, xyxy_to_yolo
from skyops.data.formats import READERS, Format, SourceOptions
from skyops.data.formats.base import Item, Parsed, stem_of
from skyops.data.formats.files import link, read_bytes, write_new
from skyops.data.formats.findings import Finding, Rule
from skyops.data.imageinfo import ImageHeaderError, probe
from skyops.data.layout import IMAGES, LABELS, OBB_LABELS, ImageRecord

ROW = "%d %.6f %.6f %.6f %.6f\n"  # one YOLO label row: class cx cy w h
OBB_ROW = "%d" + " %.6f" * 8 + "\n"  # one YOLO-OBB label row: class x1 y1 ... x4 y4


@dataclass(frozen=True)
class Chunk:
    fmt: Format
    options: SourceOptions
    rows: list[tuple[Any, ...]]  # `Item`s as plain tuples: they cross the process boundary
    staging: Path
    lookup: npt.NDArray[np.int64]  # target class id of each source class index
    classes: int  # number of target classes
    check_classes: bool = True  # False when the source has no class names (refused already): no finding per box


# (name under images/, width, height, image sha256, label sha256 ('' = no label file), boxes, group,
# source): an `ImageRecord` as a plain tuple, built into one by `ChunkResult.image_records` in the main process.
RecordRow = tuple[str, int, int, str, str, int, str, str]


@dataclass
class ChunkResult:
    per_class: npt.NDArray[np.int64]  # boxes kept per target class
    records: list[RecordRow] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)  # per reason: the format's ignored boxes and box.* rules
    clipped: int = 0
    findings: list[Finding] = field(default_factory=list)

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
        self.findings += other.findings


def convert_chunk(chunk: Chunk) -> ChunkResult:
    """Convert one chunk of images into `chunk.staging`; what is found is reported, never raised."""
    result = ChunkResult(np.zeros(chunk.classes, dtype=np.int64))
    items, sizes, hashes = _read_images([Item._make(row) for row in chunk.rows], result)
    parsed = READERS[chunk.fmt].parse(items, sizes, chunk.options)
    result.dropped += parsed.dropped
    result.findings += parsed.findings
    ok, rows, bounds, attributes, obb = _yolo_rows(parsed, items, sizes, chunk, result)

    images, labels = f"{chunk.staging}/{IMAGES}", f"{chunk.staging}/{LABELS}"
    if attributes is not None:
        os.makedirs(f"{chunk.staging}/{ATTRIBUTES}", exist_ok=True)
    if obb is not None:
        os.makedirs(f"{chunk.staging}/{OBB_LABELS}", exist_ok=True)
    for i, item in enumerate(items):
        if not ok[i]:
            continue
        first, last = bounds[i], bounds[i + 1]
        label_sha = ""  # no annotation in the source: no label file (see the module docstring)
        if item.label:
            label = ((ROW * (last - first)) % tuple(rows[5 * first : 5 * last])).encode()
            write_new(f"{labels}/{stem_of(item.name)}.txt", label)
            label_sha = hashlib.sha256(label).hexdigest()
            if attributes is not None:  # one line per label row, same order (skyops.data.attributes)
                side = ((ATTRIBUTE_ROW * (last - first)) % tuple(attributes[2 * first : 2 * last])).encode()
                write_new(f"{chunk.staging}/{ATTRIBUTES}/{stem_of(item.name)}.txt", side)
            if obb is not None:  # one row per label row, same order
                oriented = ((OBB_ROW * (last - first)) % tuple(obb[9 * first : 9 * last])).encode()
                write_new(f"{chunk.staging}/{OBB_LABELS}/{stem_of(item.name)}.txt", oriented)
        link(item.image, f"{images}/{item.name}")
        width, height = sizes[i]
        result.records.append((item.name, width, height, hashes[i], label_sha, last - first, item.group, item.source))
    return result


def _read_images(chunk_items: list[Item], result: ChunkResult) -> tuple[list[Item], list[tuple[int, int]], list[str]]:
    """Read each image once: its sha256 and header size. Unreadable ones are skipped, size clashes refused."""
    items: list[Item] = []
    sizes: list[tuple[int, int]] = []
    hashes: list[str] = []
    for item in chunk_items:
        try:
            data = read_bytes(item.image)
        except OSError as e:
            result.findings.append(
                Finding(file=item.source, rule=Rule.IMAGE_UNREADABLE, message=f"cannot read the file ({e.strerror}): skipped")
            )
            continue
        if not data:
            result.findings.append(Finding(file=item.source, rule=Rule.IMAGE_ZERO_BYTES, message="the file is empty (0 bytes): skipped"))
            continue
        try:
            info = probe(data)
        except ImageHeaderError as e:
            result.findings.append(Finding(file=item.source, rule=Rule.IMAGE_UNREADABLE, message=f"{e}: skipped"))
            continue
        if item.declared_size and item.declared_size != (info.width, info.height):
            w, h = item.declared_size
            message = f"the annotation says {w}x{h}, the image is {info.width}x{info.height}"
            result.findings.append(Finding(file=item.source, rule=Rule.IMAGE_SIZE_MISMATCH, message=message))
            continue
        if not info.complete:
            message = f"{info.format} data ends before its end marker: converted; validation's image.truncated decides"
            result.findings.append(Finding(file=item.source, rule=Rule.IMAGE_TRUNCATED, message=message))
        items.append(item)
        sizes.append((info.width, info.height))
        hashes.append(hashlib.sha256(data).hexdigest())
    return items, sizes, hashes


def _yolo_rows(
    parsed: Parsed, items: list[Item], sizes: list[tuple[int, int]], chunk: Chunk, result: ChunkResult
) -> tuple[list[bool], list[float], list[int], list[int] | None, list[float] | None]:
    """Box maths once for the whole chunk (every box carries its own image's size).

    Each box gets at most one box rule, in this order: negative size, zero area (both judged on
    the source's numbers), wholly outside the image, an exact duplicate of an earlier box of its
    image (kept once), partly outside (clipped).

    Returns:
        ok: per image, False if it had a refusal (not written);
        rows: flat [class, cx, cy, w, h, class, ...] of the kept boxes, image by image;
        bounds: image i owns rows bounds[i]:bounds[i + 1];
        attributes: flat [truncation, occlusion, ...] of the kept boxes in the same order, or None
            when the format keeps no attributes.
        obb: flat [class, x1, y1, ..., x4, y4, class, ...] of the kept boxes' quadrilaterals in the
            same order, normalised and clamped to [0, 1], or None unless asked and the format has them.
    """
    owner = np.array(parsed.owner, dtype=np.int64)
    order = np.argsort(owner, kind="stable")  # readers emit image by image; make sure
    owner = owner[order]
    classes = np.array(parsed.classes, dtype=np.int64)[order]
    refs = np.array(parsed.refs, dtype=np.int64)[order]
    source = np.array(parsed.boxes, dtype=np.float64).reshape(-1, 4)[order]  # (N, 4) xyxy pixels, as the source says
    unknown = (classes < 0) | (classes >= len(chunk.lookup))
    ok = np.ones(len(items), dtype=bool)
    ok[list(parsed.failed)] = False
    if chunk.check_classes:
        ok[owner[unknown]] = False
    for k in np.flatnonzero(unknown & chunk.check_classes).tolist():
        file, line, entry = _place(chunk.fmt, items[owner[k]], int(refs[k]))
        message = f"class id {classes[k]} is not one of the {len(chunk.lookup)} source classes"
        result.findings.append(Finding(file=file, line=line, entry=entry, rule=Rule.CLASS_UNKNOWN, message=message))

    size = np.array(sizes, dtype=np.float64).reshape(-1, 2)
    width, height = size[owner, 0], size[owner, 1]
    span = source[:, 2:] - source[:, :2]  # (N, 2) width, height in pixels
    negative = (span[:, 0] < 0) | (span[:, 1] < 0)
    zero = ~negative & ((span[:, 0] == 0) | (span[:, 1] == 0))
    boxes, changed = clip_xyxy(source, width, height)
    outside = ~negative & ~zero & ~positive_area(boxes)
    valid = ok[owner]
    good = valid & ~(negative | zero | outside | unknown)
    duplicate, original = _duplicates(owner, classes, source, good)
    keep = good & ~duplicate
    clipped = keep & changed
    rules = (
        (Rule.BOX_NEGATIVE_SIZE, negative),
        (Rule.BOX_ZERO_AREA, zero),
        (Rule.BOX_OUTSIDE_IMAGE, outside),
        (Rule.BOX_DUPLICATE, duplicate),
    )
    for rule, mask in rules:
        if count := int(np.count_nonzero(mask & valid)):
            result.dropped[str(rule)] += count
    result.clipped = int(np.count_nonzero(clipped))
    flagged = np.flatnonzero(valid & (negative | zero | outside | duplicate | clipped))
    if flagged.size:
        _box_findings(flagged, negative, zero, outside, duplicate, original, source, owner, refs, items, sizes, chunk.fmt, result)

    owner, target = owner[keep], chunk.lookup[classes[keep]]
    result.per_class += np.bincount(target, minlength=chunk.classes)
    rows = np.column_stack((target, xyxy_to_yolo(boxes[keep], width[keep], height[keep]))).ravel().tolist()
    bounds = np.searchsorted(owner, np.arange(len(items) + 1)).tolist()
    attributes = None
    if parsed.attributes is not None:
        attributes = np.array(parsed.attributes, dtype=np.int64).reshape(-1, len(ATTRIBUTE_COLUMNS))[order][keep].ravel().tolist()
    obb = None
    if chunk.options.obb and parsed.polygons is not None:
        corners = np.array(parsed.polygons, dtype=np.float64).reshape(-1, 8)[order][keep]  # (K, 8) x1 y1 ... x4 y4 pixels
        scale = np.tile(np.column_stack((width[keep], height[keep])), 4)  # (K, 8) w h w h ...
        obb = np.column_stack((target, np.clip(corners / scale, 0.0, 1.0))).ravel().tolist()
    return ok.tolist(), rows, bounds, attributes, obb


def _duplicates(
    owner: npt.NDArray[np.int64], classes: npt.NDArray[np.int64], boxes: npt.NDArray[np.float64], candidates: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Boxes among `candidates` with the same image, class and coordinates as an earlier one, and
    the index of that earlier box (-1 elsewhere). One sort of the chunk's boxes, no Python loop."""
    duplicate = np.zeros(len(owner), dtype=bool)
    original = np.full(len(owner), -1, dtype=np.int64)
    index = np.flatnonzero(candidates)
    if index.size < 2:
        return duplicate, original
    keys = np.column_stack((owner[index], classes[index], boxes[index]))  # (M, 6): ids are exact in float64
    order = np.lexsort(keys.T[::-1])  # by image, class, then coordinates; stable, so the earliest box comes first
    same = (keys[order][1:] == keys[order][:-1]).all(axis=1)
    if not same.any():
        return duplicate, original
    starts = np.concatenate(([True], ~same))
    run = np.cumsum(starts) - 1  # run number of each sorted position
    firsts = order[starts]  # position (in `index`) of each run's first box
    copies = order[1:][same]
    duplicate[index[copies]] = True
    original[index[copies]] = index[firsts[run[1:][same]]]
    return duplicate, original


def _box_findings(
    flagged: npt.NDArray[np.intp],
    negative: npt.NDArray[np.bool_],
    zero: npt.NDArray[np.bool_],
    outside: npt.NDArray[np.bool_],
    duplicate: npt.NDArray[np.bool_],
    original: npt.NDArray[np.int64],
    source: npt.NDArray[np.float64],
    owner: npt.NDArray[np.int64],
    refs: npt.NDArray[np.int64],
    items: list[Item],
    sizes: list[tuple[int, int]],
    fmt: Format,
    result: ChunkResult,
) -> None:
    """One finding per flagged box (only these few boxes go through Python)."""
    for k in flagged.tolist():
        item, (width, height) = items[owner[k]], sizes[owner[k]]
        file, line, entry = _place(fmt, item, int(refs[k]))
        w, h = source[k, 2] - source[k, 0], source[k, 3] - source[k, 1]
        if negative[k]:
            rule, message = Rule.BOX_NEGATIVE_SIZE, f"negative width or height ({w:g} x {h:g} px): dropped"
        elif zero[k]:
            rule, message = Rule.BOX_ZERO_AREA, f"zero width or height ({w:g} x {h:g} px): dropped"
        elif outside[k]:
            rule, message = Rule.BOX_OUTSIDE_IMAGE, f"lies wholly outside the {width}x{height} image: dropped"
        elif duplicate[k]:
            first_line, first_entry = _place(fmt, item, int(refs[original[k]]))[1:]
            rule, message = Rule.BOX_DUPLICATE, f"same class and box as {first_entry or f'line {first_line}'}: kept once"
        else:
            rule, message = Rule.BOX_OUT_OF_IMAGE, f"reaches outside the {width}x{height} image: clipped to it"
        result.findings.append(Finding(file=file, line=line, entry=entry, rule=rule, message=message))


def _place(fmt: Format, item: Item, ref: int) -> tuple[str, int, str]:
    """(file, line, entry) of a box: a line of a text file, or an entry of a structured one."""
    if fmt is Format.COCO:
        return item.label, 0, f"annotations[{ref}]"
    if fmt is Format.GROUNDTRUTH:
        return item.label, item.line, f"annotations[{ref}]"
    if fmt in (Format.VOC, Format.DIOR):
        return item.label, 0, f"object {ref}"
    return item.label, ref, ""  # VisDrone, YOLO, DOTA: the box's line
