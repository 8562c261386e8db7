"""YOLO txt: `.../images/<rel>.<ext>` with `.../labels/<rel>.txt`, names from a data.yaml (checked pass-through).

Image folders are found on disk, not through the yaml's `train:`/`val:` paths: exported yamls
often hold paths of the machine that wrote them (Roboflow writes `../train/images`). Every folder
named `images` with a sibling `labels`, at most three levels below the source, is read recursively
(so `images/train/x.jpg` pairs with `labels/train/x.txt`, as in Ultralytics). The class names come
from `names` in the source's data.yaml (or its only *.yaml with `names`), else from the caller.

Rows are `class cx cy w h` normalised, or a polygon `class x1 y1 x2 y2 ...` (Ultralytics'
segment format), whose bounding box is taken. Every row is checked and re-written; an image without
a label file is a negative (no objects) and counted as unlabelled.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skyops.data.formats.base import (
    Format,
    Item,
    Parsed,
    SourceOptions,
    SourcePlan,
    first_lines,
    is_number,
    unique_names,
    walk_images,
)
from skyops.data.formats.files import read_bytes
from skyops.data.layout import group_of

_MAX_DEPTH = 3


def image_roots(path: Path) -> list[Path]:
    """Folders named `images` with a sibling `labels`, at most three levels below `path`."""
    if not path.is_dir():
        return []
    roots = []
    for folder, dirs, _ in os.walk(path):
        depth = len(Path(folder).relative_to(path).parts)
        if "images" in dirs and "labels" in dirs:
            roots.append(Path(folder) / "images")
        dirs[:] = sorted(d for d in dirs if d not in ("images", "labels") and not d.startswith(".")) if depth < _MAX_DEPTH else []
    return sorted(roots)


def read_names(source: Path) -> tuple[tuple[str, ...] | None, str]:
    """Class names from the source's yaml and the file they came from; (None, why) if there are none."""
    import yaml  # only needed for YOLO sources

    candidates = [source / "data.yaml"] if (source / "data.yaml").is_file() else sorted([*source.glob("*.yaml"), *source.glob("*.yml")])
    with_names = []
    for path in candidates:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            return None, f"{path.name} is not valid YAML ({e})"
        if isinstance(data, dict) and "names" in data:
            with_names.append((path, data["names"]))
    if len(with_names) != 1:
        return None, f"{len(with_names)} yaml files with 'names' in {source}"
    path, names = with_names[0]
    return _names_list(names, path.name)


def _names_list(names: Any, where: str) -> tuple[tuple[str, ...] | None, str]:
    if isinstance(names, list):
        return tuple(str(n) for n in names), where
    if isinstance(names, Mapping) and sorted(names) == list(range(len(names))):
        return tuple(str(names[i]) for i in range(len(names))), where
    return None, f"'names' in {where} is neither a list nor a mapping of ids 0..N-1"


class YoloReader:
    format = Format.YOLO
    expected = (
        "a folder with images/ and labels/ side by side (at most 3 levels down) holding 'class cx cy w h' rows, and a data.yaml with names"
    )

    def evidence(self, path: Path) -> str | None:
        roots = image_roots(path)
        for root in roots:
            labels = root.parent / "labels"
            for folder, _, files in os.walk(labels):
                texts = sorted(f for f in files if f.endswith(".txt"))[:5]
                for name in texts:
                    lines = first_lines(Path(folder) / name, 1)
                    if lines:
                        fields = lines[0].split()
                        if len(fields) >= 5 and all(is_number(f) for f in fields):
                            return f"{len(roots)} images/ folder(s) with labels/ beside them holding space-separated rows ({lines[0]!r})"
                        return None
        return None

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan:
        names, where = read_names(source)
        problems: list[str] = []
        if names is None:
            if options.yolo_names is None:
                problems.append(f"no class names: {where}; expected a data.yaml with 'names' (or pass names=[...])")
            names = options.yolo_names or ()
        found: list[tuple[Path, Path | None, str]] = []
        for root in image_roots(source):
            labels = root.parent / "labels"
            for image in walk_images(root):
                rel = image.relative_to(root)
                label = labels / rel.with_suffix(".txt")
                found.append((image, label if label.is_file() else None, image.relative_to(source).as_posix()))
        out_names = unique_names([rel for _, _, rel in found])
        items = [
            Item(image=str(image), name=name, group=group_of(image.stem), source=rel, annotation=str(label) if label else None)
            for (image, label, rel), name in zip(found, out_names, strict=True)
        ]
        return SourcePlan(names=names, items=items, problems=problems, unlabelled=sum(1 for _, label, _ in found if label is None))

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        parsed = Parsed()
        for owner, (item, (width, height)) in enumerate(zip(items, sizes, strict=True)):
            if item.annotation is not None:
                text = read_bytes(item.annotation).decode("utf-8", errors="replace")
                where = f"{os.path.basename(os.path.dirname(item.annotation))}/{os.path.basename(item.annotation)}"
                _parse_rows(text, owner, where, width, height, parsed)
        return parsed


def _parse_rows(text: str, owner: int, where: str, width: int, height: int, parsed: Parsed) -> None:
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            parsed.problem(
                owner, f"{where}:{lineno}: expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...', got {len(fields)} fields"
            )
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            parsed.problem(owner, f"{where}:{lineno}: fields are not numbers ({line.strip()!r})")
            continue
        if not all(math.isfinite(v) for v in values):
            parsed.problem(owner, f"{where}:{lineno}: non-finite value ({line.strip()!r})")
            continue
        if not values[0].is_integer():
            parsed.problem(owner, f"{where}:{lineno}: class {fields[0]!r} is not an integer")
            continue
        if len(fields) == 5:
            cx, cy, w, h = values[1:]
            box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        else:
            xs, ys = values[1::2], values[2::2]
            box = (min(xs) * width, min(ys) * height, max(xs) * width, max(ys) * height)
        parsed.add(owner, int(values[0]), box)
