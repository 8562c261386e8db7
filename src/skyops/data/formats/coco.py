"""COCO instances JSON (`images`, `annotations`, `categories`) plus a folder of images.

The source is the JSON file, or a folder holding exactly one such file (at its top or under
annotations/). `file_name`s are resolved against `images_dir` (default: the folder that holds the
JSON), then against `images_dir/images`; a name that leads outside `images_dir` (`../`, an absolute
path, a symlink) is refused. Class order = categories sorted by id. `bbox` is [left, top, width,
height] in pixels. `iscrowd=1` boxes are dropped as `crowd` unless `keep_ignored`. Images without
annotations are kept as negatives (an empty label file): in COCO, an image listed with no
annotation has no objects. Two images sharing an id are refused: their annotations cannot be told
apart. Entries of the wrong shape are refused (`source.structure`), each named by its index.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from skyops.data.formats.base import BoxTuple, Format, Item, Parsed, SourceOptions, SourcePlan, inline_parse, unique_names
from skyops.data.formats.files import read_bytes
from skyops.data.formats.findings import Finding, Rule
from skyops.data.formats.paths import Root, escaping_files
from skyops.data.layout import group_of

_KEYS = ("images", "annotations", "categories")


def _load(path: Path) -> dict[str, Any] | None:
    """The JSON object at `path` if it is a COCO instances file (UTF-8, a BOM allowed), else None."""
    try:
        data = json.loads(read_bytes(str(path)).decode("utf-8").removeprefix("\ufeff"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if isinstance(data, dict) and all(isinstance(data.get(k), list) for k in _KEYS):
        return data
    return None


def _candidates(path: Path) -> tuple[list[Path], list[Path]]:
    """JSON files in the folder `path` or its annotations/: those inside it, and links leading outside it."""
    root = Root(path)
    found = [*sorted(path.glob("*.json")), *sorted(path.glob("annotations/*.json"))]
    return [p for p in found if not root.escapes(p)], [p for p in found if root.escapes(p)]


def coco_files(path: Path) -> list[Path]:
    """COCO instances files: `path` itself, or the JSON files in it or in its annotations/."""
    if path.is_file():
        return [path] if _load(path) is not None else []
    return [p for p in _candidates(path)[0] if _load(p) is not None] if path.is_dir() else []


def _is_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _size(im: dict[str, Any]) -> tuple[int, int] | str | None:
    """The (width, height) an image entry states, None if it states none, or why it is malformed."""
    width, height = im.get("width"), im.get("height")
    if not width and not height:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in (width, height)):
        return f"width {width!r} / height {height!r} are not positive numbers"
    return int(width), int(height)  # type: ignore[arg-type]  # checked just above


class CocoReader:
    format = Format.COCO
    expected = "a COCO instances JSON file (keys images, annotations, categories) or a folder holding exactly one, plus its images"

    def evidence(self, path: Path) -> str | None:
        files = coco_files(path)
        if not files:
            return None
        return f"COCO instances JSON {', '.join(f.name for f in files)} (keys images, annotations, categories)"

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan:
        files = coco_files(source)
        escaping = escaping_files([p.relative_to(source).as_posix() for p in _candidates(source)[1]], "") if source.is_dir() else []
        if len(files) != 1 or escaping:
            listed = ", ".join(str(f) for f in files)
            layout = [] if len(files) == 1 else [f"expected exactly one COCO instances JSON in {source}, found {len(files)}: {listed}"]
            return SourcePlan(
                names=(), items=[], findings=escaping + [Finding(file="", rule=Rule.SOURCE_LAYOUT, message=m) for m in layout]
            )
        data = _load(files[0])
        assert data is not None  # coco_files only returns loadable files
        json_name = files[0].name if source.is_file() else files[0].relative_to(source).as_posix()
        images_dir = options.images_dir or files[0].parent
        findings: list[Finding] = []

        def problem(entry: str, rule: Rule, message: str) -> None:
            findings.append(Finding(file=json_name, entry=entry, rule=rule, message=message))

        with open(files[0], "rb") as f:
            if f.read(3) == b"\xef\xbb\xbf":
                findings.append(Finding(file=json_name, rule=Rule.TEXT_BOM, message="starts with a UTF-8 byte-order mark (ignored)"))

        categories = []
        for n, c in enumerate(data["categories"]):
            if isinstance(c, dict) and isinstance(c.get("id"), int) and "name" in c:
                categories.append(c)
            else:
                problem(f"categories[{n}]", Rule.SOURCE_STRUCTURE, "expected {'id': <integer>, 'name': <name>}")
        categories.sort(key=lambda c: c["id"])
        names = tuple(str(c["name"]) for c in categories)
        for name, count in Counter(names).items():
            if count > 1:
                problem("categories", Rule.NAMES_INVALID, f"category name {name!r} is used by {count} category ids")
        for category_id, count in Counter(c["id"] for c in categories).items():
            if count > 1:
                problem("categories", Rule.NAMES_INVALID, f"category id {category_id} is used by {count} categories")
        index = {c["id"]: i for i, c in enumerate(categories)}

        images: dict[Any, tuple[int, dict[str, Any]]] = {}  # id -> (index in images, entry)
        ambiguous: set[Any] = set()
        for n, im in enumerate(data["images"]):
            if not (isinstance(im, dict) and _is_id(im.get("id")) and isinstance(im.get("file_name"), str) and im["file_name"]):
                problem(f"images[{n}]", Rule.SOURCE_STRUCTURE, "expected {'id': <integer or string>, 'file_name': <name>, ...}")
            elif im["id"] in images:
                first, other = images[im["id"]]
                ambiguous.add(im["id"])
                problem(
                    f"images[{n}]",
                    Rule.IMAGE_DUPLICATE_ID,
                    f"{im['file_name']!r} has id {im['id']!r}, as has images[{first}] {other['file_name']!r}: their annotations cannot be told apart",
                )
            elif isinstance(size := _size(im), str):
                problem(f"images[{n}]", Rule.SOURCE_STRUCTURE, f"{im['file_name']!r}: {size}")
            else:
                images[im["id"]] = (n, im)

        boxes: dict[Any, list[tuple[int, BoxTuple, int]]] = defaultdict(list)  # image id -> (class, xyxy, annotation index)
        dropped: Counter[str] = Counter()
        for n, ann in enumerate(data["annotations"]):
            entry = f"annotations[{n}]"
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            bbox = ann.get("bbox") if isinstance(ann, dict) else None
            if not isinstance(ann, dict):
                problem(entry, Rule.SOURCE_STRUCTURE, "expected an object with image_id, category_id and bbox")
            elif _is_id(image_id) and image_id in ambiguous:
                continue  # the duplicate id is refused above
            elif not _is_id(image_id) or image_id not in images:
                problem(entry, Rule.SOURCE_STRUCTURE, f"image_id {image_id!r} is not the id of an image")
            elif not _is_id(ann.get("category_id")) or ann["category_id"] not in index:
                problem(entry, Rule.CLASS_UNKNOWN, f"category_id {ann.get('category_id')!r} is not in categories")
            elif not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
                problem(entry, Rule.ROW_UNPARSEABLE, f"bbox {bbox!r} is not four numbers [left, top, width, height]")
            elif not all(math.isfinite(v) for v in bbox):
                problem(entry, Rule.BOX_NOT_FINITE, f"bbox {bbox!r} is not finite")
            elif ann.get("iscrowd") and not options.keep_ignored:
                dropped["crowd"] += 1
            else:
                left, top, w, h = (float(v) for v in bbox)
                boxes[image_id].append((index[ann["category_id"]], (left, top, left + w, top + h), n))

        root = Root(images_dir)
        found: list[tuple[dict[str, Any], Path]] = []
        for n, im in sorted(images.values(), key=lambda entry: entry[1]["file_name"]):
            file_name = im["file_name"]
            path, escapes = None, False
            for candidate in (file_name, f"images/{file_name}"):  # the first that leaves the root or exists decides
                resolved = root.inside(candidate)
                if resolved is None or os.path.isfile(resolved):
                    path, escapes = (Path(resolved) if resolved else None), resolved is None
                    break
            if escapes:
                problem(
                    f"images[{n}]",
                    Rule.PATH_ESCAPES_ROOT,
                    f"file_name {file_name!r} leads outside the images folder {images_dir}: names are relative to --images-dir (images_dir in Python)",
                )
            elif path is None:
                problem(
                    f"images[{n}]",
                    Rule.IMAGE_MISSING,
                    f"image {file_name!r} (id {im['id']!r}) is not in {images_dir} nor in {images_dir / 'images'}",
                )
            else:
                found.append((im, path))
        out_names = unique_names([str(im["file_name"]).replace("\\", "/") for im, _ in found])
        items = []
        for (im, path), name in zip(found, out_names, strict=True):
            entries = boxes.get(im["id"], [])
            items.append(
                Item(
                    image=str(path),
                    name=name,
                    group=group_of(path.stem),
                    source=im["file_name"],
                    label=json_name,
                    classes=tuple(c for c, _, _ in entries),
                    boxes=tuple(b for _, b, _ in entries),
                    refs=tuple(n for _, _, n in entries),
                    declared_size=_size(im),  # type: ignore[arg-type]  # malformed sizes were refused above
                )
            )
        return SourcePlan(names=names, items=items, findings=findings, dropped=dropped)

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        return inline_parse(items)
