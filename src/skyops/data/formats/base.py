"""What every source-format reader shares: the plan it hands the converter, and small helpers.

A reader does two things. `plan` runs once, in the main process: it finds the images, reads
whatever annotation files are global (COCO JSON, a Ground Truth manifest, all VOC XMLs) and returns
one `Item` per image. `parse` runs in the workers, once per chunk of images, with each image's size
read from its header: formats with one annotation file per image (VisDrone, YOLO) parse it there,
in parallel; the others return the boxes the plan already holds. A chunk's boxes come back as flat
lists (one entry per box, `owner` = index of its image in the chunk) so that the box maths runs
once per chunk in numpy instead of once per image.

Neither raises on bad data: what they find goes into `findings` (see findings.py for the rules
and what each does), so that one run reports every problem of a source.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple, Protocol

from skyops.data.formats.findings import Finding, Rule

BoxTuple = tuple[float, float, float, float]  # xyxy in pixels


class Format(StrEnum):
    VISDRONE = "visdrone"
    COCO = "coco"
    VOC = "voc"
    GROUNDTRUTH = "groundtruth"
    YOLO = "yolo"
    DOTA = "dota"
    DIOR = "dior"


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    """Reader settings that come from the caller, not from the data.

    Attributes:
        keep_ignored: keep boxes the source marks as ignored (VisDrone category 0 / 11 and
            score 0, COCO `iscrowd`, VOC, DIOR and DOTA `difficult`) instead of dropping and counting them.
        images_dir: where COCO `file_name`s and Ground Truth `source-ref`s are resolved
            (default: the folder holding the JSON / manifest).
        s3_prefix: `s3://bucket/prefix/` stripped from Ground Truth `source-ref`s before they are
            resolved against `images_dir` (no AWS call is ever made).
        yolo_names: class names of a YOLO source that has no data.yaml.
        obb: also write YOLO-OBB labels (labels-obb/) for a source with oriented boxes (DOTA).
    """

    keep_ignored: bool = False
    images_dir: Path | None = None
    s3_prefix: str | None = None
    yolo_names: tuple[str, ...] | None = None
    obb: bool = False


class Item(NamedTuple):
    """One source image and where its boxes come from: an annotation file, or inline (xyxy pixels).

    A NamedTuple of plain strings, as items cross process boundaries by the thousand: sent as
    plain tuples they pickle in ~1 µs, against ~22 µs for a slotted dataclass holding `Path`s.
    """

    image: str  # absolute path
    name: str  # file name under images/, unique in the dataset
    group: str
    source: str  # the image's path relative to the source root, for lineage
    label: str = ""  # the file holding its annotation, relative to the source root ('' = none: no label file is written)
    annotation: str | None = None  # absolute path of a per-image annotation file
    classes: tuple[int, ...] = ()  # inline: source class index per box
    boxes: tuple[BoxTuple, ...] = ()
    refs: tuple[int, ...] = ()  # inline: each box's place in `label` (COCO/GT annotation index, VOC object number)
    line: int = 0  # the line of `label` holding this image's entry (Ground Truth)
    declared_size: tuple[int, int] | None = None  # (width, height) the annotation states


@dataclass(slots=True)
class Parsed:
    """The boxes of a chunk of images, one list entry per box, plus what was dropped and what was found."""

    owner: list[int] = field(default_factory=list)  # index of the box's image in the chunk
    classes: list[int] = field(default_factory=list)  # source class index
    boxes: list[BoxTuple] = field(default_factory=list)  # xyxy pixels
    refs: list[int] = field(default_factory=list)  # the box's line in its file, or its index (see `Item.refs`)
    # per box, the format's own attributes beyond class and box (VisDrone: truncation, occlusion; see
    # skyops.data.attributes); None for formats that have none
    attributes: list[tuple[int, int]] | None = None
    # per box, the oriented quadrilateral (x1, y1, ..., x4, y4 in pixels) of formats that have one (DOTA); else None
    polygons: list[tuple[float, ...]] | None = None
    dropped: Counter[str] = field(default_factory=Counter)  # boxes the format marks as ignored, per reason
    findings: list[Finding] = field(default_factory=list)
    failed: set[int] = field(default_factory=set)  # images with a refusal: not converted

    def problem(self, owner: int, file: str, line: int, rule: Rule, message: str) -> None:
        self.findings.append(Finding(file=file, line=line, rule=rule, message=message))
        self.failed.add(owner)


@dataclass(kw_only=True)
class SourcePlan:
    names: tuple[str, ...]  # source class names by source index
    items: list[Item]
    findings: list[Finding] = field(default_factory=list)  # refusals, orphans, missing labels, notes found while planning
    dropped: Counter[str] = field(default_factory=Counter)  # boxes the format marks as ignored, per reason


class Reader(Protocol):
    format: Format
    expected: str  # what a source of this format looks like, for error messages

    def evidence(self, path: Path) -> str | None:
        """Why `path` looks like this format (one line), or None. Cheap: reads a few files at most."""
        ...

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan: ...

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        """Boxes of `items`, whose (width, height) in pixels are `sizes`."""
        ...


def inline_parse(items: list[Item]) -> Parsed:
    """`Reader.parse` for formats whose plan already holds every box."""
    parsed = Parsed()
    for i, item in enumerate(items):
        parsed.owner += [i] * len(item.boxes)
        parsed.classes += item.classes
        parsed.boxes += item.boxes
        parsed.refs += item.refs
    return parsed


def stem_of(name: str) -> str:
    """`os.path.splitext(name)[0]` for a plain file name, at a fifth of the cost (called per image)."""
    head, dot, _ = name.rpartition(".")
    return head if dot and head else name


def unique_names(relative: list[str]) -> list[str]:
    """Flat output file names whose stems are unique (label files are named by stem).

    The base name, or, where stems collide (the same name in train/ and val/), the relative path
    joined by `__`. Stems are compared lower-case: a case-insensitive file system would merge them.
    """
    base = [r.rsplit("/", 1)[-1] for r in relative]
    stems = [b.rsplit(".", 1)[0].lower() for b in base]
    counts = Counter(stems)
    return [b if counts[s] == 1 else r.replace("/", "__") for r, b, s in zip(relative, base, stems, strict=True)]


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def first_lines(path: Path | str, limit: int = 3) -> list[str]:
    """Up to `limit` non-empty lines from the start of a text file (reads at most 4 KiB; a BOM is dropped).

    For format detection only: callers pass files inside the source (see paths.py), as the
    evidence string may quote a line.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(4096).removeprefix("\ufeff")
    return [line.strip() for line in head.splitlines() if line.strip()][:limit]


def describe_folder(path: Path, limit: int = 8) -> str:
    """A short listing of what is in `path`, for 'found ...' parts of error messages."""
    if path.is_file():
        return f"a file ({path.suffix or 'no suffix'}, {path.stat().st_size} bytes)"
    if not path.is_dir():
        return "nothing (the path does not exist)"
    with os.scandir(path) as entries:
        names = sorted(e.name + ("/" if e.is_dir() else "") for e in entries if not e.name.startswith("."))
    if not names:
        return "an empty folder"
    shown = ", ".join(names[:limit])
    return f"{shown}{f', … ({len(names)} entries)' if len(names) > limit else ''}"


def roots_with(path: Path, *folders: str) -> list[Path]:
    """`path` if it holds every one of `folders`, else those of its sub-folders that do (sorted)."""

    def is_root(p: Path) -> bool:
        return all((p / folder).is_dir() for folder in folders)

    if is_root(path):
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and is_root(p))
