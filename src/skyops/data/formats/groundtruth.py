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
images are expected to be a local copy of that prefix. No AWS call is made. Lines without a label
attribute (e.g. a `failure-reason` from the labelling job) are skipped and counted.

The source is the manifest file, or a folder holding exactly one `*.manifest` file.
"""

from __future__ import annotations

import json
import math
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
from skyops.data.layout import group_of


def manifest_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(path.glob("*.manifest")) if path.is_dir() else []


def label_attributes(line: dict[str, Any]) -> list[str]:
    """Keys of a manifest line whose value looks like Ground Truth bounding-box output."""
    return sorted(k for k, v in line.items() if isinstance(v, dict) and "annotations" in v and "image_size" in v)


def resolve_ref(ref: str, images_dir: Path, s3_prefix: str | None) -> Path | str:
    """Local path of a `source-ref`, or a message saying why it cannot be resolved."""
    if ref.startswith("s3://"):
        if not s3_prefix:
            return (
                f"source-ref {ref} is an S3 URI; pass s3_prefix='s3://bucket/prefix/' (stripped) and images_dir=<local copy of that prefix>"
            )
        prefix = s3_prefix.rstrip("/") + "/"
        if not ref.startswith(prefix):
            return f"source-ref {ref} does not start with the given s3_prefix {prefix}"
        return images_dir / ref[len(prefix) :]
    path = Path(ref)
    return path if path.is_absolute() else images_dir / path


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
        except json.JSONDecodeError:
            return None
        if not isinstance(line, dict) or "source-ref" not in line:
            return None
        attributes = label_attributes(line)
        return f"JSON-lines manifest {files[0].name} with source-ref and label attribute(s) {attributes}" if attributes else None

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan:
        files = manifest_files(source)
        if len(files) != 1:
            return SourcePlan(names=(), items=[], problems=[f"expected exactly one *.manifest in {source}, found {len(files)}"])
        images_dir = options.images_dir or files[0].parent
        problems: list[str] = []
        skipped: list[tuple[str, str]] = []
        class_map: dict[int, str] = {}
        found: list[tuple[str, Path, list[tuple[int, BoxTuple]], tuple[int, int] | None]] = []
        attributes: set[str] = set()
        text = files[0].read_text(encoding="utf-8")
        for lineno, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            where = f"{files[0].name}:{lineno}"
            try:
                line = json.loads(raw)
            except json.JSONDecodeError as e:
                problems.append(f"{where}: not valid JSON ({e})")
                continue
            ref = line.get("source-ref") if isinstance(line, dict) else None
            if not isinstance(ref, str):
                problems.append(f"{where}: no 'source-ref' string")
                continue
            names = label_attributes(line)
            attributes.update(names)
            if not names:
                skipped.append((ref, "no_label"))
                continue
            attribute = names[0]
            _merge_class_map(line.get(f"{attribute}-metadata", {}).get("class-map", {}), class_map, where, problems)
            path = resolve_ref(ref, images_dir, options.s3_prefix)
            if isinstance(path, str):
                problems.append(f"{where}: {path}")
            elif not path.is_file():
                problems.append(f"{where}: image {path} (from source-ref {ref}) does not exist")
            else:
                boxes = _annotations(line[attribute], where, problems)
                size = line[attribute].get("image_size") or [{}]
                declared = (int(size[0]["width"]), int(size[0]["height"])) if size[0].get("width") and size[0].get("height") else None
                found.append((ref, path, boxes, declared))
        if len(attributes) > 1:
            problems.append(
                f"several label attributes in one manifest: {', '.join(sorted(attributes))}; expected one (keep one labelling job's attribute)"
            )

        ids = sorted(class_map)
        index = {class_id: i for i, class_id in enumerate(ids)}
        for ref, _, boxes, _ in found:
            for class_id, _box in boxes:
                if class_id not in index:
                    problems.append(f"{ref}: class_id {class_id} is not in any class-map")
        out_names = unique_names([_relative(ref) for ref, *_ in found])
        items = [
            Item(
                image=str(path),
                name=name,
                group=group_of(path.stem),
                source=ref,
                classes=tuple(index.get(c, -1) for c, _ in boxes),
                boxes=tuple(b for _, b in boxes),
                declared_size=declared,
            )
            for (ref, path, boxes, declared), name in zip(found, out_names, strict=True)
        ]
        return SourcePlan(
            names=tuple(class_map[i] for i in ids),
            items=items,
            problems=problems,
            skipped=skipped,
            unlabelled=sum(1 for f in found if not f[2]),
        )

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        return inline_parse(items)


def _merge_class_map(entries: dict[str, str], class_map: dict[int, str], where: str, problems: list[str]) -> None:
    for key, name in entries.items():
        class_id = int(key)
        if class_map.setdefault(class_id, str(name)) != name:
            problems.append(f"{where}: class-map gives class {class_id} the name {name!r}, an earlier line {class_map[class_id]!r}")


def _annotations(label: dict[str, Any], where: str, problems: list[str]) -> list[tuple[int, BoxTuple]]:
    boxes = []
    for n, ann in enumerate(label.get("annotations", [])):
        try:
            values = [float(ann[k]) for k in ("left", "top", "width", "height")]
            class_id = int(ann["class_id"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"{where}: annotations[{n}] needs numeric class_id, left, top, width, height (got {ann!r})")
            continue
        if not all(math.isfinite(v) for v in values):
            problems.append(f"{where}: annotations[{n}] has a non-finite box {values}")
            continue
        left, top, w, h = values
        boxes.append((class_id, (left, top, left + w, top + h)))
    return boxes


def _relative(ref: str) -> str:
    """The part of a source-ref that names the file: the key of an S3 URI, or the path."""
    return ref.split("://", 1)[1].split("/", 1)[-1] if "://" in ref else ref.lstrip("/")
