"""The exported model package: the one contract between the export step, the registry and the server.

    package/                  the export step's output
      model.tar.gz            SageMaker's model data: what it extracts into /opt/ml/model
      model/                  the same files, unpacked (the local server and the register step read it)
        metadata.json         `PackageMetadata`: names, imgsz, thresholds, source, artifacts, sha256s, check
        model.onnx            fp32; input "images" (1, 3, imgsz, imgsz) float32, RGB in 0..1, letterboxed;
                              output the raw YOLO11 head (1, 4 + nc, anchors): xywh in input pixels, then
                              class scores. NMS is the server's, never in the graph.
        model-int8.onnx       optional (kept only when faster here with test mAP50 loss <= 0.01)
        openvino/model.xml    optional, same rule (with model.bin beside it)
        best.pt               the PyTorch weights (the torch backend)

Every path in metadata.json is relative to the model folder and never leaves it (checked on read).
`files` holds the sha256 of every file but metadata.json; each artifact repeats its main file's.

The archive is deterministic: entries sorted by path, mtime 0, uid/gid 0, no user or group names,
fixed modes, and a gzip header without a file name or time; the same files give the same bytes, so
its sha256 identifies the package (the registry records it).
"""

from __future__ import annotations

import gzip
import os
import re
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, TypeGuard

from skyops.errors import StateFileError
from skyops.pipeline.hashing import hash_file, write_json_atomic
from skyops.statefile import json_type, read_json_state

FORMAT = 1
METADATA = "metadata.json"
ARCHIVE = "model.tar.gz"
MODEL_DIR = "model"
# Backends a package may carry, in the order the registry lists them ("onnx,int8,torch").
ARTIFACTS = ("onnx", "int8", "openvino", "torch")
REQUIRED_ARTIFACTS = ("onnx",)  # the server's default backend
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HINT = "export the model again (the export step of `skyops run`); never edit a package by hand"


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    """The server's defaults; each request may override them."""

    conf: float = 0.25  # minimum class score of a detection
    iou: float = 0.45  # NMS: boxes of one class overlapping more than this are merged
    max_det: int = 300  # detections per image, best first

    def to_json(self) -> dict[str, Any]:
        return {"conf": self.conf, "iou": self.iou, "max_det": self.max_det}


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where the package came from: the registered model, its version (None until registered) and weights."""

    model: str
    version: int | None
    weights_sha256: str


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """One backend's file. `details` are the backend's own facts (opset, input name, shape, dtype, ...)."""

    file: str  # relative to the model folder, posix
    sha256: str = ""  # filled by `seal`
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, **self.details}


@dataclass(frozen=True, kw_only=True)
class PackageMetadata:
    """metadata.json, typed. Build one with empty sha256s and let `seal` fill them in."""

    names: list[str]  # class id -> name
    imgsz: int  # square letterbox input, pixels
    thresholds: Thresholds
    source: Source
    artifacts: Mapping[str, Artifact]  # backend name (ARTIFACTS) -> its file
    files: Mapping[str, str] = field(default_factory=dict)  # every file but metadata.json -> sha256
    check: Mapping[str, Any] = field(default_factory=dict)  # how the export was checked (export_check.py)
    format: int = FORMAT

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "names": list(self.names),
            "imgsz": self.imgsz,
            "thresholds": self.thresholds.to_json(),
            "source": {"model": self.source.model, "version": self.source.version, "weights_sha256": self.source.weights_sha256},
            "artifacts": {name: self.artifacts[name].to_json() for name in ARTIFACTS if name in self.artifacts},
            "files": dict(sorted(self.files.items())),
            "check": dict(self.check),
        }

    @property
    def artifact_names(self) -> tuple[str, ...]:
        """The backends present, in ARTIFACTS order."""
        return tuple(name for name in ARTIFACTS if name in self.artifacts)


def model_dir(package: Path) -> Path:
    """The unpacked model folder of an export step's package folder."""
    return Path(package) / MODEL_DIR


def seal(package: Path, metadata: PackageMetadata) -> PackageMetadata:
    """Finish a package whose model folder holds every artifact: hash, write metadata.json, then model.tar.gz.

    Returns:
        The metadata as written, with every sha256 filled in.

    Raises:
        StateFileError: an artifact's file is missing from the model folder, or its path leaves it.
    """
    root = model_dir(package)
    problems = [problem for artifact in metadata.artifacts.values() for problem in _path_problems(root, artifact.file)]
    if problems:
        raise StateFileError(f"model package {root}: " + "; ".join(problems), hint="write every artifact into the model folder first")
    files = {
        path.relative_to(root).as_posix(): hash_file(path) for path in sorted(root.rglob("*")) if path.is_file() and path.name != METADATA
    }
    artifacts = {name: replace(a, sha256=files[PurePosixPath(a.file).as_posix()]) for name, a in metadata.artifacts.items()}
    sealed = replace(metadata, artifacts=artifacts, files=files)
    write_json_atomic(root / METADATA, sealed.to_json(), sort_keys=False)
    write_archive(root, Path(package) / ARCHIVE)
    return sealed


def write_archive(root: Path, archive: Path) -> Path:
    """Write every entry under `root` into `archive` (tar.gz), deterministically, atomically (temp + rename).

    Members are relative to `root` (no "./" prefix), as SageMaker extracts them into /opt/ml/model.
    """
    entries = sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix())
    fd, tmp = tempfile.mkstemp(dir=archive.parent, prefix=f".{archive.name}.", suffix=".tmp")
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for path in entries:
                _add_entry(tar, root, path)
        os.chmod(tmp, 0o644)
        os.replace(tmp, archive)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return archive


def _add_entry(tar: tarfile.TarFile, root: Path, path: Path) -> None:
    """One folder or regular file, with nothing of the machine it was written on (owner, times)."""
    info = tarfile.TarInfo(path.relative_to(root).as_posix())
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if path.is_symlink() or not (path.is_dir() or path.is_file()):
        raise StateFileError(f"model package {root}: {info.name} is not a regular file or folder", hint=_HINT)
    if path.is_dir():
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    info.size, info.mode = path.stat().st_size, 0o644
    with path.open("rb") as f:
        tar.addfile(info, f)


def archive_members(archive: Path) -> list[str]:
    """The member names of a package archive, in archive order."""
    with tarfile.open(archive) as tar:
        return tar.getnames()


def read_metadata(root: Path, *, verify: bool = True) -> PackageMetadata:
    """The metadata.json of a model folder (a package's model/, or /opt/ml/model), its shape checked.

    Args:
        root: the model folder.
        verify: also check that every listed file exists inside `root` with the recorded sha256
            (reads each file once: about 0.1 s for a 20 MB package).

    Raises:
        StateFileError: the file is missing, not JSON, of the wrong shape, names a path outside `root`,
            or (verify) a file is missing or differs from its recorded sha256. Every problem at once.
    """
    path = Path(root) / METADATA
    doc = read_json_state(
        path,
        what="model package metadata",
        expected="the metadata.json the export step writes (format 1: names, imgsz, thresholds, source, artifacts, files)",
        hint=_HINT,
        problems=_shape_problems,
    )
    metadata = PackageMetadata(
        format=doc["format"],
        names=list(doc["names"]),
        imgsz=doc["imgsz"],
        thresholds=Thresholds(**doc["thresholds"]),
        source=Source(**doc["source"]),
        artifacts={
            name: Artifact(file=a["file"], sha256=a["sha256"], details={k: v for k, v in a.items() if k not in ("file", "sha256")})
            for name, a in doc["artifacts"].items()
        },
        files=dict(doc["files"]),
        check=dict(doc.get("check") or {}),
    )
    problems = [p for rel in metadata.files for p in _path_problems(root, rel, exists=verify)]
    problems += [
        f"artifact {name!r}: {a.file} is not in files (or has another sha256 there)"
        for name, a in metadata.artifacts.items()
        if metadata.files.get(a.file) != a.sha256
    ]
    if verify and not problems:
        problems += [
            f"{rel} has sha256 {actual[:12]}…, metadata.json records {expected[:12]}…"
            for rel, expected in metadata.files.items()
            if (actual := hash_file(Path(root) / rel)) != expected
        ]
    if problems:
        raise StateFileError(f"model package {root}: " + "; ".join(problems), hint=_HINT)
    return metadata


def archive_sha256(package: Path) -> str:
    """sha256 of a package's model.tar.gz: the package's identity (the registry records it)."""
    return hash_file(Path(package) / ARCHIVE)


def _path_problems(root: Path, rel: str, *, exists: bool = True) -> list[str]:
    """Why `rel` is not a file inside `root` (empty when it is)."""
    pure = PurePosixPath(rel)
    if not rel or pure.is_absolute() or ".." in pure.parts or "\\" in rel:
        return [f"path {rel!r} leaves the model folder (expected a relative path inside it)"]
    path = Path(root) / pure
    if not exists:
        return []
    if not path.is_file():
        return [f"{rel} is missing"]
    if not path.resolve().is_relative_to(Path(root).resolve()):
        return [f"{rel} resolves outside the model folder"]
    return []


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and bool(_SHA256.match(value))


def _shape_problems(doc: Any) -> list[str]:
    """What keeps `doc` from being a format-1 metadata document (every problem; values are never echoed)."""
    if not isinstance(doc, dict):
        return [f"it holds {json_type(doc)}, not an object"]
    problems = []
    missing = [key for key in ("format", "names", "imgsz", "thresholds", "source", "artifacts", "files") if key not in doc]
    problems += [f"'{key}' is missing" for key in missing]
    if "format" in doc and doc["format"] != FORMAT:
        problems.append(f"'format' is not {FORMAT} (a package of another skyops version)")
    names = doc.get("names")
    if "names" in doc and not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        problems.append("'names' is not a non-empty list of class names")
    imgsz = doc.get("imgsz")
    if "imgsz" in doc and not (_is_int(imgsz) and imgsz >= 32 and imgsz % 32 == 0):
        problems.append("'imgsz' is not a multiple of 32 pixels (at least 32)")
    thresholds = doc.get("thresholds")
    if "thresholds" in doc:
        if not (isinstance(thresholds, dict) and set(thresholds) == {"conf", "iou", "max_det"}):
            problems.append("'thresholds' is not an object of conf, iou and max_det")
        else:
            if not (_is_number(thresholds["conf"]) and 0 <= thresholds["conf"] <= 1):
                problems.append("'thresholds.conf' is not a number in [0, 1]")
            if not (_is_number(thresholds["iou"]) and 0 < thresholds["iou"] <= 1):
                problems.append("'thresholds.iou' is not a number in (0, 1]")
            if not (_is_int(thresholds["max_det"]) and thresholds["max_det"] >= 1):
                problems.append("'thresholds.max_det' is not a positive integer")
    source = doc.get("source")
    if "source" in doc:
        if not (isinstance(source, dict) and set(source) == {"model", "version", "weights_sha256"}):
            problems.append("'source' is not an object of model, version and weights_sha256")
        else:
            if not (isinstance(source["model"], str) and source["model"]):
                problems.append("'source.model' is not a model name")
            if not (source["version"] is None or (_is_int(source["version"]) and source["version"] >= 1)):
                problems.append("'source.version' is neither null nor a positive integer")
            if not _is_sha256(source["weights_sha256"]):
                problems.append("'source.weights_sha256' is not a sha256 hex digest")
    artifacts = doc.get("artifacts")
    if "artifacts" in doc:
        if not isinstance(artifacts, dict):
            problems.append(f"'artifacts' holds {json_type(artifacts)}, not an object")
        else:
            problems += [f"'artifacts' has no {name!r} entry" for name in REQUIRED_ARTIFACTS if name not in artifacts]
            for name, entry in artifacts.items():
                if name not in ARTIFACTS:
                    problems.append(f"'artifacts' names {name!r}; known: {', '.join(ARTIFACTS)}")
                elif not (isinstance(entry, dict) and isinstance(entry.get("file"), str) and _is_sha256(entry.get("sha256"))):
                    problems.append(f"'artifacts.{name}' is not an object with a file and its sha256")
    files = doc.get("files")
    if "files" in doc and not (isinstance(files, dict) and all(isinstance(k, str) and _is_sha256(v) for k, v in files.items())):
        problems.append("'files' is not an object of relative path -> sha256")
    if "check" in doc and not isinstance(doc["check"], dict):
        problems.append(f"'check' holds {json_type(doc['check'])}, not an object")
    return problems


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
