"""DOTA (v1.0, v1.5, v2.0): `images/<stem>.png` + `labelTxt/<stem>.txt`.

A label file may start with header lines, `imagesource:GoogleEarth` and `gsd:0.146` (or
`gsd:null`), then holds one object per line, space-separated:

    x1 y1 x2 y2 x3 y3 x4 y4 category difficult

the four corners of an oriented quadrilateral in pixels (0-based, clockwise from any corner). The
axis-aligned box is the quadrilateral's bounding box; the converter clips it to the image like any
box that reaches outside (`box.out_of_image`, counted in `clipped`). `difficult=1` objects are
dropped and counted as `difficult` unless `keep_ignored`, as VOC's. Classes are the 18 DOTA v2.0
categories in the order of their ids (v1.0's 15 first, then v1.5's container-crane, then v2.0's
airport and helipad), so v1.0 ids match those of a v1.0-only class list; a category outside them is
`class.unknown` (refused, with its file and line), a line with another field count or non-numeric
corners is `row.unparseable`. Headers are checked for shape only (a `key:value` line other than
these two is `row.unparseable`); their values are not kept: the manifest has no per-image field.

With `obb=True` (`--obb`, ingest `obb: true`) the converter also writes YOLO-OBB labels for the
kept boxes, `labels-obb/<stem>.txt`, one row per row of `labels/<stem>.txt` in the same order:
`class x1 y1 x2 y2 x3 y3 x4 y4`, normalised by the image size, each corner clamped to [0, 1]
(Ultralytics refuses coordinates outside it).

Images and label files are paired by stem (see visdrone.py: orphans, missing labels and empty
files are treated the same way). A source is one such folder or a folder of them (train/, val/).
"""

from __future__ import annotations

import math
from pathlib import Path

from skyops.data.formats.base import (
    Format,
    Item,
    Parsed,
    SourceOptions,
    SourcePlan,
    first_lines,
    is_number,
    roots_with,
    stem_of,
    unique_names,
)
from skyops.data.formats.findings import Finding, Rule, read_text
from skyops.data.formats.paths import Root, escaping_files, escaping_folders, scan_files
from skyops.data.formats.visdrone import by_stem
from skyops.data.layout import IMAGE_SUFFIXES, group_of

CLASSES = (
    "plane",
    "baseball-diamond",
    "bridge",
    "ground-track-field",
    "small-vehicle",
    "large-vehicle",
    "ship",
    "tennis-court",
    "basketball-court",
    "storage-tank",
    "soccer-ball-field",
    "roundabout",
    "harbor",
    "swimming-pool",
    "helicopter",
    "container-crane",  # v1.5
    "airport",  # v2.0
    "helipad",  # v2.0
)
HEADERS = ("imagesource", "gsd")
LABELS_DIR = "labelTxt"
_INDEX = {name: i for i, name in enumerate(CLASSES)}
_FIELDS = 10  # eight corner coordinates, category, difficult


def dota_roots(path: Path) -> list[Path]:
    """`path` if it holds images/ + labelTxt/, else its sub-folders that do."""
    return roots_with(path, "images", LABELS_DIR)


def is_header(line: str) -> bool:
    key, colon, _ = line.partition(":")
    return bool(colon) and key.strip().lower() in HEADERS


class DotaReader:
    format = Format.DOTA
    expected = (
        "a folder with images/ and labelTxt/<stem>.txt holding optional 'imagesource:' / 'gsd:' headers, then rows "
        "'x1 y1 x2 y2 x3 y3 x4 y4 category difficult' (or a folder of such folders)"
    )

    def evidence(self, path: Path) -> str | None:
        roots = dota_roots(path)
        inside = Root(path)
        for root in roots:
            if inside.escapes(root / LABELS_DIR):
                continue
            texts, _ = scan_files(root / LABELS_DIR, inside, (".txt",))
            for name in texts[:5]:
                lines = [line for line in first_lines(root / LABELS_DIR / name, 3) if not is_header(line)]
                if not lines:
                    continue  # headers only: an image without objects; look at the next file
                fields = lines[0].split()
                if len(fields) == _FIELDS and all(is_number(f) for f in fields[:8]):
                    return f"{len(roots)} folder(s) with images/ and labelTxt/*.txt whose rows are 8 corners, a category and a flag ({lines[0]!r})"
                return None
        return None

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan:
        pairs: list[tuple[str, str, str | None, str, str]] = []  # stem, image, label file, label and image relative to source
        root = Root(source)
        findings: list[Finding] = []
        for folder in dota_roots(source):
            prefix = "" if folder == source else f"{folder.relative_to(source).as_posix()}/"
            escaped = escaping_folders(root, [folder / "images", folder / LABELS_DIR], source)
            findings += escaped
            if escaped:
                continue
            image_names, bad_images = scan_files(folder / "images", root, IMAGE_SUFFIXES)
            text_names, bad_texts = scan_files(folder / LABELS_DIR, root, (".txt",))
            findings += escaping_files(bad_images, f"{prefix}images/") + escaping_files(bad_texts, f"{prefix}{LABELS_DIR}/")
            images = by_stem(image_names, f"{prefix}images/", findings)
            texts = {stem_of(n): n for n in text_names}
            for stem in sorted(texts.keys() - images.keys() - {stem_of(n) for n in bad_images}):
                findings.append(
                    Finding(
                        file=f"{prefix}{LABELS_DIR}/{texts[stem]}",
                        rule=Rule.LABEL_ORPHAN,
                        message=f"no image {prefix}images/{stem}.* (looked for {', '.join(IMAGE_SUFFIXES)}): not converted",
                    )
                )
            refused = {stem_of(n) for n in bad_texts}
            for stem in sorted(images.keys() - texts.keys() - refused):
                findings.append(
                    Finding(
                        file=f"{prefix}images/{images[stem]}",
                        rule=Rule.LABEL_MISSING,
                        message=f"no label file {prefix}{LABELS_DIR}/{stem}.txt: converted without a label file",
                    )
                )
            for stem in sorted(images.keys() - refused):
                text = texts.get(stem)
                label = (str(folder / LABELS_DIR / text), f"{prefix}{LABELS_DIR}/{text}") if text else (None, "")
                pairs.append((stem, str(folder / "images" / images[stem]), *label, f"{prefix}images/{images[stem]}"))
        out_names = unique_names([rel for *_, rel in pairs])
        items = [
            Item(image=image, name=name, group=group_of(stem), source=rel, label=label, annotation=annotation)
            for (stem, image, annotation, label, rel), name in zip(pairs, out_names, strict=True)
        ]
        return SourcePlan(names=CLASSES, items=items, findings=findings)

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        parsed = Parsed(polygons=[])
        for owner, item in enumerate(items):
            if item.annotation is None:
                continue  # no label file: a missing label (see plan)
            text = read_text(item.annotation, item.label, parsed.findings)
            if text is None:
                parsed.failed.add(owner)
            else:
                _parse_rows(text, owner, item.label, options.keep_ignored, parsed)
        return parsed


def _parse_rows(text: str, owner: int, file: str, keep_ignored: bool, parsed: Parsed) -> None:
    assert parsed.polygons is not None  # set by `DotaReader.parse`
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or is_header(line):
            continue
        fields = line.split()
        if len(fields) != _FIELDS:
            message = f"expected {_FIELDS} space-separated fields 'x1 y1 ... x4 y4 category difficult', got {len(fields)} ({line[:80]!r})"
            parsed.problem(owner, file, lineno, Rule.ROW_UNPARSEABLE, message)
            continue
        try:
            corners = tuple(float(f) for f in fields[:8])
            difficult = int(fields[9])
        except ValueError:
            parsed.problem(owner, file, lineno, Rule.ROW_UNPARSEABLE, f"corners or difficult flag are not numbers ({line[:80]!r})")
            continue
        if not all(math.isfinite(v) for v in corners):
            parsed.problem(owner, file, lineno, Rule.BOX_NOT_FINITE, f"corners are not finite ({line[:80]!r})")
            continue
        category = _INDEX.get(fields[8])
        if category is None:
            parsed.problem(
                owner, file, lineno, Rule.CLASS_UNKNOWN, f"category {fields[8][:40]!r} is not one of the {len(CLASSES)} DOTA categories"
            )
            continue
        if difficult == 1 and not keep_ignored:
            parsed.dropped["difficult"] += 1
            continue
        xs, ys = corners[0::2], corners[1::2]
        parsed.owner.append(owner)
        parsed.classes.append(category)
        parsed.boxes.append((min(xs), min(ys), max(xs), max(ys)))
        parsed.refs.append(lineno)
        parsed.polygons.append(corners)
