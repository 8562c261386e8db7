"""Content hashes of files and folders, with a stat-keyed memo for large external inputs."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from skyops.pipeline import faults

_CHUNK = 1 << 20  # bytes read at a time


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class TreeDigest:
    """sha256 of a folder (or file): its relative paths and the sha256 of each file."""

    digest: str
    files: dict[str, str]  # relative posix path -> sha256

    @property
    def count(self) -> int:
        return len(self.files)


def walk_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(Path(d) / f for d, _, names in os.walk(root) for f in names)


def hash_tree(root: Path, memo: StatMemo | None = None) -> TreeDigest:
    """Hash every file under `root` (or `root` itself if it is a file), in a stable order."""
    files = {}
    for path in walk_files(root):
        rel = path.name if path == root else path.relative_to(root).as_posix()
        files[rel] = memo.hash(path) if memo else hash_file(path)
    combined = hashlib.sha256("".join(f"{rel}\0{sha}\n" for rel, sha in sorted(files.items())).encode())
    return TreeDigest(combined.hexdigest(), files)


class StatMemo:
    """Remembers file hashes by (path, size, mtime, inode), so unchanged large inputs are not re-read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._memo: dict[str, str] = {}
        self._dirty = False
        if path.is_file():
            try:
                self._memo = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                self._memo = {}  # a damaged memo only costs re-hashing

    def hash(self, path: Path) -> str:
        st = path.stat()
        key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
        sha = self._memo.get(key)
        if sha is None:
            sha = self._memo[key] = hash_file(path)
            self._dirty = True
        return sha

    def save(self) -> None:
        if self._dirty:
            write_json_atomic(self.path, self._memo)
            self._dirty = False


def write_json_atomic(path: Path, data: object, *, sort_keys: bool = True) -> None:
    """Write JSON to a temp file beside `path`, then rename it over `path` (never half-written).

    `sort_keys=False` keeps the order of `data`'s dicts where that order means something. A failed
    write (a full disk) removes its temp file and leaves `path` as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    text = json.dumps(data, indent=2, sort_keys=sort_keys, default=str).encode()
    try:
        with open(tmp, "wb") as f:
            f.write(text[: len(text) // 2])
            faults.inject(path)
            f.write(text[len(text) // 2 :])
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):  # the original error says more than a failed clean-up
            tmp.unlink(missing_ok=True)
        raise
