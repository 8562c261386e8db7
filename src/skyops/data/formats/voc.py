"""Pascal VOC: `Annotations/<stem>.xml` + `JPEGImages/<file>` (or a folder of such folders, e.g. VOCdevkit/).

Coordinates: VOC numbers pixels from 1 and its `xmax`/`ymax` are inclusive, so a box
(xmin, ymin, xmax, ymax) covers [xmin - 1, xmax] x [ymin - 1, ymax] in continuous 0-based pixels.
(Ultralytics' VOC converter shifts both edges by one instead, giving boxes one pixel narrower.)
Class order = the object names found, sorted, unless `names` says otherwise. `difficult=1` objects
are dropped as `difficult` unless `keep_ignored`. The image is `JPEGImages/<filename>`, or the file
in JPEGImages/ with the XML's stem when `<filename>` names no file there; a `<filename>` that leads
outside JPEGImages/ (`../`, an absolute path) is refused. An image no XML names is converted
without a label file (`label.missing`: validation decides); an XML whose image is absent is counted
and not converted (`label.orphan`); an XML with no objects is an image with no objects.
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
    roots_with,
    unique_names,
)
from skyops.data.formats.findings import Finding, Rule
from skyops.data.formats.paths import Root, escaping_files, escaping_folders, scan_files
from skyops.data.layout import IMAGE_SUFFIXES, group_of

Objects = list[tuple[str, BoxTuple, int]]  # (class name, xyxy pixels, object number) per object


def voc_roots(path: Path) -> list[Path]:
    """`path` if it holds Annotations/ + JPEGImages/, else its sub-folders that do."""
    return roots_with(path, "Annotations", "JPEGImages")


class VocReader:
    format = Format.VOC
    expected = "a folder with Annotations/<stem>.xml (Pascal VOC <annotation> files) and JPEGImages/ (or a folder of such folders)"

    def evidence(self, path: Path) -> str | None:
        roots = voc_roots(path)
        inside = Root(path)
        for root in roots:
            if inside.escapes(root / "Annotations"):
                continue
            xmls, _ = scan_files(root / "Annotations", inside, (".xml",))
            if xmls:
                head = " ".join(first_lines(root / "Annotations" / xmls[0], 3))
                return f"{len(roots)} folder(s) with Annotations/*.xml and JPEGImages/" if "<annotation" in head else None
        return None

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan:
        findings: list[Finding] = []
        dropped: Counter[str] = Counter()
        parsed: list[tuple[Path, str, str, Objects, tuple[int, int] | None]] = []  # image, its path, XML path, objects, size
        root = Root(source)
        for folder in voc_roots(source):
            prefix = "" if folder == source else f"{folder.relative_to(source).as_posix()}/"
            escaped = escaping_folders(root, [folder / "Annotations", folder / "JPEGImages"], source)
            findings += escaped
            if escaped:
                continue
            image_names, bad_images = scan_files(folder / "JPEGImages", root, IMAGE_SUFFIXES)
            xml_names, bad_xmls = scan_files(folder / "Annotations", root, (".xml",))
            findings += escaping_files(bad_images, f"{prefix}JPEGImages/") + escaping_files(bad_xmls, f"{prefix}Annotations/")
            images = {n: folder / "JPEGImages" / n for n in image_names}
            refused = {*bad_images, *(os.path.splitext(n)[0] for n in bad_images)}
            by_stem = {os.path.splitext(n)[0]: p for n, p in images.items()}
            used: set[Path] = set()
            for xml_name in xml_names:
                where = f"{prefix}Annotations/{xml_name}"
                tree = read_xml(folder / "Annotations" / xml_name, where, findings)
                if tree is None:
                    continue
                filename = (tree.findtext("filename") or "").strip()
                if os.path.isabs(filename) or ".." in filename.replace("\\", "/").split("/"):
                    findings.append(
                        Finding(
                            file=where,
                            rule=Rule.PATH_ESCAPES_ROOT,
                            message=f"<filename> {filename!r} leads outside {prefix}JPEGImages/; it names a file in that folder",
                        )
                    )
                    used.add(by_stem.get(os.path.splitext(xml_name)[0], folder))  # its image is not also reported as unlabelled
                    continue
                image = images.get(filename) or by_stem.get(os.path.splitext(xml_name)[0])
                if image is None and {filename, os.path.splitext(xml_name)[0]} & refused:
                    continue  # its image is a link out of the source, refused above
                if image is None:
                    wanted = filename or os.path.splitext(xml_name)[0] + ".*"
                    findings.append(
                        Finding(file=where, rule=Rule.LABEL_ORPHAN, message=f"image {wanted} is not in {prefix}JPEGImages/: not converted")
                    )
                    continue
                objects = _objects(tree, where, options.keep_ignored, findings, dropped)
                parsed.append((image, f"{prefix}JPEGImages/{image.name}", where, objects, _declared_size(tree)))
                used.add(image)
            for path in images.values():
                if path not in used:
                    rel = f"{prefix}JPEGImages/{path.name}"
                    findings.append(
                        Finding(
                            file=rel,
                            rule=Rule.LABEL_MISSING,
                            message="no Annotations/*.xml names this image: converted without a label file",
                        )
                    )
                    parsed.append((path, rel, "", [], None))

        names = tuple(sorted({name for *_, objects, _ in parsed for name, _, _ in objects}))
        index = {name: i for i, name in enumerate(names)}
        out_names = unique_names([rel for _, rel, *_ in parsed])
        items = [
            Item(
                image=str(image),
                name=name,
                group=group_of(image.stem),
                source=rel,
                label=xml,
                classes=tuple(index[n] for n, _, _ in objects),
                boxes=tuple(b for _, b, _ in objects),
                refs=tuple(k for _, _, k in objects),
                declared_size=size,
            )
            for (image, rel, xml, objects, size), name in zip(parsed, out_names, strict=True)
        ]
        return SourcePlan(names=names, items=items, findings=findings, dropped=dropped)

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        return inline_parse(items)


def read_xml(path: Path, where: str, findings: list[Finding]) -> ET.Element | None:
    """The root of the XML file at `path`, or None after a finding (DIOR reads its XML through this too)."""
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as e:  # its message gives a line and column, never the content
        findings.append(Finding(file=where, rule=Rule.SOURCE_STRUCTURE, message=f"not valid XML ({e})"))
    except OSError as e:
        findings.append(Finding(file=where, rule=Rule.FILE_UNREADABLE, message=f"cannot read the file ({e.strerror})"))
    return None


def _objects(tree: ET.Element, where: str, keep_ignored: bool, findings: list[Finding], dropped: Counter[str]) -> Objects:
    """(name, xyxy pixels, object number) of each object in a VOC <annotation>."""
    objects = []
    for n, obj in enumerate(tree.iter("object"), 1):
        entry = f"object {n}"
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        values = [box.findtext(k) if box is not None else None for k in ("xmin", "ymin", "xmax", "ymax")]
        try:
            xmin, ymin, xmax, ymax = (float(v) for v in values)  # type: ignore[arg-type]  # None raises TypeError
        except (TypeError, ValueError):
            findings.append(
                Finding(
                    file=where,
                    entry=entry,
                    rule=Rule.ROW_UNPARSEABLE,
                    message=f"({name or 'no name'}) has no numeric bndbox xmin/ymin/xmax/ymax",
                )
            )
            continue
        if not name:
            findings.append(Finding(file=where, entry=entry, rule=Rule.ROW_UNPARSEABLE, message="has no <name>"))
        elif not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)):
            findings.append(Finding(file=where, entry=entry, rule=Rule.BOX_NOT_FINITE, message=f"({name}) has a non-finite bndbox"))
        elif (obj.findtext("difficult") or "0").strip() == "1" and not keep_ignored:
            dropped["difficult"] += 1
        else:
            objects.append((name, (xmin - 1.0, ymin - 1.0, xmax, ymax), n))
    return objects


def _declared_size(tree: ET.Element) -> tuple[int, int] | None:
    try:
        width, height = int(float(tree.findtext("size/width") or 0)), int(float(tree.findtext("size/height") or 0))
    except (ValueError, OverflowError):  # not a number, NaN, inf
        return None
    return (width, height) if width > 0 and height > 0 else None  # some exports write 0 here
