"""DIOR: `JPEGImages/<stem>.jpg` + `Annotations/<stem>.xml` (DIOR's "Horizontal Bounding Boxes" XML).

DIOR's XML is Pascal VOC's `<annotation>` (filename, size, objects with name, difficult and a
bndbox), so the VOC reader reads it (voc.py: coordinates, `difficult`, orphans, missing labels and
path rules are VOC's; put the files of DIOR's `Annotations/Horizontal Bounding Boxes/` folder in
`Annotations/`). What differs is the class list: DIOR's 20 classes, in this fixed order, whatever a
source happens to contain; an object of another name is `class.unknown` (refused, naming the file
and object). Detection: a VOC-shaped folder where most of the class names in its first few XML files
(up to 5) are DIOR's is DIOR (and not also VOC: see `formats.REFINES`); declare `--format voc` to
read it with VOC's sorted names.
"""

from __future__ import annotations

from pathlib import Path

from skyops.data.formats.base import Format, Item, Parsed, SourceOptions, SourcePlan, inline_parse
from skyops.data.formats.findings import Finding, Rule
from skyops.data.formats.paths import Root, scan_files
from skyops.data.formats.voc import VocReader, read_xml, voc_roots

CLASSES = (
    "airplane",
    "airport",
    "baseballfield",
    "basketballcourt",
    "bridge",
    "chimney",
    "dam",
    "expressway-service-area",
    "expressway-toll-station",
    "golffield",
    "groundtrackfield",
    "harbor",
    "overpass",
    "ship",
    "stadium",
    "storagetank",
    "tenniscourt",
    "trainstation",
    "vehicle",
    "windmill",
)
_INDEX = {name: i for i, name in enumerate(CLASSES)}
_EVIDENCE_FILES = 5  # XML files detection reads at most


class DiorReader:
    format = Format.DIOR
    expected = "a folder with Annotations/<stem>.xml (VOC-style, DIOR's 20 class names) and JPEGImages/ (or a folder of such folders)"

    def evidence(self, path: Path) -> str | None:
        if VocReader().evidence(path) is None:
            return None
        inside = Root(path)
        names: set[str] = set()
        for root in voc_roots(path):
            if inside.escapes(root / "Annotations"):
                continue
            xmls, _ = scan_files(root / "Annotations", inside, (".xml",))
            for name in xmls[:_EVIDENCE_FILES]:
                tree = read_xml(root / "Annotations" / name, name, [])
                names |= {(o.findtext("name") or "").strip() for o in tree.iter("object")} if tree is not None else set()
            break  # the first folder that can be read decides
        dior = sorted(names & _INDEX.keys())
        if 2 * len(dior) <= len(names):  # most names DIOR's: a typo in one file does not turn a DIOR source into VOC
            return None
        more = ", …" if len(dior) > 5 else ""
        return f"VOC-style Annotations/*.xml naming mostly DIOR classes ({', '.join(dior[:5])}{more})"

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan:
        """VOC's plan with its classes (the names found) mapped onto DIOR's fixed list."""
        plan = VocReader().plan(source, options)
        unknown = {i for i, name in enumerate(plan.names) if name not in _INDEX}
        to_dior = [_INDEX.get(name, -1) for name in plan.names]
        items = []
        for item in plan.items:
            known = [k for k, klass in enumerate(item.classes) if klass not in unknown]
            for k in sorted(set(range(len(item.classes))) - set(known)):  # refused here, so not also by the writer
                message = f"class {plan.names[item.classes[k]][:40]!r} is not one of the {len(CLASSES)} DIOR classes"
                plan.findings.append(Finding(file=item.label, entry=f"object {item.refs[k]}", rule=Rule.CLASS_UNKNOWN, message=message))
            items.append(
                item._replace(
                    classes=tuple(to_dior[item.classes[k]] for k in known),
                    boxes=tuple(item.boxes[k] for k in known),
                    refs=tuple(item.refs[k] for k in known),
                )
            )
        return SourcePlan(names=CLASSES, items=items, findings=plan.findings, dropped=plan.dropped)

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        return inline_parse(items)
