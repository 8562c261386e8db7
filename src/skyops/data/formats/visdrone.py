"""VisDrone-DET: `images/<stem>.jpg` + `annotations/<stem>.txt`.

An annotation row is `left,top,width,height,score,category,truncation,occlusion` in pixels.
Categories 1..10 are the object classes. Dropped by default, each counted under its own reason:
    category 0   `ignored_region`  regions the annotators chose not to label
    category 11  `others`          objects outside the ten classes
    score 0      `score_zero`      boxes VisDrone's own evaluation ignores
`keep_ignored=True` keeps them: categories 11 and 0 become classes 10 `others` and 11 `ignored-region`,
score-0 boxes keep their category. Rows need at least the first six fields (some official files end
rows with a stray comma; it is tolerated).

Truncation and occlusion (fields 7 and 8) are kept in a side file per image, `attributes/<stem>.txt`,
one line per label row (see skyops.data.attributes), for the evaluation's occlusion and truncation slices.

Images and annotations are paired by stem. An image without an annotation file is converted without
a label file (`label.missing`: validation decides), an annotation file without an image is counted
and not converted (`label.orphan`); an empty annotation file is an image with no objects.

A source is either one such folder, or a folder of them (e.g. VisDrone2019-DET-train/, -val/).
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
from skyops.data.layout import IMAGE_SUFFIXES, group_of

CLASSES = ("pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor")
IGNORED_CLASSES = ("others", "ignored-region")  # categories 11 and 0 when kept
_IGNORED_REGION, _OTHERS = 0, 11
_REASONS = {_IGNORED_REGION: "ignored_region", _OTHERS: "others"}  # drop reason by category


# Source class index of a kept category: 1..11 -> 0..10 (as Ultralytics), and 0 -> 11.
_KEPT_REGION = len(CLASSES) + 1


def visdrone_roots(path: Path) -> list[Path]:
    """`path` if it holds images/ + annotations/, else its sub-folders that do."""
    return roots_with(path, "images", "annotations")


class VisDroneReader:
    format = Format.VISDRONE
    expected = "a folder with images/ and annotations/<stem>.txt of comma-separated rows 'left,top,width,height,score,category,truncation,occlusion' (or a folder of such folders)"

    def evidence(self, path: Path) -> str | None:
        roots = visdrone_roots(path)
        if not roots:
            return None
        inside = Root(path)
        for root in roots:
            if inside.escapes(root / "annotations"):
                continue
            texts, _ = scan_files(root / "annotations", inside, (".txt",))
            for name in texts[:5]:
                lines = first_lines(root / "annotations" / name, 1)
                if lines:
                    fields = lines[0].rstrip(",").split(",")
                    if len(fields) >= 6 and all(is_number(f) for f in fields):
                        return f"{len(roots)} folder(s) with images/ and annotations/*.txt whose rows are {len(fields)} comma-separated numbers ({lines[0]!r})"
                    return None
        return None

    def plan(self, source: Path, options: SourceOptions) -> SourcePlan:
        names = CLASSES + IGNORED_CLASSES if options.keep_ignored else CLASSES
        pairs: list[tuple[str, str, str | None, str, str]] = []  # stem, image, annotation, image and annotation relative to source
        root = Root(source)
        findings: list[Finding] = []
        for folder in visdrone_roots(source):
            prefix = "" if folder == source else f"{folder.relative_to(source).as_posix()}/"
            escaped = escaping_folders(root, [folder / "images", folder / "annotations"], source)
            findings += escaped
            if escaped:
                continue
            image_names, bad_images = scan_files(folder / "images", root, IMAGE_SUFFIXES)
            text_names, bad_texts = scan_files(folder / "annotations", root, (".txt",))
            findings += escaping_files(bad_images, f"{prefix}images/") + escaping_files(bad_texts, f"{prefix}annotations/")
            images = by_stem(image_names, f"{prefix}images/", findings)
            texts = {stem_of(n): n for n in text_names}
            for stem in sorted(texts.keys() - images.keys() - {stem_of(n) for n in bad_images}):  # refused images: no orphans
                findings.append(
                    Finding(
                        file=f"{prefix}annotations/{texts[stem]}",
                        rule=Rule.LABEL_ORPHAN,
                        message=f"no image {prefix}images/{stem}.* (looked for {', '.join(IMAGE_SUFFIXES)}): not converted",
                    )
                )
            refused = {stem_of(n) for n in bad_texts}  # their images are not converted: the conversion is refused
            for stem in sorted(images.keys() - texts.keys() - refused):
                findings.append(
                    Finding(
                        file=f"{prefix}images/{images[stem]}",
                        rule=Rule.LABEL_MISSING,
                        message=f"no annotation file {prefix}annotations/{stem}.txt: converted without a label file",
                    )
                )
            images_dir, annotations_dir = str(folder / "images"), str(folder / "annotations")  # strings: pathlib costs ~10 µs a join
            for stem in sorted(images.keys() - refused):
                text = texts.get(stem)
                annotation = (f"{annotations_dir}/{text}", f"{prefix}annotations/{text}") if text else (None, "")
                pairs.append((stem, f"{images_dir}/{images[stem]}", *annotation, f"{prefix}images/{images[stem]}"))
        out_names = unique_names([rel for *_, rel in pairs])
        items = [
            Item(image=image, name=name, group=group_of(stem), source=rel, label=label, annotation=annotation)
            for (stem, image, annotation, label, rel), name in zip(pairs, out_names, strict=True)
        ]
        return SourcePlan(names=names, items=items, findings=findings)

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        parsed = Parsed()
        for owner, item in enumerate(items):
            if item.annotation is None:
                continue  # no annotation file: a missing label (see plan)
            text = read_text(item.annotation, item.label, parsed.findings)
            if text is None:
                parsed.failed.add(owner)
            else:
                _parse_rows(text, owner, item.label, options.keep_ignored, parsed)
        return parsed


def by_stem(names: list[str], prefix: str, findings: list[Finding]) -> dict[str, str]:
    """Image file name by stem; images sharing a stem (a.jpg, a.png) are refused: one annotation cannot label both."""
    found: dict[str, str] = {}
    for name in names:
        stem = stem_of(name)
        if stem in found:
            findings.append(
                Finding(
                    file=f"{prefix}{name}",
                    rule=Rule.IMAGE_NAME_CLASH,
                    message=f"shares its stem with {prefix}{found[stem]}: one annotation file cannot label both; rename one",
                )
            )
        else:
            found[stem] = name
    return found


def _parse_rows(text: str, owner: int, file: str, keep_ignored: bool, parsed: Parsed) -> None:
    if parsed.attributes is None:
        parsed.attributes = []
    owners, classes, boxes, refs, attributes = (
        parsed.owner,
        parsed.classes,
        parsed.boxes,
        parsed.refs,
        parsed.attributes,
    )  # appended per row
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip().rstrip(",")
        if not line:
            continue
        fields = line.split(",")
        if len(fields) < 6:
            parsed.problem(owner, file, lineno, Rule.ROW_UNPARSEABLE, f"expected 8 comma-separated fields, got {len(fields)} ({line!r})")
            continue
        try:
            left, top, w, h = float(fields[0]), float(fields[1]), float(fields[2]), float(fields[3])
            score, category = int(fields[4]), int(fields[5])
        except ValueError:
            parsed.problem(owner, file, lineno, Rule.ROW_UNPARSEABLE, f"fields are not numbers ({line!r})")
            continue
        if not math.isfinite(left + top + w + h):
            parsed.problem(owner, file, lineno, Rule.BOX_NOT_FINITE, f"box is not finite ({line!r})")
            continue
        if not 0 <= category <= _OTHERS:
            parsed.problem(owner, file, lineno, Rule.CLASS_UNKNOWN, f"category {category} is not in 0..11")
            continue
        reason = _REASONS.get(category) or ("score_zero" if score == 0 else "")
        if reason and not keep_ignored:
            parsed.dropped[reason] += 1
            continue
        owners.append(owner)
        classes.append(category - 1 if category else _KEPT_REGION)
        boxes.append((left, top, left + w, top + h))
        refs.append(lineno)
        attributes.append(_truncation_occlusion(fields))


def _truncation_occlusion(fields: list[str]) -> tuple[int, int]:
    """A row's fields 7 and 8 (truncation, occlusion); -1 for each one it lacks or that is not an integer."""
    found = []
    for text in fields[6:8]:
        try:
            found.append(int(text))
        except ValueError:
            found.append(-1)
    found += [-1] * (2 - len(found))
    return found[0], found[1]
