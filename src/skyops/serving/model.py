"""The model folder the server loads: metadata.json read, checked and typed (the package layout of the export step).

A model folder (what SageMaker extracts into /opt/ml/model) holds `metadata.json` and one file per
backend it names (`model.onnx`, optionally `model-int8.onnx`, `openvino/`, `best.pt`). The server is
given one of:

    a model folder            holds metadata.json
    a package folder          the export step's output: model/ (the model folder) and model.tar.gz
    a model.tar.gz            or a folder holding only that: unpacked into a private temp folder first (removed at exit)

Every path in metadata.json is relative to the model folder and must stay inside it; the file of the
backend the server uses is checked against its sha256 before it is loaded (a torn copy or a swapped
file is one clear error, never a model that answers wrongly). Every problem is reported at once.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import math
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from skyops.errors import ConfigError, problems_error
from skyops.statefile import json_type

METADATA = "metadata.json"
MODEL_SUBDIR = "model"  # the package folder's unpacked model folder
MODEL_ARCHIVE = "model.tar.gz"
SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")  # where SageMaker extracts ModelDataUrl on an endpoint
FORMAT = 1


class BackendName(StrEnum):
    """Inference backends; each reads the artifact of the same name in metadata.json."""

    ONNX = "onnx"  # ONNX Runtime, fp32 (the default)
    INT8 = "int8"  # ONNX Runtime, the statically quantised model
    OPENVINO = "openvino"  # OpenVINO runtime on its IR
    TORCH = "torch"  # the Ultralytics PyTorch weights


@dataclass(frozen=True)
class Thresholds:
    conf: float
    iou: float
    max_det: int


@dataclass(frozen=True)
class Artifact:
    """One backend's file: `path` is absolute, inside the model folder."""

    path: Path
    sha256: str
    details: dict[str, Any] = field(default_factory=dict, repr=False)  # opset, input name, shape, dtype, ...


@dataclass(frozen=True)
class ModelInfo:
    """metadata.json, typed. `folder` is the model folder it was read from."""

    folder: Path
    names: tuple[str, ...]  # class id -> name
    imgsz: int  # square letterbox input, pixels
    thresholds: Thresholds
    model_name: str
    version: int | None
    weights_sha256: str
    artifacts: dict[BackendName, Artifact]

    @property
    def label(self) -> str:
        """How logs and responses name the model: 'drone-detector v3' (or 'drone-detector (unregistered)')."""
        return f"{self.model_name} v{self.version}" if self.version is not None else f"{self.model_name} (unregistered)"

    def artifact(self, backend: BackendName) -> Artifact:
        """The artifact `backend` loads, its sha256 checked.

        Raises:
            ConfigError: the package has no such artifact, or its file is missing or differs from its sha256.
        """
        found = self.artifacts.get(backend)
        if found is None:
            have = ", ".join(b.value for b in self.artifacts) or "none"
            raise ConfigError(
                f"the model {self.folder} has no {backend.value} artifact (it has: {have})",
                hint=f"serve it with --backend {next(iter(self.artifacts)).value if self.artifacts else 'onnx'}, or export the model again",
            )
        if not found.path.exists():
            raise ConfigError(f"{found.path} is named in {self.folder / METADATA} but does not exist", hint="export the model again")
        digest = _sha256(found.path)
        if digest != found.sha256:
            raise ConfigError(
                f"{found.path} does not match its sha256 in {self.folder / METADATA} ({digest[:12]}... against {found.sha256[:12]}...)",
                hint="the file was changed or cut short after export: export the model again",
            )
        return found


def locate_model_folder(path: Path) -> Path:
    """The model folder `path` names (see the module docstring); an archive is unpacked into a private temp folder.

    Raises:
        ConfigError: `path` does not exist or holds no model.
    """
    path = Path(path)
    if path.is_file() and path.name.endswith(".tar.gz"):
        return _unpack(path)
    if not path.is_dir():
        raise ConfigError(
            f"model {path} does not exist", hint="give a model folder (with metadata.json), a package folder or a model.tar.gz"
        )
    if (path / METADATA).is_file():
        return path
    if (path / MODEL_SUBDIR / METADATA).is_file():
        return path / MODEL_SUBDIR
    if (path / MODEL_ARCHIVE).is_file():
        return _unpack(path / MODEL_ARCHIVE)
    raise ConfigError(
        f"{path} holds no model: no {METADATA}, {MODEL_SUBDIR}/{METADATA} or {MODEL_ARCHIVE}",
        hint="point at the export step's package folder or its model/ folder",
    )


def read_model_info(folder: Path) -> ModelInfo:
    """Read and check `folder/metadata.json`.

    Raises:
        ConfigError: unreadable, not JSON, or wrong in any field (all problems listed at once).
    """
    folder = Path(folder).resolve()
    path = folder / METADATA
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}", hint="export the model again") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} is not JSON ({e})", hint="export the model again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds no JSON object", hint="export the model again")
    problems: list[str] = []
    if data.get("format") != FORMAT:
        problems.append(f"'format' is {_shown(data.get('format'))}, expected {FORMAT}")
    names = data.get("names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        problems.append("'names' is not a non-empty list of class names")
        names = []
    imgsz = data.get("imgsz")
    if not (isinstance(imgsz, int) and not isinstance(imgsz, bool) and 32 <= imgsz <= 4096 and imgsz % 32 == 0):
        problems.append(f"'imgsz' is {_shown(imgsz)}, expected a multiple of 32 in 32..4096")
        imgsz = 0
    thresholds = _thresholds(data.get("thresholds"), problems)
    source: dict[str, Any] = data["source"] if isinstance(data.get("source"), dict) else {}
    version = source.get("version")
    if version is not None and not (isinstance(version, int) and not isinstance(version, bool) and version > 0):
        problems.append(f"'source.version' is {_shown(version)}, expected null or a positive integer")
        version = None
    artifacts = _artifacts(folder, data.get("artifacts"), problems)
    if problems:
        raise problems_error(ConfigError, str(path), problems, hint="export the model again (skyops run), or fix the file")
    return ModelInfo(
        folder=folder,
        names=tuple(names),
        imgsz=imgsz,
        thresholds=thresholds,
        model_name=str(source.get("model") or "model"),
        version=version,
        weights_sha256=str(source.get("weights_sha256") or ""),
        artifacts=artifacts,
    )


def _thresholds(value: Any, problems: list[str]) -> Thresholds:
    value = value if isinstance(value, dict) else {}
    conf, iou, max_det = value.get("conf"), value.get("iou"), value.get("max_det")
    for key, number in (("conf", conf), ("iou", iou)):
        if not (isinstance(number, int | float) and not isinstance(number, bool) and math.isfinite(number) and 0 <= number <= 1):
            problems.append(f"'thresholds.{key}' is {_shown(number)}, expected a number in [0, 1]")
    if not (isinstance(max_det, int) and not isinstance(max_det, bool) and max_det >= 1):
        problems.append(f"'thresholds.max_det' is {_shown(max_det)}, expected a positive integer")
    if any(p.startswith("'thresholds.") for p in problems):
        return Thresholds(0.25, 0.45, 300)  # never used: the caller raises
    return Thresholds(float(conf), float(iou), int(max_det))


def _artifacts(folder: Path, value: Any, problems: list[str]) -> dict[BackendName, Artifact]:
    if not isinstance(value, dict) or not value:
        problems.append("'artifacts' is not an object naming at least one backend file")
        return {}
    found: dict[BackendName, Artifact] = {}
    for key, entry in value.items():
        if key not in tuple(BackendName):
            continue  # a backend this server does not know (a newer export): not an error, never used
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
            problems.append(f"'artifacts.{key}' needs 'file' and 'sha256' strings")
            continue
        path = (folder / entry["file"]).resolve()
        if not path.is_relative_to(folder):
            problems.append(f"'artifacts.{key}.file' leads outside the model folder")
            continue
        details = {k: v for k, v in entry.items() if k not in ("file", "sha256")}
        found[BackendName(key)] = Artifact(path=path, sha256=entry["sha256"].lower(), details=details)
    return found


def _shown(value: Any) -> str:
    """A value for a message: numbers as they are, anything else by its JSON type (file contents are not echoed)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return json_type(value)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpack(archive: Path) -> Path:
    """Unpack a model.tar.gz into a private temp folder (tarfile's 'data' filter: no absolute paths, no '..', no devices).

    The folder lives as long as the process (removed at exit; a SIGKILL leaves it to the system's temp cleaning).
    """
    target = Path(tempfile.mkdtemp(prefix="skyops-serve-model-"))
    atexit.register(shutil.rmtree, target, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (OSError, tarfile.TarError) as e:
        raise ConfigError(f"cannot unpack {archive}: {e}", hint="export the model again; the archive is damaged") from None
    if not (target / METADATA).is_file():
        raise ConfigError(
            f"{archive} has no {METADATA} at its root", hint="a model package's archive holds the model folder's files at its root"
        )
    return target
