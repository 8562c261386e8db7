"""COCO instances JSON (`images`, `annotations`, `categories`) plus a folder of images.

The source is the JSON file, or a folder holding exactly one such file (at its top or under
annotations/). `file_name`s are resolved against `images_dir` (default: the folder that holds the
JSON), then against `images_dir/images`. Class order = categories sorted by id. `bbox` is
[left, top, width, height] in pixels. `iscrowd=1` boxes are dropped as `crowd` unless
`keep_ignored`. Images without annotations are kept as negatives.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from skyops.data.formats.base import BoxTuple, Format, Item, Parsed, SourceOptions, SourcePlan, inline_parse, unique_names
from skyops.data.layout import group_of

_KEYS = ("images", "annotations", "categories")


def _load(path: Path) -> dict[str, Any] | None:
    """The JSON object at `path` if it is a COCO instances file, else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, dict) and all(isinstance(data.get(k), list) for k in _KEYS):
        return data
    return None


def coco_files(path: Path) -> list[Path]:
    """COCO instances files: `path` itself, or the JSON files in it or in its annotations/."""
    if path.is_file():
        return [path] if _load(path) is not None else []
    candidates = [*sorted(path.glob("*.json")), *sorted(path.glob("annotations/*.json"))] if path.is_dir() else []
    return [p for p in candidates if _load(p) is not None]


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
        if len(files) != 1:
            listed = ", ".join(str(f) for f in files)
            return SourcePlan(
                names=(), items=[], problems=[f"expected exactly one COCO instances JSON in {source}, found {len(files)}: {listed}"]
            )
        data = _load(files[0])
        assert data is not None  # coco_files only returns loadable files
        images_dir = options.images_dir or files[0].parent
        problems: list[str] = []
        dropped: Counter[str] = Counter()

        categories = sorted(data["categories"], key=lambda c: c["id"])
        names = tuple(str(c["name"]) for c in categories)
        for name, count in Counter(names).items():
            if count > 1:
                problems.append(f"category name {name!r} is used by {count} category ids")
        index = {c["id"]: i for i, c in enumerate(categories)}
        images = {im["id"]: im for im in data["images"]}

        boxes: dict[Any, list[tuple[int, BoxTuple]]] = defaultdict(list)
        annotated: set[Any] = set()  # images with at least one valid annotation, kept or dropped
        for n, ann in enumerate(data["annotations"]):
            where = f"annotations[{n}] (id {ann.get('id')})"
            bbox = ann.get("bbox")
            if ann.get("image_id") not in images:
                problems.append(f"{where}: image_id {ann.get('image_id')!r} is not in images")
            elif ann.get("category_id") not in index:
                problems.append(f"{where}: category_id {ann.get('category_id')!r} is not in categories")
            elif not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)):
                problems.append(f"{where}: bbox {bbox!r} is not four finite numbers [left, top, width, height]")
            elif ann.get("iscrowd") and not options.keep_ignored:
                dropped["crowd"] += 1
                annotated.add(ann["image_id"])
            else:
                annotated.add(ann["image_id"])
                left, top, w, h = (float(v) for v in bbox)
                boxes[ann["image_id"]].append((index[ann["category_id"]], (left, top, left + w, top + h)))

        found: list[tuple[dict[str, Any], Path]] = []
        for im in sorted(images.values(), key=lambda im: str(im.get("file_name"))):
            file_name = str(im.get("file_name", ""))
            path = next((p for p in (images_dir / file_name, images_dir / "images" / file_name) if p.is_file()), None)
            if path is None:
                problems.append(f"image {file_name!r} (id {im['id']}) is not in {images_dir} nor in {images_dir / 'images'}")
            else:
                found.append((im, path))
        out_names = unique_names([str(im["file_name"]).replace("\\", "/") for im, _ in found])
        items = []
        for (im, path), name in zip(found, out_names, strict=True):
            entries = boxes.get(im["id"], [])
            size = (int(im["width"]), int(im["height"])) if im.get("width") and im.get("height") else None
            items.append(
                Item(
                    image=str(path),
                    name=name,
                    group=group_of(path.stem),
                    source=str(im["file_name"]),
                    classes=tuple(c for c, _ in entries),
                    boxes=tuple(b for _, b in entries),
                    declared_size=size,
                )
            )
        unlabelled = sum(1 for im, _ in found if im["id"] not in annotated)
        return SourcePlan(names=names, items=items, problems=problems, dropped=dropped, unlabelled=unlabelled)

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        return inline_parse(items)
