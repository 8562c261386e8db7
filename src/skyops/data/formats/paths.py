"""Paths that stay inside their root: a dataset never reads a file outside the folder it was given.

A source is read through names it supplies itself (COCO `file_name`s, Ground Truth `source-ref`s)
or finds on disk (image folders that may hold symlinks). Both can lead elsewhere: `../x.jpg`, an
absolute path, a symlink to a file in someone's home folder. Every such path is resolved (symlinks
followed) and refused with `path.escapes_root` when it leaves its root, before any byte of it is
read, so no content of a foreign file can reach an output, a report or an error. Symlinks to
files that stay inside the root are followed as usual; symlinked folders inside the root are not
walked (they would list files twice, or loop), while one that leads outside is refused.

The checks are cheap where they run per image: a folder listing says which entries are symlinks
for free, and a named file costs one `lstat` plus one cached `realpath` per folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from skyops.data.formats.findings import Finding, Rule


class Root:
    """A folder that paths must stay inside (compared by real path, so the root may itself be a link)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = os.path.abspath(folder)
        self.real = os.path.realpath(folder)
        self._prefix = self.real.rstrip(os.sep) + os.sep
        self._folders: dict[str, bool] = {}  # folder -> inside, for `inside`

    def holds(self, real: str) -> bool:
        """Whether the real (symlink-free) path `real` is the root or below it."""
        return real == self.real or real.startswith(self._prefix)

    def escapes(self, path: Path | str) -> bool:
        """Whether `path` (absolute, or relative to the root) leads outside the root once symlinks are followed."""
        return not self.holds(os.path.realpath(os.path.join(self.folder, path)))

    def inside(self, name: str) -> str | None:
        """The absolute path of `name` (relative to the root, as an annotation writes it), or None if it leaves the root.

        A name that does not exist is returned as it is (the caller's existence check reports it).
        """
        if "\x00" in name:
            return None  # no file system takes it; treated as leading nowhere inside
        path = os.path.join(self.folder, name)
        if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
            return path if not self.escapes(path) else None  # rare: resolve the whole path
        folder = os.path.dirname(path)
        inside = self._folders.get(folder)
        if inside is None:
            inside = self._folders[folder] = self.holds(os.path.realpath(folder))
        if not inside:
            return None
        try:
            if not stat.S_ISLNK(os.lstat(path).st_mode):
                return path
        except OSError:
            return path
        return path if self.holds(os.path.realpath(path)) else None


def _wanted(name: str, suffixes: tuple[str, ...] | None) -> bool:
    if name.startswith("."):
        return False
    if suffixes is None:
        return True
    head, dot, tail = name.rpartition(".")
    return bool(dot and head) and f".{tail.lower()}" in suffixes


def _kind(entry: os.DirEntry[str]) -> str | None:
    """ "dir", "file" or None (anything else: a dangling link, a link loop, a device)."""
    try:
        return "dir" if entry.is_dir() else "file" if entry.is_file() else None
    except OSError:  # a link loop (ELOOP)
        return None


def scan_files(folder: Path | str, root: Root, suffixes: tuple[str, ...] | None = None) -> tuple[list[str], list[str]]:
    """Sorted names of the files directly in `folder` (suffixes compared lower-case), and of the
    symlinks among them whose target leaves `root` (left out of the first list).

    The caller checks `folder` itself with `root.escapes`. Hidden files are ignored, as are
    folders, dangling symlinks and link loops inside the root (there is no file to read).
    """
    names: list[str] = []
    escaping: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not _wanted(entry.name, suffixes):
                continue
            if entry.is_symlink() and not root.holds(os.path.realpath(entry.path)):
                escaping.append(entry.name)
            elif _kind(entry) == "file":
                names.append(entry.name)
    return sorted(names), sorted(escaping)


def walk_files(top: Path | str, root: Root, suffixes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Files under `top`, recursively: sorted paths relative to `top` (with '/'), and the relative
    paths of symlinks (to such files, or to folders) whose target leaves `root`.

    Symlinked folders inside the root are not walked (as `os.walk` does not): they would list the
    same files twice, or loop.
    """
    found: list[str] = []
    escaping: list[str] = []

    def walk(folder: str, prefix: str) -> None:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = prefix + entry.name
            kind = _kind(entry)
            if kind != "dir" and not _wanted(entry.name, suffixes):
                continue
            if entry.is_symlink():
                if not root.holds(os.path.realpath(entry.path)):
                    escaping.append(rel)
                    continue
                if kind == "dir":
                    continue
            if kind == "dir":
                walk(entry.path, f"{rel}/")
            elif kind == "file":
                found.append(rel)

    walk(str(top), "")
    return found, escaping


def escaping_folders(root: Root, folders: list[Path], source: Path) -> list[Finding]:
    """`path.escapes_root` for each of `folders` that is (or lies in) a link to outside the source."""
    return [
        Finding(
            file=f"{folder.relative_to(source).as_posix()}/",
            rule=Rule.PATH_ESCAPES_ROOT,
            message="a link to a folder outside the source; copy the folder into the source or point at the real one",
        )
        for folder in folders
        if root.escapes(folder)
    ]


def escaping_files(names: list[str], prefix: str, root: str = "source") -> list[Finding]:
    """`path.escapes_root` for each of `names` (found by `scan_files` / `walk_files` under `prefix`)."""
    return [
        Finding(
            file=f"{prefix}{name}",
            rule=Rule.PATH_ESCAPES_ROOT,
            message=f"a link to outside the {root}; copy what it points at into the {root}, or remove the link",
        )
        for name in names
    ]
