"""Validate a canonical-layout dataset: every finding has a stable rule id; a policy decides what fails.

`validate` reads every image once (hash + header, no pixel decode unless `policy.decode`) and
every label, in parallel, and returns a `ValidationReport`. Images with a finding whose rule the
policy quarantines are listed in `report.quarantined`; they are never deleted or changed, only left
out by `write_validated`. When more than `policy.max_invalid_fraction` of the images are
quarantined, `validate` raises `ValidationFailed` (a DataValidationError that carries the report).

Choices worth knowing:
- An empty label file is an image with no objects: negative images are legal and useful, so
  `label.empty` is a warning. A *missing* label file quarantines by default: nobody said the
  image is empty, and training on it as a negative would teach the model to miss its objects.
- Of several byte-identical images, the first by path is kept and the others are quarantined as
  `image.duplicate`: copies on both sides of a split inflate the test scores.
- `label.out_of_range` allows 1e-5 of slack at box edges: labels written with 6 decimals can
  overshoot the image border by up to 1e-6 through rounding.
- A dataset whose images/ or labels/ hold links to files outside it is refused outright
  (`path.escapes_root`, as in convert), not quarantined: a policy could otherwise let a foreign
  file into the validated copy.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from skyops.data.formats.files import choose_workers, chunked, link, occupied, parallel_map, read_bytes, write_new
from skyops.data.formats.findings import Finding as ConvertFinding
from skyops.data.formats.findings import Rule as ConvertRule
from skyops.data.formats.paths import Root, escaping_files, scan_files
from skyops.data.imageinfo import SUFFIX_FORMATS, ImageHeaderError, probe
from skyops.data.layout import (
    ATTRIBUTES,
    IMAGE_SUFFIXES,
    IMAGES,
    LABELS,
    MANIFEST,
    ImageRecord,
    Manifest,
    atomic_output_dir,
    attributes_file,
    group_of,
    image_stem,
)
from skyops.errors import ConfigError, DataValidationError, problems_error

VALIDATION_JSON = "validation.json"
EDGE_TOLERANCE = 1e-5  # normalised units of slack at box edges (6-decimal rounding)
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class Rule(StrEnum):
    """Stable rule ids: reports, policies and dashboards refer to these strings."""

    IMAGE_UNREADABLE = "image.unreadable"
    IMAGE_ZERO_BYTES = "image.zero_bytes"
    IMAGE_TRUNCATED = "image.truncated"
    IMAGE_EXT_MISMATCH = "image.ext_mismatch"
    IMAGE_TOO_LARGE = "image.too_large"
    IMAGE_EXIF_ROTATED = "image.exif_rotated"
    IMAGE_TOO_SMALL = "image.too_small"
    IMAGE_DUPLICATE = "image.duplicate"
    LABEL_UNPARSEABLE = "label.unparseable"
    LABEL_NAN = "label.nan"
    LABEL_OUT_OF_RANGE = "label.out_of_range"
    LABEL_NONPOSITIVE_SIZE = "label.nonpositive_size"
    LABEL_BAD_CLASS = "label.bad_class"
    LABEL_MISSING = "label.missing"
    LABEL_EMPTY = "label.empty"
    LABEL_ORPHAN = "label.orphan"  # a label file whose image is absent (nothing to quarantine)


class Severity(StrEnum):
    ERROR = "error"  # the image is quarantined
    WARNING = "warning"


HINTS = {
    Rule.IMAGE_UNREADABLE: "replace the file with a valid JPEG/PNG, or remove it from the source",
    Rule.IMAGE_ZERO_BYTES: "the file is empty, usually an interrupted copy or download: copy it again",
    Rule.IMAGE_TRUNCATED: "the file is cut short, usually an interrupted copy or download: copy it again",
    Rule.IMAGE_EXT_MISMATCH: "rename the file to its real format's extension (tools that trust the name may misread it)",
    Rule.IMAGE_TOO_LARGE: "tile or downscale the image (with its boxes), or raise policy.max_pixels if it is trusted",
    Rule.IMAGE_EXIF_ROTATED: "re-save it upright (PIL.ImageOps.exif_transpose) and check its boxes match the rotated pixels",
    Rule.IMAGE_TOO_SMALL: "drop the image, or lower policy.min_side if such small images are intended",
    Rule.IMAGE_DUPLICATE: "remove the copy from the source; copies across a split inflate test scores",
    Rule.LABEL_UNPARSEABLE: "each line must be 'class cx cy w h': five numbers separated by spaces",
    Rule.LABEL_NAN: "replace NaN/inf coordinates: re-export the labels from the annotation tool",
    Rule.LABEL_OUT_OF_RANGE: "coordinates are normalised to [0, 1]: divide pixel values by the image size, clip to the image",
    Rule.LABEL_NONPOSITIVE_SIZE: "remove or fix boxes whose width or height is 0 or negative",
    Rule.LABEL_BAD_CLASS: "class ids must be integers below the number of names: fix the id or the names list",
    Rule.LABEL_MISSING: "add the label file (empty if the image has no objects), or remove the image",
    Rule.LABEL_EMPTY: "nothing to do if the image has no objects (a negative); otherwise annotate it",
    Rule.LABEL_ORPHAN: "remove the label file, or restore its image",
}
# Quarantine by default everything that makes an image or its labels wrong; only warn where the
# image is still usable as it is.
DEFAULT_QUARANTINE = frozenset(Rule) - {Rule.IMAGE_EXT_MISMATCH, Rule.IMAGE_EXIF_ROTATED, Rule.LABEL_EMPTY, Rule.LABEL_ORPHAN}


class _Add(Protocol):
    def __call__(self, rule: Rule, message: str, file: str = ..., line: int | None = ...) -> None: ...


@dataclass(frozen=True, kw_only=True)
class ValidationPolicy:
    """What fails a dataset and what is quarantined.

    Attributes:
        max_invalid_fraction: fraction of images that may be quarantined before validation fails.
        quarantine: rules whose findings quarantine the image (severity error); others only warn.
        min_side: pixels; an image whose shorter side is smaller gets `image.too_small`.
        max_pixels: width x height above which an image is a decompression-bomb risk
            (`image.too_large`); default = Pillow's own warning threshold.
        decode: also decode every image's pixels (finds corruption inside the compressed data;
            about 10-50x slower than the header and end-marker checks).
    """

    max_invalid_fraction: float = 0.05
    quarantine: frozenset[Rule] = DEFAULT_QUARANTINE
    min_side: int = 32
    max_pixels: int = 89_478_485
    decode: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.max_invalid_fraction <= 1.0:
            problems.append(f"max_invalid_fraction={self.max_invalid_fraction} is not in [0, 1]")
        if self.min_side < 1 or self.max_pixels < 1:
            problems.append(f"min_side={self.min_side} and max_pixels={self.max_pixels} must be >= 1")
        unknown = sorted(str(r) for r in self.quarantine if r not in set(Rule))
        if unknown:
            problems.append(f"unknown rule(s) {unknown}; known: {', '.join(Rule)}")
        if problems:
            raise ConfigError(f"bad validation policy: {'; '.join(problems)}", hint="see skyops.data.validate.ValidationPolicy")
        object.__setattr__(self, "quarantine", frozenset(Rule(r) for r in self.quarantine))  # accept plain strings

    def severity(self, rule: Rule) -> Severity:
        return Severity.ERROR if rule in self.quarantine else Severity.WARNING


@dataclass(frozen=True, kw_only=True)
class Finding:
    rule: Rule
    file: str  # relative to the dataset root
    line: int | None = None  # 1-based, label rules only
    severity: Severity = Severity.WARNING
    message: str = ""
    hint: str = ""


@dataclass(frozen=True, kw_only=True)
class ValidationReport:
    root: str
    names: list[str]
    policy: ValidationPolicy
    images: int
    findings: list[Finding]
    quarantined: list[str]  # image paths relative to the root, sorted
    records: list[ImageRecord] = field(repr=False)  # every image, quarantined or not
    source_format: str = "yolo"
    source_stats: dict[str, Any] = field(default_factory=dict, repr=False)
    seconds: float = 0.0

    @property
    def invalid_fraction(self) -> float:
        return len(self.quarantined) / self.images if self.images else 0.0

    @property
    def passed(self) -> bool:
        return self.images > 0 and self.invalid_fraction <= self.policy.max_invalid_fraction

    def counts(self) -> dict[str, int]:
        """Findings per rule id, sorted by rule id."""
        return dict(sorted(Counter(str(f.rule) for f in self.findings).items()))

    def to_json(self) -> dict[str, Any]:
        policy = asdict(self.policy) | {"quarantine": sorted(self.policy.quarantine)}
        return {
            "root": self.root,
            "passed": self.passed,
            "images": self.images,
            "quarantined_count": len(self.quarantined),
            "invalid_fraction": round(self.invalid_fraction, 6),
            "policy": policy,
            "counts": self.counts(),
            "quarantined": self.quarantined,
            "findings": [asdict(f) for f in self.findings],
        }


class ValidationFailed(DataValidationError):
    """Too many images were quarantined; `report` holds every finding."""

    exit_code = 1

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(
            summary(report, examples=3),
            hint="fix or remove the listed files in the source and convert again, or loosen the policy: --max-invalid, --min-side (ValidationPolicy in Python)",
        )
        self.report = report


def validate(
    root: Path | str, policy: ValidationPolicy | None = None, *, names: list[str] | None = None, workers: int | None = None
) -> ValidationReport:
    """Check every image and label of the canonical-layout dataset at `root`.

    Args:
        root: folder with images/ and labels/ (and usually manifest.json).
        policy: what quarantines and what fails; default `ValidationPolicy()`.
        names: class names when `root` has no manifest.json (it wins otherwise).
        workers: processes to use; 1 = in this process; None = one per CPU for large datasets only.

    Raises:
        ValidationFailed: more than `policy.max_invalid_fraction` of the images are quarantined.
        DataValidationError: `root` is not a dataset in the canonical layout (or has no images), or
            its images/ or labels/ hold links to files outside it (`path.escapes_root`).
    """
    started = time.perf_counter()
    root, policy = Path(root).resolve(), policy or ValidationPolicy()
    manifest = Manifest.read(root) if (root / MANIFEST).is_file() else None
    class_names = manifest.names if manifest else names
    if class_names is None:
        raise DataValidationError(
            f"{root} has no {MANIFEST} and no names were given",
            hint="validate a dataset made by `skyops data convert` (or pass names=[...] in Python)",
        )
    if not (root / IMAGES).is_dir():
        raise DataValidationError(
            f"{root} has no {IMAGES}/ folder", hint="validate a dataset in the canonical layout (see skyops.data.layout)"
        )
    _refuse_links_out(root)
    images = sorted(n for n in os.listdir(root / IMAGES) if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES and not n.startswith("."))
    if not images:
        raise DataValidationError(
            f"{root / IMAGES} holds no images ({', '.join(IMAGE_SUFFIXES)})", hint="check the path, or convert the source first"
        )
    known = {r.image: r for r in manifest.images} if manifest else {}

    workers = choose_workers(len(images), workers)
    jobs = [_Job(root, part, policy, len(class_names)) for part in chunked(images, workers)]
    findings: list[Finding] = []
    records: list[ImageRecord] = []
    for found, checked in parallel_map(_check_chunk, jobs, workers):
        findings += found
        records += checked
    records = [_with_lineage(r, known.get(r.image)) for r in records]
    findings += _duplicates(records, policy)
    findings += _orphan_labels(root, images, policy)

    findings.sort(key=lambda f: (f.file, f.line or 0, f.rule))
    image_of = {f"{LABELS}/{os.path.splitext(n)[0]}.txt": f"{IMAGES}/{n}" for n in images} | {
        f"{IMAGES}/{n}": f"{IMAGES}/{n}" for n in images
    }
    quarantined = sorted({image_of[f.file] for f in findings if f.severity is Severity.ERROR and f.file in image_of})
    report = ValidationReport(
        root=str(root),
        names=list(class_names),
        policy=policy,
        images=len(images),
        findings=findings,
        quarantined=quarantined,
        records=records,
        source_format=manifest.source_format if manifest else "yolo",
        source_stats=manifest.stats if manifest else {},
        seconds=time.perf_counter() - started,
    )
    if not report.passed:
        raise ValidationFailed(report)
    return report


def _refuse_links_out(root: Path) -> None:
    """Refuse a dataset whose images/ or labels/ hold links to files outside it: they are never read
    (their content must not reach a finding) nor linked into a validated copy."""
    inside = Root(root)
    escaping = [
        ConvertFinding(file=f"{folder}/", rule=ConvertRule.PATH_ESCAPES_ROOT, message="a link to a folder outside the dataset")
        for folder in (IMAGES, LABELS)
        if (root / folder).exists() and inside.escapes(root / folder)
    ]
    for folder in (IMAGES, LABELS):
        if (root / folder).is_dir() and not escaping:
            escaping += escaping_files(scan_files(root / folder, inside)[1], f"{folder}/", "dataset")
    if escaping:
        raise problems_error(
            DataValidationError,
            f"dataset {root}",
            [str(f) for f in sorted(escaping)],
            hint="copy the files the links point at into the dataset, or remove the links",
        )


def write_validated(root: Path | str, target: Path | str, report: ValidationReport, *, overwrite: bool = False) -> Path:
    """Write the dataset at `root` minus its quarantined images to `target`, atomically.

    Images and labels are hard-linked (copied across file systems); an image whose label file is
    missing (kept only under a policy that allows it) gets an empty one. Adds `validation.json`
    (the report) and a manifest whose stats carry the source's plus the validation counts.

    Raises:
        DataValidationError: `report` is of another folder, or `target` exists without `overwrite`.
    """
    root, target = Path(root).resolve(), Path(target).resolve()
    if report.root != str(root):
        raise DataValidationError(f"the report is of {report.root}, not of {root}", hint="validate this folder first")
    if occupied(target) and not overwrite:
        raise DataValidationError(
            f"target {target} already exists and is not an empty folder", hint="choose a new target (or pass overwrite=True in Python)"
        )
    if target.is_relative_to(root) or root.is_relative_to(target):
        raise DataValidationError(
            f"target {target} overlaps the validated folder {root}", hint="write the validated dataset outside its source"
        )
    dropped = set(report.quarantined)
    kept = [r for r in report.records if r.image not in dropped]
    with atomic_output_dir(target, overwrite=overwrite) as staging:
        (staging / IMAGES).mkdir()
        (staging / LABELS).mkdir()
        for record in kept:
            link(str(root / record.image), str(staging / record.image))
            if (root / record.label).is_file():
                link(str(root / record.label), str(staging / record.label))
            else:
                write_new(str(staging / record.label), b"")
            side = attributes_file(root, record.image)  # optional box attributes travel with their label
            if side.is_file():
                (staging / ATTRIBUTES).mkdir(exist_ok=True)
                link(str(side), str(attributes_file(staging, record.image)))
        stats = report.source_stats | {"validation": {"images": report.images, "quarantined": len(dropped), "counts": report.counts()}}
        Manifest(names=report.names, images=kept, source_format=report.source_format, stats=stats).write(staging)
        (staging / VALIDATION_JSON).write_text(json.dumps(report.to_json(), indent=1))
    return target


def summary(report: ValidationReport, *, examples: int = 3) -> str:
    """A readable summary: verdict, then each rule with its count, severity, examples and fix."""
    verdict = "passed" if report.passed else "FAILED"
    lines = [
        f"validation {verdict} for {report.root}: {len(report.quarantined)} of {report.images} images quarantined "
        f"({report.invalid_fraction:.1%}; the policy allows {report.policy.max_invalid_fraction:.1%})"
    ]
    by_rule: dict[Rule, list[Finding]] = {}
    for f in report.findings:
        by_rule.setdefault(f.rule, []).append(f)
    for rule in sorted(by_rule, key=lambda r: (report.policy.severity(r) is not Severity.ERROR, r)):
        found = by_rule[rule]
        shown = ", ".join(f"{f.file}{f':{f.line}' if f.line else ''}" for f in found[:examples])
        more = f" (+{len(found) - examples} more)" if len(found) > examples else ""
        lines.append(f"  {report.policy.severity(rule):7} {rule:24} {len(found):6}  e.g. {shown}{more}")
        lines.append(f"  {'':7} {'':24} {'':6}  fix: {HINTS[rule]}")
    if not report.findings:
        lines.append("  no findings")
    return "\n".join(lines)


# ---- per-file checks (run in worker processes) ----


@dataclass(frozen=True)
class _Job:
    root: Path
    images: list[str]  # names under images/
    policy: ValidationPolicy
    classes: int


def _check_chunk(job: _Job) -> tuple[list[Finding], list[ImageRecord]]:
    findings: list[Finding] = []
    records: list[ImageRecord] = []
    root = str(job.root)
    for name in job.images:
        stem = os.path.splitext(name)[0]
        image, label = f"{IMAGES}/{name}", f"{LABELS}/{stem}.txt"

        def add(rule: Rule, message: str, file: str = image, line: int | None = None) -> None:
            findings.append(Finding(rule=rule, file=file, line=line, severity=job.policy.severity(rule), message=message, hint=HINTS[rule]))

        data = read_bytes(os.path.join(root, image))
        width, height = _check_image(data, name, job.policy, add)
        text: bytes | None
        try:
            text = read_bytes(os.path.join(root, label))
        except FileNotFoundError:
            add(Rule.LABEL_MISSING, f"no {label} for {image}")
            text = None
        if text is not None and not text.strip():
            add(Rule.LABEL_EMPTY, "empty label file: an image with no objects (a negative)", label)
        boxes = _check_label(text, label, job.classes, add) if text else 0
        records.append(
            ImageRecord(
                image=image,
                label=label,
                width=width,
                height=height,
                sha256=hashlib.sha256(data).hexdigest(),
                label_sha256=hashlib.sha256(text).hexdigest() if text is not None else _EMPTY_SHA256,
                boxes=boxes,
            )
        )
    return findings, records


def _check_image(data: bytes, name: str, policy: ValidationPolicy, add: _Add) -> tuple[int, int]:
    """Image rules; returns (width, height), (0, 0) when unknown."""
    if not data:
        add(Rule.IMAGE_ZERO_BYTES, "the file is empty (0 bytes)")
        return 0, 0
    try:
        info = probe(data)
    except ImageHeaderError as e:
        add(Rule.IMAGE_UNREADABLE, str(e))
        return 0, 0
    suffix = os.path.splitext(name)[1].lower()
    if SUFFIX_FORMATS.get(suffix) is not info.format:
        add(Rule.IMAGE_EXT_MISMATCH, f"named {suffix} but the bytes are {info.format}")
    if info.pixels > policy.max_pixels:
        add(Rule.IMAGE_TOO_LARGE, f"{info.width}x{info.height} = {info.pixels:,} pixels, above max_pixels {policy.max_pixels:,}")
        return info.width, info.height  # never decode a possible bomb
    if not info.complete:
        add(Rule.IMAGE_TRUNCATED, f"{info.format} data ends before its end marker")
    elif policy.decode:
        _decode(data, add)
    if info.orientation != 1:
        add(
            Rule.IMAGE_EXIF_ROTATED,
            f"EXIF orientation {info.orientation}: viewers and OpenCV rotate the pixels, the stored size is {info.width}x{info.height}",
        )
    if min(info.width, info.height) < policy.min_side:
        add(Rule.IMAGE_TOO_SMALL, f"{info.width}x{info.height}, shorter side below min_side {policy.min_side}")
    return info.width, info.height


def _decode(data: bytes, add: _Add) -> None:
    from PIL import Image  # only when policy.decode asks for a full decode

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception as e:  # Pillow's decoders raise many types on corrupt data (OSError, SyntaxError, zlib.error, ...)
        rule = Rule.IMAGE_TRUNCATED if "truncated" in str(e) else Rule.IMAGE_UNREADABLE
        add(rule, f"decoding failed: {e}")


def _check_label(text: bytes, label: str, classes: int, add: _Add) -> int:
    """Label rules, one finding per bad line; returns the number of good boxes."""
    good = 0
    for lineno, line in enumerate(text.decode("utf-8", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(v) for v in fields]
        except ValueError:
            values = []
        if len(fields) != 5 or not values:
            add(Rule.LABEL_UNPARSEABLE, f"expected 'class cx cy w h' (5 numbers), got {line.strip()[:80]!r}", label, lineno)
            continue
        if not all(math.isfinite(v) for v in values):
            add(Rule.LABEL_NAN, f"non-finite value in {line.strip()!r}", label, lineno)
            continue
        cls, cx, cy, w, h = values
        if not cls.is_integer() or not 0 <= cls < classes:
            add(Rule.LABEL_BAD_CLASS, f"class {fields[0]} is not an id in 0..{classes - 1}", label, lineno)
        elif w <= 0 or h <= 0:
            add(Rule.LABEL_NONPOSITIVE_SIZE, f"width {w} / height {h} must be > 0", label, lineno)
        elif (
            not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h))
            or min(cx - w / 2, cy - h / 2) < -EDGE_TOLERANCE
            or max(cx + w / 2, cy + h / 2) > 1 + EDGE_TOLERANCE
        ):
            add(Rule.LABEL_OUT_OF_RANGE, f"box {cx} {cy} {w} {h} reaches outside the image [0, 1]", label, lineno)
        else:
            good += 1
    return good


# ---- dataset-wide rules ----


def _duplicates(records: list[ImageRecord], policy: ValidationPolicy) -> list[Finding]:
    first: dict[str, str] = {}
    findings = []
    for r in sorted(records, key=lambda r: r.image):
        original = first.setdefault(r.sha256, r.image)
        if original != r.image:
            rule = Rule.IMAGE_DUPLICATE
            findings.append(
                Finding(rule=rule, file=r.image, severity=policy.severity(rule), message=f"same bytes as {original}", hint=HINTS[rule])
            )
    return findings


def _orphan_labels(root: Path, images: list[str], policy: ValidationPolicy) -> list[Finding]:
    if not (root / LABELS).is_dir():
        return []
    stems = {os.path.splitext(n)[0] for n in images}
    rule = Rule.LABEL_ORPHAN
    return [
        Finding(rule=rule, file=f"{LABELS}/{n}", severity=policy.severity(rule), message="no image has this label's stem", hint=HINTS[rule])
        for n in sorted(os.listdir(root / LABELS))
        if n.endswith(".txt") and n[:-4] not in stems
    ]


def _with_lineage(record: ImageRecord, known: ImageRecord | None) -> ImageRecord:
    """Keep the group and source the manifest knows; without one, derive the group from the name."""
    if known:
        return replace(record, group=known.group, source=known.source)
    return replace(record, group=group_of(image_stem(record.image)))
