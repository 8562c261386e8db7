"""Dataset versions the labelling loop grows: the previous dataset plus newly labelled images, each version fingerprinted.

    <state>/datasets/<name>/
      v0001/   images/ labels/ manifest.json (skyops.data.layout)   data.yaml (names)   version.json
      v0002/   ...

A version is a dataset in the canonical layout, so the pipeline ingests it as it ingests any YOLO
dataset (`skyops run -p dataset=<state>/datasets/<name>/v0002 -p format=yolo`); its fingerprint is
the manifest's (`Manifest.fingerprint`: class names and every image's and label's sha256), the same
the ingest step computes for it. `version.json` says where it came from:

    {"format": 1, "name": str, "version": int, "fingerprint": str, "images": int, "boxes": int,
     "added": int,                                  # labelled images this version added to its parent
     "parent": {"path": str, "fingerprint": str, "version": int | null},
     "labels": {"manifest": str, "sha256": str, "job": str}, "created": ISO 8601}

A version is built by skyops' converter (format yolo) from the parent's and the import's files, as
the ingest step will read it, so the version a run trains on is byte for byte the one recorded (same
fingerprint) and every label is checked once more. It is made whole or not at all (built beside the
store, renamed into place) under a lock, so two imports at once get two numbers. Images are hard
links to the parent's (copies across file systems): a version costs its labels and manifest, not its
images. Nothing is modified in place: a parent stays as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skyops.data.convert import convert
from skyops.data.layout import MANIFEST, ImageRecord, Manifest, link_or_copy
from skyops.errors import ConfigError, DataValidationError
from skyops.monitoring.events import format_time
from skyops.monitoring.jsonl import locked
from skyops.pipeline.hashing import write_json_atomic
from skyops.statefile import is_object, is_text, read_json_state, shape_problems

DATASETS_DIR = "datasets"
VERSION_FILE = "version.json"
DATA_YAML = "data.yaml"
DEFAULT_NAME = "drone-detection"
_VERSION_SHAPE = '{"format": 1, "version", "fingerprint", "images", "added", "parent"} (see skyops.monitoring.datasets)'


@dataclass(frozen=True)
class DatasetVersion:
    """A dataset the loop can train on: a version of the store, or (`number` None) a dataset given by path."""

    path: Path
    fingerprint: str
    images: int
    number: int | None = None
    added: int = 0  # labelled images added to the parent
    parent: str | None = None  # the parent's fingerprint

    @property
    def label(self) -> str:
        return f"v{self.number:04d}" if self.number is not None else str(self.path)

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "fingerprint": self.fingerprint, "images": self.images, "version": self.number}


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class DatasetStore:
    """The versions of one dataset under `<state>/datasets/<name>`."""

    def __init__(self, state_dir: Path, name: str = DEFAULT_NAME) -> None:
        if not name or "/" in name or name.startswith("."):
            raise ConfigError(f"dataset name {name!r} is not a plain folder name", hint="e.g. --dataset-name drone-detection")
        self.name = name
        self.root = Path(state_dir) / DATASETS_DIR / name

    def versions(self) -> list[DatasetVersion]:
        """Every version, oldest first (StateFileError for a damaged version.json)."""
        if not self.root.is_dir():
            return []
        found = []
        for folder in sorted(self.root.glob("v[0-9][0-9][0-9][0-9]")):
            if folder.is_dir():
                found.append(self._read(folder))
        return found

    def _read(self, folder: Path) -> DatasetVersion:
        def problems(value: Any) -> list[str]:
            checks = [("version", _is_count, "a version number"), ("fingerprint", is_text, "a fingerprint")]
            return shape_problems(
                value, [*checks, ("images", _is_count, "a count"), ("added", _is_count, "a count"), ("parent", is_object, "an object")]
            )

        data = read_json_state(
            folder / VERSION_FILE,
            what="dataset version record",
            expected=_VERSION_SHAPE,
            hint=f"a version is written whole or not at all; move {folder} aside if it was edited by hand",
            problems=problems,
        )
        return DatasetVersion(
            path=folder,
            fingerprint=data["fingerprint"],
            images=data["images"],
            number=data["version"],
            added=data["added"],
            parent=data["parent"].get("fingerprint"),
        )

    def latest(self) -> DatasetVersion | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def resolve(self, spec: str) -> DatasetVersion:
        """'latest', 'vN' or 'N' (a version of this store), or the path of a dataset in the canonical layout.

        Raises:
            ConfigError: no such version, or no store version yet for 'latest'.
            DataValidationError: a path that is not a dataset in the canonical layout (no manifest.json).
        """
        versions = self.versions()
        if spec == "latest":
            if not versions:
                raise ConfigError(
                    f"dataset {self.name!r} has no version yet under {self.root}",
                    hint="import labels first (skyops monitor label import ... --base DATASET), or give a dataset folder",
                )
            return versions[-1]
        text = spec[1:] if spec[:1] in ("v", "V") else spec
        if text.isdigit():
            number = int(text)
            for v in versions:
                if v.number == number:
                    return v
            have = ", ".join(v.label for v in versions) or "none"
            raise ConfigError(f"dataset {self.name!r} has no version {spec} (versions: {have})", hint="see `ls " + str(self.root) + "`")
        return external(Path(spec))

    def by_fingerprint(self, fingerprint: str) -> DatasetVersion | None:
        return next((v for v in self.versions() if v.fingerprint == fingerprint), None)

    def added_since(self, dataset: DatasetVersion, fingerprint: str | None) -> int:
        """Labelled images added along `dataset`'s parents back to (not including) the one with `fingerprint`;
        all the chain added when `fingerprint` is None or not in it."""
        total = 0
        seen: set[str] = set()
        current: DatasetVersion | None = dataset
        while current is not None and current.fingerprint != fingerprint and current.fingerprint not in seen:
            seen.add(current.fingerprint)
            total += current.added
            current = self.by_fingerprint(current.parent) if current.parent else None
        return total

    def grow(self, base: DatasetVersion, labelled: Path, *, labels_manifest: Path, job: str) -> DatasetVersion:
        """A new version: `base`'s images and labels plus those of `labelled` (a converted dataset, canonical layout).

        Raises:
            DataValidationError: an image of `labelled` has the name of a different image of `base`, or every one
                of them is already in `base` with the same label (these labels were imported before).
        """
        base_manifest = Manifest.read(base.path)
        new = Manifest.read(labelled)
        if new.names != base_manifest.names:
            raise DataValidationError(
                f"the labelled images' classes {new.names} differ from the base dataset's {base_manifest.names}",
                hint="convert the labels with the base dataset's class names",
            )
        kept = _new_records(base_manifest.images, new.images, base.label)
        with locked(self.root / ".lock"):
            latest = self.latest()
            number = (latest.number or 0) + 1 if latest else 1
            target = self.root / f"v{number:04d}"
            scratch = Path(tempfile.mkdtemp(prefix=f".v{number:04d}.", dir=self.root))
            try:
                merged = scratch / "merged"
                for folder, adding in ((base.path, base_manifest.images), (labelled, kept)):
                    for record in adding:
                        link_or_copy(folder / record.image, merged / record.image)
                        if record.label_sha256:
                            link_or_copy(folder / record.label, merged / record.label)
                (merged / DATA_YAML).write_text(_data_yaml(base_manifest.names))
                # Through the converter, as the ingest step will read it: the version is what a run trains on,
                # byte for byte (the same fingerprint), and every label is checked once more.
                report = convert(merged, scratch / "version", "yolo", names=list(base_manifest.names), workers=1)
                version = scratch / "version"
                (version / DATA_YAML).write_text(_data_yaml(base_manifest.names))
                about = {
                    "format": 1,
                    "name": self.name,
                    "version": number,
                    "fingerprint": report.fingerprint,
                    "images": report.images,
                    "boxes": report.boxes,
                    "added": len(kept),
                    "parent": {"path": str(base.path), "fingerprint": base.fingerprint, "version": base.number},
                    "labels": {"manifest": str(labels_manifest), "sha256": _sha256(labels_manifest), "job": job},
                    "created": format_time(datetime.now(UTC)),
                }
                write_json_atomic(version / VERSION_FILE, about, sort_keys=False)
                os.chmod(version, 0o755)
                os.rename(version, target)  # whole or not at all
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        return DatasetVersion(target, report.fingerprint, report.images, number, len(kept), base.fingerprint)


def external(path: Path) -> DatasetVersion:
    """A dataset given by its folder (canonical layout, e.g. an ingest step's output): DataValidationError if it is not one."""
    path = path.resolve()
    if not (path / MANIFEST).is_file():
        raise DataValidationError(
            f"{path} is not a dataset in skyops' canonical layout (no {MANIFEST})",
            hint="give a folder made by `skyops data convert` or the ingest step, or a version: latest, v1, ...",
        )
    manifest = Manifest.read(path)
    return DatasetVersion(path=path, fingerprint=manifest.fingerprint, images=len(manifest.images))


def _new_records(base: Sequence[ImageRecord], new: Sequence[ImageRecord], base_label: str) -> list[ImageRecord]:
    """The records of `new` to add to `base`: refused on a name clash, a repeat (same image, same label) left out."""
    by_name = {r.image.lower(): r for r in base}
    stems = {os.path.splitext(r.label)[0].lower() for r in base}
    clashes, repeats = [], []
    for record in new:
        old = by_name.get(record.image.lower())
        if old is not None and old.sha256 == record.sha256 and old.label_sha256 == record.label_sha256:
            repeats.append(record.image)
        elif old is not None or os.path.splitext(record.label)[0].lower() in stems:
            clashes.append(record.image)
    if clashes:
        shown = ", ".join(clashes[:5]) + (f" and {len(clashes) - 5} more" if len(clashes) > 5 else "")
        raise DataValidationError(
            f"{len(clashes)} labelled image(s) have the name of a different image of the base dataset {base_label}: {shown}",
            hint="export a new labelling job (its images are named by request id) instead of relabelling the base dataset's files",
        )
    if repeats and len(repeats) == len(new):
        raise DataValidationError(
            f"every labelled image is already in the base dataset {base_label} with the same label: these labels were imported before",
            hint="nothing to do; train on it with: skyops monitor retrain --dataset latest",
        )
    repeated = set(repeats)
    return [r for r in new if r.image not in repeated]


def _data_yaml(names: list[str]) -> str:
    import yaml

    return yaml.safe_dump({"names": dict(enumerate(names)), "nc": len(names)}, sort_keys=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
