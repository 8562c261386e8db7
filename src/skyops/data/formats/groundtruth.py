"""SageMaker Ground Truth bounding-box output manifest (JSON lines).

One line per image:
    {"source-ref": "s3://bucket/prefix/a.jpg",
     "<job>": {"annotations": [{"class_id": 0, "left": 4, "top": 5, "width": 10, "height": 20}],
               "image_size": [{"width": 640, "height": 480, "depth": 3}]},
     "<job>-metadata": {"class-map": {"0": "car"}, "type": "groundtruth/object-detection", ...}}

The label attribute `<job>` is found as the key whose value has `annotations` and `image_size`;
several different ones in one manifest (chained jobs) is an error rather than a guess. Class order =
class ids of the merged `class-map`s. `source-ref` is resolved against `images_dir` (default: the
manifest's folder); an `s3://` reference must start with `s3_prefix`, which is stripped first: the
images are expected to be a local copy of that prefix. No AWS call is made. A reference that leads
outside `images_dir` (`../`, an absolute path elsewhere, a symlink) is refused. Lines without a label
attribute (e.g. a `failure-reason` from the labelling job) are skipped and counted
(`groundtruth.no_label`); a labelled line with no annotations is an image with no objects.

The source is the manifest file, or a folder holding exactly one `*.manifest` file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyops.data.formats.base import (
    BoxTuple,
    Format,
    Item,
    Parsed,
    SourceOptions,
    SourcePlan,
    first_lines,
    inline_parse,
    unique_names,
)
from skyops.data.formats.findings import Finding, Rule, read_text
from skyops.data.formats.paths import Root, escaping_files
from skyops.data.layout import group_of

Boxes = list[tuple[int, BoxTuple, int]]  # (class id, xyxy pixels, annotation index)


def manifest_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    root = Root(path)
    return sorted(p for p in path.glob("*.manifest") if not root.escapes(p))


def label_attributes(line: dict[str, Any]) -> list[str]:
    """Keys of a manifest line whose value looks like Ground Truth bounding-box output."""
    return sorted(k for k, v in line.items() if isinstance(v, dict) and "annotations" in v and "image_size" in v)


def resolve_ref(ref: str, root: Root, s3_prefix: str | None) -> tuple[str, None] | tuple[None, Finding]:
    """Local path of a `source-ref` inside `root`, or the finding that says why there is none.

    The finding's file and line are filled in by the caller.
    """
    name = ref
    if ref.startswith("s3://"):
        if not s3_prefix:
            why = f"source-ref {ref} is an S3 URI; pass --s3-prefix s3://bucket/prefix/ (stripped) and --images-dir <local copy of that prefix> (s3_prefix=, images_dir= in Python)"
            return None, Finding(file="", rule=Rule.PATH_UNRESOLVED, message=why)
        prefix = s3_prefix.rstrip("/") + "/"
        if not ref.startswith(prefix):
            return None, Finding(
                file="", rule=Rule.PATH_UNRESOLVED, message=f"source-ref {ref} does not start with the given s3_prefix {prefix}"
            )
        name = ref[len(prefix) :]
    path = root.inside(name)
    if path is None:
        why = f"source-ref {ref} leads outside the images folder {root.folder}: references are relative to --images-dir (images_dir in Python)"
        return None, Finding(file="", rule=Rule.PATH_ESCAPES_ROOT, message=why)
    return path, None


class GroundTruthReader:
    format = Format.GROUNDTRUTH
    expected = "a SageMaker Ground Truth output manifest (JSON lines with 'source-ref' and a bounding-box label attribute), or a folder with one *.manifest"

    def evidence(self, path: Path) -> str | None:
        files = manifest_files(path)
        if len(files) != 1:
            return None
        lines = first_lines(files[0], 1)
        try:
            line = json.loads(lines[0]) if lines else None
        except (json.JSONDecodeError, RecursionError):
            return None
        if not isinstance(line, dict) or "source-ref" not in line:
            return None
        attributes = label_attributes(line)
        return f"JSON-lines manifest {files[0].name} with source-ref and label attribute(s) {attributes}" if attributes else None

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan:
        files = manifest_files(source)
        outside = Root(source)
        escaping = escaping_files(sorted(p.name for p in source.glob("*.manifest") if outside.escapes(p)), "") if source.is_dir() else []
        if len(files) != 1 or escaping:
            message = f"expected exactly one *.manifest in {source}, found {len(files)}"
            layout = [] if len(files) == 1 else [Finding(file="", rule=Rule.SOURCE_LAYOUT, message=message)]
            return SourcePlan(names=(), items=[], findings=escaping + layout)
        manifest = files[0].name
        root = Root(options.images_dir or files[0].parent)
        findings: list[Finding] = []
        class_map: dict[int, str] = {}
        found: list[tuple[str, str, Boxes, tuple[int, int] | None, int]] = []  # ref, image, boxes, size, line
        attributes: set[str] = set()
        text = read_text(str(files[0]), manifest, findings)
        for lineno, raw in enumerate((text or "").splitlines(), 1):
            if not raw.strip():
                continue

            def problem(rule: Rule, message: str, entry: str = "", line: int = lineno) -> None:
                findings.append(Finding(file=manifest, line=line, entry=entry, rule=rule, message=message))

            try:
                line = json.loads(raw)
            except json.JSONDecodeError as e:  # its message gives a position, never the content
                problem(Rule.SOURCE_STRUCTURE, f"not valid JSON ({e})")
                continue
            except RecursionError:
                problem(Rule.SOURCE_STRUCTURE, "not valid JSON (nested too deeply)")
                continue
            ref = line.get("source-ref") if isinstance(line, dict) else None
            if not isinstance(ref, str) or not ref:
                problem(Rule.SOURCE_STRUCTURE, "no 'source-ref' string")
                continue
            names = label_attributes(line)
            attributes.update(names)
            if not names:
                problem(Rule.GROUNDTRUTH_NO_LABEL, f"source-ref {ref} has no label attribute (a failed or unlabelled task): skipped")
                continue
            attribute = names[0]
            metadata = line.get(f"{attribute}-metadata", {})
            class_entries = metadata.get("class-map", {}) if isinstance(metadata, dict) else None
            if not isinstance(class_entries, dict):
                problem(Rule.SOURCE_STRUCTURE, f"{attribute}-metadata.class-map is not an object of class id -> name")
            else:
                _merge_class_map(class_entries, class_map, problem)
            path, unresolved = resolve_ref(ref, root, options.s3_prefix)
            if unresolved is not None:
                problem(unresolved.rule, unresolved.message)
            elif not os.path.isfile(path):  # type: ignore[arg-type]  # resolved
                problem(Rule.IMAGE_MISSING, f"image {path} (from source-ref {ref}) does not exist")
            else:
                boxes = _annotations(line[attribute], problem)
                declared = _declared_size(line[attribute], problem)
                if declared != "bad":
                    found.append((ref, path, boxes, declared, lineno))  # type: ignore[arg-type]  # path resolved above
        if len(attributes) > 1:
            findings.append(
                Finding(
                    file=manifest,
                    rule=Rule.SOURCE_LAYOUT,
                    message=f"several label attributes in one manifest: {', '.join(sorted(attributes))}; expected one (keep one labelling job's attribute)",
                )
            )

        ids = sorted(class_map)
        index = {class_id: i for i, class_id in enumerate(ids)}
        for _, _, boxes, _, lineno in found:
            for class_id, _box, n in boxes:
                if class_id not in index:
                    findings.append(
                        Finding(
                            file=manifest,
                            line=lineno,
                            entry=f"annotations[{n}]",
                            rule=Rule.CLASS_UNKNOWN,
                            message=f"class_id {class_id} is not in any class-map",
                        )
                    )
        out_names = unique_names([_relative(ref) for ref, *_ in found])
        items = [
            Item(
                image=path,
                name=name,
                group=group_of(Path(path).stem),
                source=ref,
                label=manifest,
                line=lineno,
                classes=tuple(index[c] for c, _, _ in boxes if c in index),
                boxes=tuple(b for c, b, _ in boxes if c in index),
                refs=tuple(n for c, _, n in boxes if c in index),
                declared_size=declared,
            )
            for (ref, path, boxes, declared, lineno), name in zip(found, out_names, strict=True)
        ]
        return SourcePlan(names=tuple(class_map[i] for i in ids), items=items, findings=findings)

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        return inline_parse(items)


def _merge_class_map(entries: dict[str, Any], class_map: dict[int, str], problem: Callable[..., None]) -> None:
    for key, name in entries.items():
        try:
            class_id = int(key)
        except ValueError:
            problem(Rule.SOURCE_STRUCTURE, f"class-map key {key!r} is not a class id")
            continue
        if class_map.setdefault(class_id, str(name)) != str(name):
            problem(Rule.NAMES_INVALID, f"class-map gives class {class_id} the name {name!r}, an earlier line {class_map[class_id]!r}")


def _annotations(label: dict[str, Any], problem: Callable[..., None]) -> Boxes:
    boxes = []
    annotations = label.get("annotations")
    if not isinstance(annotations, list):
        problem(Rule.SOURCE_STRUCTURE, "'annotations' is not a list")
        return []
    for n, ann in enumerate(annotations):
        entry = f"annotations[{n}]"
        try:
            values = [float(ann[k]) for k in ("left", "top", "width", "height")]
            class_id = int(ann["class_id"])
        except (KeyError, TypeError, ValueError, OverflowError):
            problem(Rule.ROW_UNPARSEABLE, f"needs numeric class_id, left, top, width, height (got {ann!r})", entry)
            continue
        if not all(math.isfinite(v) for v in values):
            problem(Rule.BOX_NOT_FINITE, f"box {values} is not finite", entry)
            continue
        left, top, w, h = values
        boxes.append((class_id, (left, top, left + w, top + h), n))
    return boxes


def _declared_size(label: dict[str, Any], problem: Callable[..., None]) -> tuple[int, int] | str | None:
    """The (width, height) the line states, None if none, or "bad" after reporting a malformed one."""
    size = label.get("image_size")
    first = size[0] if isinstance(size, list) and size else {}
    if not isinstance(first, dict) or not (first.get("width") or first.get("height")):
        return None
    try:
        width, height = int(first["width"]), int(first["height"])
    except (KeyError, TypeError, ValueError, OverflowError):
        problem(Rule.SOURCE_STRUCTURE, f"image_size {size!r} does not give a width and a height")
        return "bad"
    return (width, height) if width > 0 and height > 0 else None


def _relative(ref: str) -> str:
    """The part of a source-ref that names the file: the key of an S3 URI, or the path."""
    return ref.split("://", 1)[1].split("/", 1)[-1] if "://" in ref else ref.lstrip("/")
