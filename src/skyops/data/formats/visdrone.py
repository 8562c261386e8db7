"""VisDrone-DET: `images/<stem>.jpg` + `annotations/<stem>.txt`.

An annotation row is `left,top,width,height,score,category,truncation,occlusion` in pixels.
Categories 1..10 are the object classes. Dropped by default, each counted under its own reason:
    category 0   `ignored_region`  regions the annotators chose not to label
    category 11  `others`          objects outside the ten classes
    score 0      `score_zero`      boxes VisDrone's own evaluation ignores
`keep_ignored=True` keeps them: categories 11 and 0 become classes 10 `others` and 11 `ignored-region`,
score-0 boxes keep their category. Rows need at least the first six fields (some official files end
rows with a stray comma; it is tolerated).

A source is either one such folder, or a folder of them (e.g. VisDrone2019-DET-train/, -val/).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from skyops.data.formats.base import (
    Format,
    Item,
    Parsed,
    SourceOptions,
    SourcePlan,
    first_lines,
    is_number,
    list_files,
    roots_with,
    stem_of,
    unique_names,
)
from skyops.data.formats.files import read_bytes
from skyops.data.layout import IMAGE_SUFFIXES, group_of

CLASSES = ("pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor")
IGNORED_CLASSES = ("others", "ignored-region")  # categories 11 and 0 when kept
_IGNORED_REGION, _OTHERS = 0, 11
_REASONS = {_IGNORED_REGION: "ignored_region", _OTHERS: "others"}  # drop reason by category


def source_index(category: int) -> int:
    """Source class index of a kept VisDrone category: 1..11 -> 0..10 (as Ultralytics), 0 -> 11."""
    return category - 1 if category != _IGNORED_REGION else len(CLASSES) + 1


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
        for root in roots:
            texts = list_files(root / "annotations", suffixes=(".txt",))
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
        pairs: list[tuple[str, str, str, str]] = []  # stem, image, annotation, image path relative to source
        problems: list[str] = []
        for root in visdrone_roots(source):
            prefix = "" if root == source else f"{root.relative_to(source).as_posix()}/"
            images_dir, annotations_dir = str(root / "images"), str(root / "annotations")
            images = {stem_of(n): n for n in list_files(root / "images", suffixes=IMAGE_SUFFIXES)}
            texts = {stem_of(n): n for n in list_files(root / "annotations", suffixes=(".txt",))}
            for stem in sorted(texts.keys() - images.keys()):
                problems.append(
                    f"{prefix}annotations/{texts[stem]} has no image {prefix}images/{stem}.* (looked for {', '.join(IMAGE_SUFFIXES)})"
                )
            for stem in sorted(images.keys() - texts.keys()):
                problems.append(f"{prefix}images/{images[stem]} has no annotation file {prefix}annotations/{stem}.txt")
            for stem in sorted(images.keys() & texts.keys()):
                pairs.append((stem, f"{images_dir}/{images[stem]}", f"{annotations_dir}/{texts[stem]}", f"{prefix}images/{images[stem]}"))
        out_names = unique_names([rel for *_, rel in pairs])
        items = [
            Item(image=image, name=name, group=group_of(stem), source=rel, annotation=annotation)
            for (stem, image, annotation, rel), name in zip(pairs, out_names, strict=True)
        ]
        return SourcePlan(names=names, items=items, problems=problems)

    def parse(self, items: list[Item], sizes: list[tuple[int, int]], options: SourceOptions) -> Parsed:
        parsed = Parsed()
        for owner, item in enumerate(items):
            assert item.annotation is not None  # every VisDrone item has one (see plan)
            text = read_bytes(item.annotation).decode("utf-8", errors="replace")
            _parse_rows(text, owner, item.annotation, options.keep_ignored, parsed)
        return parsed


def _parse_rows(text: str, owner: int, annotation: str, keep_ignored: bool, parsed: Parsed) -> None:
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip().rstrip(",")
        if not line:
            continue
        fields = line.split(",")
        if len(fields) < 6:
            parsed.problem(owner, f"{_at(annotation, lineno)}: expected 8 comma-separated fields, got {len(fields)} ({line!r})")
            continue
        try:
            left, top, w, h = float(fields[0]), float(fields[1]), float(fields[2]), float(fields[3])
            score, category = int(fields[4]), int(fields[5])
        except ValueError:
            parsed.problem(owner, f"{_at(annotation, lineno)}: fields are not numbers ({line!r})")
            continue
        if not math.isfinite(left + top + w + h):
            parsed.problem(owner, f"{_at(annotation, lineno)}: box is not finite ({line!r})")
            continue
        if not 0 <= category <= _OTHERS:
            parsed.problem(owner, f"{_at(annotation, lineno)}: category {category} is not in 0..11")
            continue
        reason = _REASONS.get(category) or ("score_zero" if score == 0 else "")
        if reason and not keep_ignored:
            parsed.dropped[reason] += 1
            continue
        parsed.add(owner, source_index(category), (left, top, left + w, top + h))


def _at(annotation: str, lineno: int) -> str:
    """Where a bad row is, for messages (built only when something is wrong)."""
    return f"annotations/{os.path.basename(annotation)}:{lineno}"
