"""Convert a detection dataset (VisDrone, COCO, VOC, Ground Truth, YOLO, DOTA, DIOR) into the canonical layout.

`convert` never modifies the source and never reads outside it: images are hard-linked (copied
across file systems), labels are written fresh, and the whole output (images/, labels/,
manifest.json, convert-report.json) is built in a temp folder beside the target, then renamed into
place. Per image it reads the bytes once, hashes them and takes the size from the header (no pixel
decode), then maps classes by name and sorts out bad boxes in one numpy pass per chunk of images.

Every finding has a rule id and a place (file and line, or an entry such as `annotations[3]`);
the rule decides the outcome (see formats/findings.py). One run reports every finding of a source.

    refused   (the conversion fails; every refusal is listed in one error, sorted)
              path.escapes_root: a symlink, `../` or absolute name leading outside its root (never
              read, never echoed); path.unresolved; source.layout; source.structure;
              file.unreadable; text.not_utf8 (label files are numbers: no encoding is guessed);
              names.missing / names.invalid; class.unknown; row.unparseable; box.not_finite (NaN,
              inf); image.missing (a COCO / Ground Truth entry without its file);
              image.duplicate_id (two COCO images, one id: named both); image.size_mismatch;
              image.name_clash (two images, one label file)
    skipped   image.unreadable (no readable header), image.zero_bytes, groundtruth.no_label
    missing   label.missing: an image whose source has no annotation file (no XML names it) is
              converted WITHOUT a label file, so that validation raises `label.missing` and its
              policy decides; an empty annotation file (a COCO image with no annotations, a VOC
              XML with no objects) is an image with no objects and gets an empty label file
    orphan    label.orphan: a VisDrone / YOLO / VOC annotation file without its image (counted)
    dropped   box.negative_size, box.zero_area (judged on the source's numbers),
              box.outside_image, box.duplicate (the same class and coordinates as an earlier box of
              the image: kept once, the finding names the line it repeats); boxes the format marks
              as ignored (VisDrone regions / others / score 0, COCO crowd, VOC difficult) are
              counted per reason in `dropped` without a finding each
    clipped   box.out_of_image: partly outside the image, clipped to it and kept
    note      text.bom (a UTF-8 BOM, stripped), text.line_endings (lone \\r or mixed endings, each
              read as a line break), image.truncated (the header is readable but the end marker is
              missing: converted, and validation's `image.truncated` decides)

Counts are in the `ConvertReport` and, minus timings, in the manifest's `stats`; the full list of
findings is in `convert-report.json` beside the manifest. Content defects that do not stop a
conversion (a truncated file, EXIF rotation) are the validator's business: see validate.py.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from skyops.data.formats import READERS, REFINES, Format, SourceOptions
from skyops.data.formats.base import Item, describe_folder, stem_of
from skyops.data.formats.files import choose_workers, chunked, occupied, parallel_map
from skyops.data.formats.findings import Finding, Outcome, Rule
from skyops.data.formats.writer import Chunk, ChunkResult, convert_chunk
from skyops.data.layout import IMAGES, LABELS, Manifest, atomic_output_dir, json_lines
from skyops.errors import DataValidationError

Names = Sequence[str] | Mapping[str, int]
REPORT_JSON = "convert-report.json"
_MAX_LISTED = 20  # findings listed in an error or a summary; the rest are counted


@dataclass(frozen=True, kw_only=True)
class ConvertReport:
    """What a conversion did. `stats()` is the deterministic part stored in the manifest."""

    source: str
    target: str
    format: Format
    names: list[str]
    images: int
    boxes: int
    per_class: dict[str, int]  # boxes kept, per target class
    dropped: dict[str, int]  # boxes dropped, per reason (the format's ignored boxes, box.* rules)
    clipped: int  # boxes clipped to the image (and kept)
    skipped: list[tuple[str, str]]  # images left out: (where, "rule: why")
    empty_labels: int  # images converted with an empty label file (no objects, or every box dropped)
    missing_labels: int  # images converted without a label file (no annotation in the source)
    findings: list[Finding] = field(default_factory=list)  # everything found that did not refuse, sorted
    fingerprint: str
    seconds: float = 0.0
    workers: int = 1

    def counts(self) -> dict[str, int]:
        """Findings per rule id, sorted by rule id."""
        return dict(sorted(Counter(str(f.rule) for f in self.findings).items()))

    def stats(self) -> dict[str, Any]:
        return {
            "format": str(self.format),
            "images": self.images,
            "boxes": self.boxes,
            "per_class": self.per_class,
            "dropped": self.dropped,
            "clipped": self.clipped,
            "skipped": [list(s) for s in self.skipped],
            "empty_labels": self.empty_labels,
            "missing_labels": self.missing_labels,
            "findings": self.counts(),
            "report": REPORT_JSON,
        }

    def to_json(self) -> dict[str, Any]:
        """convert-report.json: the stats, the findings per rule and every finding (no paths or timings, so it is deterministic)."""
        stats = {k: v for k, v in self.stats().items() if k not in ("findings", "report")}
        return {"names": self.names, **stats, "counts": self.counts(), "findings": [f.to_json() for f in self.findings]}

    def summary(self) -> str:
        rate = self.images / self.seconds if self.seconds else 0.0
        empty = sum(1 for c in self.per_class.values() if not c)
        per_class = ", ".join(f"{n} {c}" for n, c in self.per_class.items() if c) + (f"; {empty} classes with none" if empty else "")
        dropped = ", ".join(f"{r} {c}" for r, c in sorted(self.dropped.items())) or "none"
        counts = ", ".join(f"{rule} {n}" for rule, n in self.counts().items()) or "none"
        more = len(self.findings) - _MAX_LISTED
        lines = [
            f"converted {self.images} {self.format} images from {self.source} to {self.target} in {self.seconds:.2f} s ({rate:.0f} images/s, {self.workers} workers)",
            f"  boxes kept: {self.boxes} ({per_class})",
            f"  boxes dropped: {dropped}",
            f"  boxes clipped to the image: {self.clipped}",
            f"  images skipped: {len(self.skipped)}; with an empty label file: {self.empty_labels}; "
            f"without a label file: {self.missing_labels} (validation raises label.missing)",
            f"  findings: {counts}",
            *(f"    - {f}" for f in self.findings[:_MAX_LISTED]),
            *([f"    … and {more} more in {Path(self.target) / REPORT_JSON}"] if more > 0 else []),
            f"  fingerprint: {self.fingerprint}",
        ]
        return "\n".join(lines)


class ConvertFailed(DataValidationError):
    """The source has findings that refuse the conversion; `findings` holds every finding of the run."""

    def __init__(self, subject: str, findings: list[Finding], hint: str) -> None:
        refused = [f for f in findings if f.outcome is Outcome.REFUSED]
        lines = list(dict.fromkeys(str(f) for f in refused))  # sorted by place already; no repeats
        noun = "problem" if len(lines) == 1 else "problems"
        body = "\n".join(f"  - {line}" for line in lines[:_MAX_LISTED])
        more = f"\n  … and {len(lines) - _MAX_LISTED} more" if len(lines) > _MAX_LISTED else ""
        super().__init__(f"{len(lines)} {noun} in {subject}:\n{body}{more}", hint=hint)
        self.problems = lines
        self.findings = findings


def detect_format(path: Path | str) -> Format:
    """The format of the dataset at `path`.

    Raises:
        DataValidationError: no format matches (says what was found and what each format looks
            like), or several do (lists the evidence for each).
    """
    path = Path(path)
    found = _evidence(path)
    if len(found) == 1:
        return next(iter(found))
    if not found:
        expected = "\n".join(f"  - {fmt}: {reader.expected}" for fmt, reader in READERS.items())
        raise DataValidationError(
            f"cannot tell the format of {path}: found {describe_folder(path)}; expected one of:\n{expected}",
            hint="point at the dataset's root folder (or its COCO JSON / Ground Truth manifest), or declare it: --format <name> (fmt= in Python)",
        )
    listed = "\n".join(f"  - {fmt}: {why}" for fmt, why in found.items())
    options = " or ".join(f"--format {fmt}" for fmt in found)
    raise DataValidationError(
        f"{path} matches several formats:\n{listed}", hint=f"declare one: {options} (fmt='{next(iter(found))}' in Python)"
    )


def convert(
    source: Path | str,
    target: Path | str,
    fmt: Format | str | None = None,
    *,
    names: Names | None = None,
    keep_ignored: bool = False,
    workers: int | None = None,
    overwrite: bool = False,
    images_dir: Path | str | None = None,
    s3_prefix: str | None = None,
    obb: bool = False,
) -> ConvertReport:
    """Convert the dataset at `source` into the canonical layout at `target`.

    Args:
        source: dataset folder (or COCO JSON / Ground Truth manifest file).
        target: folder to create; its parent must be writable (the output is built beside it).
        fmt: the source format, in any case ('COCO' = 'coco'); None or 'auto' detects it (see
            `detect_format`). A declared format is checked against the data, never trusted blindly.
        names: target classes. A list of names (each source class maps to the entry with its
            name), or a mapping source name -> target id (ids 0..K-1; several names may share an id,
            and the first one names it). Every source class must be covered. None keeps the source
            classes in source order. For a YOLO source without data.yaml, the list names its ids.
        keep_ignored: keep the boxes the source marks as ignored (see the format modules).
        workers: processes to use; 1 = in this process; None = one per CPU for large sources only
            (see `formats.files.choose_workers`).
        overwrite: replace an existing `target` (the old one is removed only after the new one is complete).
        images_dir: where COCO file names / Ground Truth source-refs are resolved (and must stay).
        s3_prefix: `s3://bucket/prefix/` stripped from Ground Truth source-refs.
        obb: also write YOLO-OBB labels (labels-obb/) of the oriented boxes; DOTA sources only.

    Raises:
        ConvertFailed: the source has refused findings (all of them listed at once, sorted);
            `.findings` holds every finding of the run.
        DataValidationError: a bad target, format or argument.
    """
    started = time.perf_counter()
    source, target = Path(source).resolve(), Path(target).resolve()
    _check_paths(source, target, overwrite, Path(images_dir).resolve() if images_dir else None)
    fmt = _declared(source, fmt)
    if obb and fmt is not Format.DOTA:
        raise DataValidationError(
            f"obb labels need oriented boxes, which a {fmt} source does not have",
            hint="drop --obb (obb=True in Python), or convert a DOTA source",
        )
    yolo_names = tuple(names) if fmt is Format.YOLO and names is not None and not isinstance(names, Mapping) else None
    options = SourceOptions(
        keep_ignored=keep_ignored,
        images_dir=Path(images_dir).resolve() if images_dir else None,
        s3_prefix=s3_prefix,
        yolo_names=yolo_names,
        obb=obb,
    )
    plan = READERS[fmt].plan(source, options)
    findings = list(plan.findings)
    target_names, lookup, naming = _mapping(plan.names, names)
    items, clashes = _without_clashes(plan.items)
    findings += naming + clashes
    has_names = bool(plan.names) or not any(f.rule is Rule.NAMES_MISSING for f in findings)

    workers = choose_workers(len(items), workers)
    chunks = chunked(items, workers)
    workers = max(1, min(workers, len(chunks)))
    with atomic_output_dir(target, overwrite=overwrite) as staging:
        (staging / IMAGES).mkdir()
        (staging / LABELS).mkdir()
        result = _run(fmt, options, chunks, staging, lookup, workers, check_classes=has_names)
        findings = sorted(findings + result.findings)
        if any(f.outcome is Outcome.REFUSED for f in findings):
            raise ConvertFailed(
                f"{fmt} source {source}",
                findings,
                hint="fix these in the source (skyops never modifies it) or in the convert options named above",
            )
        records = result.image_records()
        report = ConvertReport(
            source=str(source),
            target=str(target),
            format=fmt,
            names=target_names,
            images=len(records),
            boxes=sum(r.boxes for r in records),
            per_class={name: int(result.per_class[i]) for i, name in enumerate(target_names)},
            dropped=dict(sorted((plan.dropped + result.dropped).items())),
            clipped=result.clipped,
            skipped=[(f.where, f"{f.rule}: {f.message}") for f in findings if f.outcome is Outcome.SKIPPED],
            empty_labels=sum(1 for r in records if r.label_sha256 and not r.boxes),
            missing_labels=sum(1 for r in records if not r.label_sha256),
            findings=findings,
            fingerprint="",  # set below, from the manifest built with these stats
            workers=workers,
        )
        manifest = Manifest(names=target_names, images=records, source_format=fmt.value, stats=report.stats())
        manifest.write(staging)
        (staging / REPORT_JSON).write_text(json_lines(report.to_json()))
    return replace(report, fingerprint=manifest.fingerprint, seconds=time.perf_counter() - started)


_NAMES_HINT = (
    "give every source class a target: --classes a,b,... (names=[...] in Python; a mapping names={'source name': target_id} merges classes)"
)


def _mapping(source_names: Sequence[str], names: Names | None) -> tuple[list[str], npt.NDArray[np.int64], list[Finding]]:
    """Target class names and the target id of each source class index, with every problem of `names` as a finding
    (on problems, the source's own classes)."""
    identity = np.arange(len(source_names), dtype=np.int64)
    if names is None:
        return list(source_names), identity, []
    problems: list[str] = []
    if isinstance(names, str):
        problems.append(f"names={names!r} is a string, not a list of class names or a mapping source name -> target id")
    elif isinstance(names, Mapping):
        if not all(isinstance(i, int) for i in names.values()):
            problems.append(f"names mapping values must be integer target ids, e.g. {{'car': 0, 'van': 0, 'person': 1}}; got {names!r}")
        else:
            ids = sorted(set(names.values()))
            if ids != list(range(len(ids))):
                problems.append(f"target ids {ids} are not 0..{len(ids) - 1}")
            problems += [f"{n!r} is not a source class" for n in names if n not in source_names]
    else:
        problems += [f"{n!r} is listed {c} times" for n, c in Counter(names).items() if c > 1]
    if not problems:
        if isinstance(names, Mapping):
            target = {i: n for n, i in reversed(list(names.items()))}  # the first name given for an id names it
            target_names = [target.get(i, str(i)) for i in range(len(set(names.values())))]
            index = dict(names)
        else:
            target_names = list(names)
            index = {n: i for i, n in enumerate(target_names)}
        missing = [n for n in source_names if n not in index]
        if not missing:
            return target_names, np.array([index[n] for n in source_names], dtype=np.int64), []
        problems.append(f"no target class for source class(es) {', '.join(map(repr, missing))}")
    findings = [Finding(file="", entry="names", rule=Rule.NAMES_INVALID, message=p) for p in problems]
    return list(source_names), identity, findings


def _without_clashes(items: list[Item]) -> tuple[list[Item], list[Finding]]:
    """The items whose label file name (stem, any case) is their own, and a finding per clash."""
    by_stem: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_stem[stem_of(item.name).lower()].append(item)
    findings = []
    for group in by_stem.values():
        for other in group[1:]:
            same = other.source == group[0].source
            why = (
                "is listed twice"
                if same
                else f"would share its label file with {group[0].source} (same stem, any case): rename one in a copy of the source"
            )
            findings.append(Finding(file=other.label if same else other.source, line=other.line, rule=Rule.IMAGE_NAME_CLASH, message=why))
    return [item for item in items if len(by_stem[stem_of(item.name).lower()]) == 1], findings


def _run(
    fmt: Format,
    options: SourceOptions,
    parts: list[list[Item]],
    staging: Path,
    lookup: npt.NDArray[np.int64],
    workers: int,
    *,
    check_classes: bool,
) -> ChunkResult:
    classes = int(lookup.max()) + 1 if lookup.size else 0
    total = ChunkResult(np.zeros(classes, dtype=np.int64))
    chunks = [Chunk(fmt, options, [tuple(item) for item in part], staging, lookup, classes, check_classes) for part in parts]
    for result in parallel_map(convert_chunk, chunks, workers):
        total.merge(result)
    return total


# ---- checks ----


def _evidence(path: Path) -> dict[Format, str]:
    evidence = {fmt: reader.evidence(path) for fmt, reader in READERS.items()}
    found = {fmt: why for fmt, why in evidence.items() if why}
    refined = {REFINES[fmt] for fmt in found if fmt in REFINES}  # DIOR is VOC with a class list: say DIOR only
    return {fmt: why for fmt, why in found.items() if fmt not in refined}


def _declared(source: Path, fmt: Format | str | None) -> Format:
    """The format to read `source` as: detected, or declared (any case) and confirmed by the data."""
    if fmt is None or str(fmt).strip().lower() == "auto":
        return detect_format(source)
    try:
        declared = Format(str(fmt).strip().lower())
    except ValueError:
        raise DataValidationError(
            f"unknown format {fmt!r}", hint=f"use one of: auto, {', '.join(Format)} (--format, or fmt= in Python; any case)"
        ) from None
    if READERS[declared].evidence(source) is not None:
        return declared
    others = _evidence(source)
    looks = "".join(f"; it looks like {other}: {why}" for other, why in others.items())
    hint = (
        f"declare it: --format {next(iter(others))} (fmt='{next(iter(others))}' in Python)"
        if len(others) == 1
        else "check the path points at the dataset root"
    )
    raise DataValidationError(
        f"{source} is not a {declared} dataset: expected {READERS[declared].expected}; found {describe_folder(source)}{looks}",
        hint=hint,
    )


def _check_paths(source: Path, target: Path, overwrite: bool, images_dir: Path | None) -> None:
    if not source.exists():
        raise DataValidationError(f"source {source} does not exist", hint="check the path")
    if occupied(target) and not overwrite:
        raise DataValidationError(
            f"target {target} already exists and is not an empty folder",
            hint="pass --overwrite (overwrite=True in Python) to replace it, or choose a new target",
        )
    roots = [source if source.is_dir() else source.parent, *([images_dir] if images_dir else [])]
    for root in roots:
        if target.is_relative_to(root) or root.is_relative_to(target):
            raise DataValidationError(
                f"target {target} overlaps the source folder {root}",
                hint="write the converted dataset outside the source: sources are never modified",
            )
