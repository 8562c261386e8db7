"""Convert a detection dataset (VisDrone, COCO, VOC, Ground Truth, YOLO) into the canonical layout.

`convert` never modifies the source: images are hard-linked (copied across file systems), labels
are written fresh, and the whole output is built in a temp folder beside the target, then renamed
into place. Per image it reads the bytes once, hashes them and takes the size from the header (no
pixel decode), then maps classes by name, clips boxes to the image and drops those left with no
area. Every count is in the `ConvertReport` and, minus timings, in the manifest's `stats`.

What fails the conversion (all problems are listed at once) and what does not:
    fails    undeclared or mis-declared format, an annotation without its image (or a VisDrone
             image without its annotation), rows that cannot be read, unknown classes, a size
             in the annotation that differs from the image's header
    counted  boxes dropped (ignored regions, crowd, difficult, zero area), boxes clipped, images
             whose header cannot be read (skipped and listed), images without annotations (kept)
Content defects that do not stop a conversion (a truncated file, EXIF rotation) are the
validator's business: see validate.py.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from skyops.data.formats import READERS, Format, SourceOptions
from skyops.data.formats.base import Item, describe_folder, stem_of
from skyops.data.formats.files import choose_workers, chunked, occupied, parallel_map
from skyops.data.formats.writer import Chunk, ChunkResult, convert_chunk
from skyops.data.layout import IMAGES, LABELS, Manifest, atomic_output_dir
from skyops.errors import DataValidationError, problems_error

Names = Sequence[str] | Mapping[str, int]
_MAX_LISTED = 20  # problems listed in one error; the rest are counted


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
    dropped: dict[str, int]  # boxes dropped, per reason
    clipped: int  # boxes clipped to the image (and kept)
    skipped: list[tuple[str, str]]  # images left out: (source path, reason)
    unlabelled: int  # images kept with no annotation at all
    fingerprint: str
    seconds: float = 0.0
    workers: int = 1

    def stats(self) -> dict[str, Any]:
        keys = ("format", "images", "boxes", "per_class", "dropped", "clipped", "skipped", "unlabelled")
        return {k: v for k, v in asdict(self).items() if k in keys}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        rate = self.images / self.seconds if self.seconds else 0.0
        empty = sum(1 for c in self.per_class.values() if not c)
        per_class = ", ".join(f"{n} {c}" for n, c in self.per_class.items() if c) + (f"; {empty} classes with none" if empty else "")
        dropped = ", ".join(f"{r} {c}" for r, c in sorted(self.dropped.items())) or "none"
        lines = [
            f"converted {self.images} {self.format} images from {self.source} to {self.target} in {self.seconds:.2f} s ({rate:.0f} images/s, {self.workers} workers)",
            f"  boxes kept: {self.boxes} ({per_class})",
            f"  boxes dropped: {dropped}",
            f"  boxes clipped to the image: {self.clipped}",
            f"  images skipped: {len(self.skipped)}; images with no annotation: {self.unlabelled}",
            *(f"    skipped {path}: {reason}" for path, reason in self.skipped[:_MAX_LISTED]),
            f"  fingerprint: {self.fingerprint}",
        ]
        return "\n".join(lines)


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
            hint="point at the dataset's root folder (or its COCO JSON / Ground Truth manifest)",
        )
    listed = "\n".join(f"  - {fmt}: {why}" for fmt, why in found.items())
    raise DataValidationError(f"{path} matches several formats:\n{listed}", hint="declare the format explicitly, e.g. fmt='visdrone'")


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
) -> ConvertReport:
    """Convert the dataset at `source` into the canonical layout at `target`.

    Args:
        source: dataset folder (or COCO JSON / Ground Truth manifest file).
        target: folder to create; its parent must be writable (the output is built beside it).
        fmt: the source format; None detects it (see `detect_format`). A declared format is
            checked against the data, never trusted blindly.
        names: target classes. A list of names (each source class maps to the entry with its
            name), or a mapping source name -> target id (ids 0..K-1; several names may share an id,
            and the first one names it). Every source class must be covered. None keeps the source
            classes in source order. For a YOLO source without data.yaml, the list names its ids.
        keep_ignored: keep the boxes the source marks as ignored (see the format modules).
        workers: processes to use; 1 = in this process; None = one per CPU for large sources only
            (see `formats.files.choose_workers`).
        overwrite: replace an existing `target` (the old one is removed only after the new one is complete).
        images_dir: where COCO file names / Ground Truth source-refs are resolved.
        s3_prefix: `s3://bucket/prefix/` stripped from Ground Truth source-refs.

    Raises:
        DataValidationError: every problem found in the source, at once; or a bad target.
    """
    started = time.perf_counter()
    source, target = Path(source).resolve(), Path(target).resolve()
    _check_paths(source, target, overwrite, Path(images_dir).resolve() if images_dir else None)
    fmt = _declared(source, fmt)
    yolo_names = tuple(names) if fmt is Format.YOLO and names is not None and not isinstance(names, Mapping) else None
    options = SourceOptions(
        keep_ignored=keep_ignored, images_dir=Path(images_dir) if images_dir else None, s3_prefix=s3_prefix, yolo_names=yolo_names
    )
    plan = READERS[fmt].plan(source, options)
    if plan.problems:
        raise _problems(
            f"{fmt} source {source}",
            plan.problems,
            "fix these in the source (skyops never modifies it) or in the convert arguments named above",
        )
    target_names, lookup = class_mapping(plan.names, names)
    stems = Counter(stem_of(item.name).lower() for item in plan.items)
    if any(n > 1 for n in stems.values()):
        raise _problems(
            f"{fmt} source {source}",
            [f"several images would be named {s}.*" for s, n in stems.items() if n > 1],
            "rename the clashing files in a copy of the source",
        )

    workers = choose_workers(len(plan.items), workers)
    chunks = chunked(plan.items, workers)
    workers = max(1, min(workers, len(chunks)))
    with atomic_output_dir(target, overwrite=overwrite) as staging:
        (staging / IMAGES).mkdir()
        (staging / LABELS).mkdir()
        result = _run(fmt, options, chunks, staging, lookup, workers)
        if result.problems:
            raise _problems(f"{fmt} source {source}", result.problems, "fix the source (it is never modified by skyops)")
        records = result.image_records()
        dropped = plan.dropped + result.dropped
        report = ConvertReport(
            source=str(source),
            target=str(target),
            format=fmt,
            names=target_names,
            images=len(records),
            boxes=sum(r.boxes for r in records),
            per_class={name: int(result.per_class[i]) for i, name in enumerate(target_names)},
            dropped={reason: dropped[reason] for reason in sorted(dropped)},
            clipped=result.clipped,
            skipped=sorted(plan.skipped + result.skipped),
            unlabelled=plan.unlabelled,
            fingerprint="",  # set below, from the manifest built with these stats
            workers=workers,
        )
        manifest = Manifest(names=target_names, images=records, source_format=fmt.value, stats=report.stats())
        manifest.write(staging)
    return replace(report, fingerprint=manifest.fingerprint, seconds=time.perf_counter() - started)


def class_mapping(source_names: Sequence[str], names: Names | None) -> tuple[list[str], npt.NDArray[np.int64]]:
    """Target class names, and the target id of each source class index.

    Raises:
        DataValidationError: `names` leaves a source class out, names a class the source lacks
            (mapping form), or is malformed.
    """
    if names is None:
        return list(source_names), np.arange(len(source_names), dtype=np.int64)
    if isinstance(names, str):
        raise DataValidationError(f"names={names!r} is a string", hint="pass a list of class names, or a mapping source name -> target id")
    problems: list[str] = []
    if isinstance(names, Mapping):
        if not all(isinstance(i, int) for i in names.values()):
            raise DataValidationError(
                f"names mapping values must be integer target ids, got {names!r}", hint="e.g. names={'car': 0, 'van': 0, 'person': 1}"
            )
        ids = sorted(set(names.values()))
        if ids != list(range(len(ids))):
            problems.append(f"target ids {ids} are not 0..{len(ids) - 1}")
        problems += [f"{n!r} is not a source class" for n in names if n not in source_names]
        target = {i: n for n, i in reversed(list(names.items()))}  # the first name given for an id names it
        target_names = [target.get(i, str(i)) for i in range(len(ids))]
        index = dict(names)
    else:
        target_names = list(names)
        problems += [f"{n!r} is listed {c} times" for n, c in Counter(target_names).items() if c > 1]
        index = {n: i for i, n in enumerate(target_names)}
    missing = [n for n in source_names if n not in index]
    if missing:
        problems.append(f"no target class for source class(es) {', '.join(map(repr, missing))}")
    if problems:
        raise _problems(
            f"the names override (source classes: {', '.join(source_names)})",
            problems,
            "give every source class a target: names=[...] (target names) or names={'source name': target_id, ...}",
        )
    return target_names, np.array([index[n] for n in source_names], dtype=np.int64)


def _run(
    fmt: Format, options: SourceOptions, parts: list[list[Item]], staging: Path, lookup: npt.NDArray[np.int64], workers: int
) -> ChunkResult:
    classes = int(lookup.max()) + 1 if lookup.size else 0
    total = ChunkResult(np.zeros(classes, dtype=np.int64))
    chunks = [Chunk(fmt, options, [tuple(item) for item in part], staging, lookup, classes) for part in parts]
    for result in parallel_map(convert_chunk, chunks, workers):
        total.merge(result)
    return total


# ---- checks and publishing ----


def _evidence(path: Path) -> dict[Format, str]:
    found = {fmt: reader.evidence(path) for fmt, reader in READERS.items()}
    return {fmt: why for fmt, why in found.items() if why}


def _declared(source: Path, fmt: Format | str | None) -> Format:
    """The format to read `source` as: detected, or declared and confirmed by the data."""
    if fmt is None:
        return detect_format(source)
    try:
        declared = Format(fmt)
    except ValueError:
        raise DataValidationError(f"unknown format {fmt!r}", hint=f"use one of: {', '.join(Format)}") from None
    if READERS[declared].evidence(source) is not None:
        return declared
    others = _evidence(source)
    looks = "".join(f"; it looks like {other}: {why}" for other, why in others.items())
    hint = f"declare fmt='{next(iter(others))}'" if len(others) == 1 else "check the path points at the dataset root"
    raise DataValidationError(
        f"{source} is not a {declared} dataset: expected {READERS[declared].expected}; found {describe_folder(source)}{looks}",
        hint=hint,
    )


def _check_paths(source: Path, target: Path, overwrite: bool, images_dir: Path | None) -> None:
    if not source.exists():
        raise DataValidationError(f"source {source} does not exist", hint="check the path")
    if occupied(target) and not overwrite:
        raise DataValidationError(
            f"target {target} already exists and is not an empty folder", hint="pass overwrite=True or choose a new target"
        )
    roots = [source if source.is_dir() else source.parent, *([images_dir] if images_dir else [])]
    for root in roots:
        if target.is_relative_to(root) or root.is_relative_to(target):
            raise DataValidationError(
                f"target {target} overlaps the source folder {root}",
                hint="write the converted dataset outside the source: sources are never modified",
            )


def _problems(subject: str, problems: list[str], hint: str) -> DataValidationError:
    """One error listing every problem (the first 20 of a long list, then a count), sorted."""
    unique = sorted(set(problems))
    if len(unique) <= _MAX_LISTED:
        error = problems_error(DataValidationError, subject, unique, hint=hint)
        assert isinstance(error, DataValidationError)
        return error
    body = "\n".join(f"  - {p}" for p in unique[:_MAX_LISTED])
    error = DataValidationError(f"{len(unique)} problems in {subject}:\n{body}\n  … and {len(unique) - _MAX_LISTED} more", hint=hint)
    error.problems = unique
    return error
