"""Pascal VOC: `Annotations/<stem>.xml` + `JPEGImages/<file>` (or a folder of such folders, e.g. VOCdevkit/).

Coordinates: VOC numbers pixels from 1 and its `xmax`/`ymax` are inclusive, so a box
(xmin, ymin, xmax, ymax) covers [xmin - 1, xmax] x [ymin - 1, ymax] in continuous 0-based pixels.
(Ultralytics' VOC converter shifts both edges by one instead, giving boxes one pixel narrower.)
Class order = the object names found, sorted, unless `names` says otherwise. `difficult=1` objects
are dropped as `difficult` unless `keep_ignored`. The image is `JPEGImages/<filename>`, or the file
in JPEGImages/ with the XML's stem when `<filename>` names no file there. Images no XML names are
skipped and listed in the report.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from skyops.data.formats.base import (
    BoxTuple,
    Format,
    Item,
    Parsed,
    SourceOptions,
    SourcePlan,
    first_lines,
    inline_parse,
    list_files,
    roots_with,
    unique_names,
)
from skyops.data.layout import IMAGE_SUFFIXES, group_of


def voc_roots(path: Path) -> list[Path]:
    """`path` if it holds Annotations/ + JPEGImages/, else its sub-folders that do."""
    return roots_with(path, "Annotations", "JPEGImages")


class VocReader:
    format = Format.VOC
    expected = "a folder with Annotations/<stem>.xml (Pascal VOC <annotation> files) and JPEGImages/ (or a folder of such folders)"

    def evidence(self, path: Path) -> str | None:
        roots = voc_roots(path)
        for root in roots:
            xmls = list_files(root / "Annotations", suffixes=(".xml",))
            if xmls:
                head = " ".join(first_lines(root / "Annotations" / xmls[0], 3))
                return f"{len(roots)} folder(s) with Annotations/*.xml and JPEGImages/" if "<annotation" in head else None
        return None

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan:
        problems: list[str] = []
        dropped: Counter[str] = Counter()
        parsed: list[tuple[Path, str, list[tuple[str, BoxTuple]], tuple[int, int] | None]] = []
        skipped: list[tuple[str, str]] = []
        for root in voc_roots(source):
            prefix = "" if root == source else f"{root.relative_to(source).as_posix()}/"
            images = {n: root / "JPEGImages" / n for n in list_files(root / "JPEGImages", suffixes=IMAGE_SUFFIXES)}
            by_stem = {os.path.splitext(n)[0]: p for n, p in images.items()}
            used: set[Path] = set()
            for xml_name in list_files(root / "Annotations", suffixes=(".xml",)):
                where = f"{prefix}Annotations/{xml_name}"
                try:
                    tree = ET.parse(root / "Annotations" / xml_name).getroot()
                except ET.ParseError as e:
                    problems.append(f"{where}: not valid XML ({e})")
                    continue
                filename = (tree.findtext("filename") or "").strip()
                image = images.get(filename) or by_stem.get(os.path.splitext(xml_name)[0])
                if image is None:
                    problems.append(f"{where}: image {filename or os.path.splitext(xml_name)[0] + '.*'} is not in {prefix}JPEGImages/")
                    continue
                objects = _objects(tree, where, options.keep_ignored, problems, dropped)
                parsed.append((image, f"{prefix}JPEGImages/{image.name}", objects, _declared_size(tree)))
                used.add(image)
            skipped += [(f"{prefix}JPEGImages/{p.name}", "no Annotations/*.xml names this image") for p in images.values() if p not in used]

        names = tuple(sorted({name for _, _, objects, _ in parsed for name, _ in objects}))
        index = {name: i for i, name in enumerate(names)}
        out_names = unique_names([rel for _, rel, _, _ in parsed])
        items = [
            Item(
                image=str(image),
                name=name,
                group=group_of(image.stem),
                source=rel,
                classes=tuple(index[n] for n, _ in objects),
                boxes=tuple(b for _, b in objects),
                declared_size=size,
            )
            for (image, rel, objects, size), name in zip(parsed, out_names, strict=True)
        ]
        return SourcePlan(
            names=names,
            items=items,
            problems=problems,
            dropped=dropped,
            skipped=skipped,
            unlabelled=sum(1 for entry in parsed if not entry[2]),
        )

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        return inline_parse(items)


def _objects(tree: ET.Element, where: str, keep_ignored: bool, problems: list[str], dropped: Counter[str]) -> list[tuple[str, BoxTuple]]:
    """(name, xyxy pixels) of each object in a VOC <annotation>."""
    objects = []
    for n, obj in enumerate(tree.iter("object"), 1):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        values = [box.findtext(k) if box is not None else None for k in ("xmin", "ymin", "xmax", "ymax")]
        try:
            xmin, ymin, xmax, ymax = (float(v) for v in values)  # type: ignore[arg-type]  # None raises TypeError
        except (TypeError, ValueError):
            problems.append(f"{where}: object {n} ({name or 'no name'}) has no numeric bndbox xmin/ymin/xmax/ymax")
            continue
        if not name:
            problems.append(f"{where}: object {n} has no <name>")
        elif not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)):
            problems.append(f"{where}: object {n} ({name}) has a non-finite bndbox")
        elif (obj.findtext("difficult") or "0").strip() == "1" and not keep_ignored:
            dropped["difficult"] += 1
        else:
            objects.append((name, (xmin - 1.0, ymin - 1.0, xmax, ymax)))
    return objects


def _declared_size(tree: ET.Element) -> tuple[int, int] | None:
    try:
        width, height = int(float(tree.findtext("size/width") or 0)), int(float(tree.findtext("size/height") or 0))
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None  # some exports write 0 here
