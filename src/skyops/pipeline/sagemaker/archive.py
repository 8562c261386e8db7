"""The code archive every SageMaker job unpacks: a tar.gz of the step packages, the same bytes every time.

Entries are sorted, owned by uid/gid 0 without names, dated 1970 and mode 0644; the gzip header
carries no time or file name. Equal sources give an equal SHA-256, so the archive's S3 key
(`{prefix}/code/<sha256>/sourcedir.tar.gz`) changes exactly when the code does: re-uploading is
harmless and SageMaker's step cache misses exactly when the code changed.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from skyops.errors import ConfigError
from skyops.pipeline.sagemaker.container import ARCHIVE_NAME
from skyops.pipeline.sagemaker.settings import SageMakerSettings

_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class CodeArchive:
    """The archive's bytes and their SHA-256 (hex)."""

    data: bytes
    sha256: str

    def key(self, prefix: str) -> str:
        return f"{prefix}/code/{self.sha256}/{ARCHIVE_NAME}"


def build_code_archive(roots: Mapping[str, Path]) -> CodeArchive:
    """Archive each package folder under its top-level name (`skyops/...`), ready for PYTHONPATH.

    Args:
        roots: top-level package name -> its folder, e.g. {"skyops": Path(".../src/skyops")}.

    Raises:
        ConfigError: a root is not a folder.
    """
    missing = [f"{name}: {path}" for name, path in sorted(roots.items()) if not path.is_dir()]
    if missing:
        raise ConfigError(f"code archive: not a folder: {', '.join(missing)}", hint="pass each step package's folder")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcname, path in sorted(_files(roots)):
            data = path.read_bytes()
            info = tarfile.TarInfo(arcname)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    compressed = gzip.compress(buffer.getvalue(), compresslevel=6, mtime=0)
    return CodeArchive(compressed, hashlib.sha256(compressed).hexdigest())


def _files(roots: Mapping[str, Path]) -> Iterator[tuple[str, Path]]:
    for name, root in roots.items():
        for path in root.rglob("*"):
            relative = path.relative_to(root)
            if path.is_file() and not _SKIPPED_DIRS.intersection(relative.parts) and not path.name.endswith(_SKIPPED_SUFFIXES):
                yield f"{name}/{relative.as_posix()}", path


def with_code(settings: SageMakerSettings, archive: CodeArchive) -> SageMakerSettings:
    """The settings pointing at the archive's key under their prefix."""
    return dataclasses.replace(settings, code_key=archive.key(settings.prefix))
