"""YOLO txt: `.../images/<rel>.<ext>` with `.../labels/<rel>.txt`, names from a data.yaml (checked pass-through).

Image folders are found on disk, not through the yaml's `train:`/`val:` paths: exported yamls
often hold paths of the machine that wrote them (Roboflow writes `../train/images`). Every folder
named `images` with a sibling `labels`, at most three levels below the source, is read recursively
(so `images/train/x.jpg` pairs with `labels/train/x.txt`, as in Ultralytics). The class names come
from `names` in the source's data.yaml (or its only *.yaml with `names`), else from the caller.

Rows are `class cx cy w h` normalised, or a polygon `class x1 y1 x2 y2 ...` (Ultralytics'
segment format), whose bounding box is taken. Every row is checked and re-written. An empty label
file is an image with no objects; an image without a label file is converted without one
(`label.missing`: nobody said it is empty, validation decides); a label file without an image is
counted and not converted (`label.orphan`).
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
    stem_of,
    unique_names,
)
from skyops.data.formats.findings import Finding, Rule, read_text
from skyops.data.formats.paths import Root, escaping_files, escaping_folders, walk_files
from skyops.data.layout import IMAGE_SUFFIXES, group_of

_MAX_DEPTH = 3
_EVIDENCE_FILES = 5  # label files format detection reads at most


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


def read_names(source: Path, findings: list[Finding]) -> tuple[tuple[str, ...] | None, str]:
    """Class names from the source's yaml and the file they came from; (None, why) if there are none."""
    import yaml  # only needed for YOLO sources

    root = Root(source)
    candidates = [source / "data.yaml"] if (source / "data.yaml").is_file() else sorted([*source.glob("*.yaml"), *source.glob("*.yml")])
    with_names = []
    for path in candidates:
        if root.escapes(path):
            findings += escaping_files([path.name], "")
            continue
        text = read_text(str(path), path.name, findings)
        try:
            data = yaml.safe_load(text) if text is not None else None
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
    if isinstance(names, Mapping) and all(type(k) is int for k in names) and sorted(names) == list(range(len(names))):
        return tuple(str(names[i]) for i in range(len(names))), where
    return None, f"'names' in {where} is neither a list nor a mapping of ids 0..N-1"


class YoloReader:
    format = Format.YOLO
    expected = (
        "a folder with images/ and labels/ side by side (at most 3 levels down) holding 'class cx cy w h' rows, and a data.yaml with names"
    )

    def evidence(self, path: Path) -> str | None:
        """A numeric row at the top of one of the first label files (a damaged file among them does
        not hide the others), or, when those files are all empty (negatives), a yaml beside them."""
        roots = image_roots(path)
        rows = False  # a label file began with a row of another kind
        for label in _sample_labels(path, roots):
            lines = first_lines(label, 1)
            fields = lines[0].split() if lines else []
            if len(fields) >= 5 and all(is_number(f) for f in fields):
                return f"{len(roots)} images/ folder(s) with labels/ beside them holding space-separated rows ({lines[0]!r})"
            rows = rows or bool(lines)
        if roots and not rows and any(p.suffix in (".yaml", ".yml") and not Root(path).escapes(p) for p in path.iterdir()):
            return f"{len(roots)} images/ folder(s) with labels/ beside them (empty so far), and a yaml file"
        return None

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan:
        findings: list[Finding] = []
        names, where = read_names(source, findings)
        if names is None:
            if options.yolo_names is None:
                findings.append(
                    Finding(
                        file="",
                        rule=Rule.NAMES_MISSING,
                        message=f"no class names: {where}; expected a data.yaml with 'names' (or pass --classes a,b,... / names=[...] in Python)",
                    )
                )
            names = options.yolo_names or ()
        root = Root(source)
        found: list[tuple[str, str | None, str, str]] = []  # image, label file, their paths relative to the source
        for images_root in image_roots(source):
            labels_root = images_root.parent / "labels"
            prefix = images_root.parent.relative_to(source).as_posix() + "/" if images_root.parent != source else ""
            escaped = escaping_folders(root, [images_root, labels_root], source)
            findings += escaped
            if escaped:
                continue
            image_rels, bad_images = walk_files(images_root, root, IMAGE_SUFFIXES)
            label_rels, bad_labels = walk_files(labels_root, root, (".txt",))
            findings += escaping_files(bad_images, f"{prefix}images/") + escaping_files(bad_labels, f"{prefix}labels/")
            labels = {rel[:-4]: rel for rel in label_rels}
            refused = {rel[:-4] for rel in bad_labels}  # their images are not converted: the conversion is refused
            paired: set[str] = set()
            for rel in image_rels:
                key = rel.rpartition(".")[0]
                label = labels.get(key)
                if key in refused:
                    continue
                if label is None:
                    findings.append(
                        Finding(
                            file=f"{prefix}images/{rel}",
                            rule=Rule.LABEL_MISSING,
                            message=f"no label file {prefix}labels/{key}.txt: converted without a label file",
                        )
                    )
                    found.append((str(images_root / rel), None, f"{prefix}images/{rel}", ""))
                else:
                    paired.add(key)
                    found.append((str(images_root / rel), str(labels_root / label), f"{prefix}images/{rel}", f"{prefix}labels/{label}"))
            findings += [
                Finding(
                    file=f"{prefix}labels/{labels[key]}",
                    rule=Rule.LABEL_ORPHAN,
                    message=f"no image {prefix}images/{key}.* (looked for {', '.join(IMAGE_SUFFIXES)}): not converted",
                )
                for key in sorted(labels.keys() - paired - {rel.rpartition(".")[0] for rel in bad_images})  # refused images: no orphans
            ]
        out_names = unique_names([rel for _, _, rel, _ in found])
        items = [
            Item(image=image, name=name, group=group_of(stem_of(rel.rpartition("/")[2])), source=rel, label=label_rel, annotation=label)
            for (image, label, rel, label_rel), name in zip(found, out_names, strict=True)
        ]
        return SourcePlan(names=names, items=items, findings=findings)

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        parsed = Parsed()
        for owner, (item, (width, height)) in enumerate(zip(items, sizes, strict=True)):
            if item.annotation is None:
                continue  # no label file: a missing label (see plan)
            text = read_text(item.annotation, item.label, parsed.findings)
            if text is None:
                parsed.failed.add(owner)
            else:
                _parse_rows(text, owner, item.label, width, height, parsed)
        return parsed


def _parse_rows(text: str, owner: int, file: str, width: int, height: int, parsed: Parsed) -> None:
    owners, classes, boxes, refs = parsed.owner, parsed.classes, parsed.boxes, parsed.refs  # appended per row: no method call
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
            parsed.problem(
                owner,
                file,
                lineno,
                Rule.ROW_UNPARSEABLE,
                f"expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 x3 y3 ...', got {len(fields)} fields",
            )
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            parsed.problem(owner, file, lineno, Rule.ROW_UNPARSEABLE, f"fields are not numbers ({line.strip()!r})")
            continue
        if not all(math.isfinite(v) for v in values):
            parsed.problem(owner, file, lineno, Rule.BOX_NOT_FINITE, f"non-finite value ({line.strip()!r})")
            continue
        if not values[0].is_integer():
            parsed.problem(owner, file, lineno, Rule.CLASS_UNKNOWN, f"class {fields[0]!r} is not an integer id")
            continue
        if len(fields) == 5:
            cx, cy, w, h = values[1:]
            box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        else:
            xs, ys = values[1::2], values[2::2]
            box = (min(xs) * width, min(ys) * height, max(xs) * width, max(ys) * height)
        owners.append(owner)
        classes.append(int(values[0]))
        boxes.append(box)
        refs.append(lineno)


def _sample_labels(path: Path, roots: list[Path]) -> list[Path]:
    """The first few label files under `roots`, leaving out links that lead outside `path`."""
    inside = Root(path)
    sample: list[Path] = []
    for root in roots:
        for folder, dirs, files in os.walk(root.parent / "labels"):
            dirs.sort()
            for name in sorted(f for f in files if f.endswith(".txt")):
                if not inside.escapes(Path(folder) / name):
                    sample.append(Path(folder) / name)
                if len(sample) == _EVIDENCE_FILES:
                    return sample
    return sample
