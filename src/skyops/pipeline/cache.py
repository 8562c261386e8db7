"""The content-addressed step cache and the one predicate that decides whether a step runs.

A cache key is built from named parts, so a miss can be explained part by part:
  code       sha256 of the step's package and every skyops module it imports (transitively)
  config     the step's resolved config
  inputs     content hash of each input artifact
  env        the contract's env vars as given to the step
  libraries  versions of the libraries the step declares (and Python's)
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from skyops.errors import SkyopsError, StepFailed
from skyops.pipeline.catalog import StepDefinition
from skyops.pipeline.hashing import write_json_atomic
from skyops.pipeline.lineage import pid_exists

ENTRY_FILE = "entry.json"
OUTPUTS_DIR = "outputs"


@dataclass(frozen=True)
class KeyParts:
    """The named parts of a cache key; `key` is their hash."""

    step: str
    code: str
    config: dict[str, Any]
    inputs: dict[str, str]
    env: dict[str, str] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)

    @cached_property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:32]

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # the parts are plain JSON already


def explain_miss(previous: KeyParts | None, current: KeyParts) -> list[str]:
    """Which parts differ from the last run of the same step, in words."""
    if previous is None:
        return ["first run of this step"]
    reasons = []
    if previous.code != current.code:
        reasons.append("step code changed")
    for part in ("config", "inputs", "env", "libraries"):
        old, new = getattr(previous, part), getattr(current, part)
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if changed:
            details = ", ".join(f"{k}: {_short(old.get(k))} -> {_short(new.get(k))}" for k in changed)
            reasons.append(f"{part} changed ({details})")
    return reasons or ["same key as last run, but its cache entry is gone"]


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text[:12] if len(text) == 64 or len(text) == 32 else text[:40]


@dataclass(frozen=True)
class CacheEntry:
    """A published step result: its key parts and the digest of each output folder."""

    path: Path
    parts: KeyParts
    outputs: dict[str, str]  # port -> tree digest

    def output_dir(self, port: str) -> Path:
        return self.path / OUTPUTS_DIR / port


def should_run(
    entry: CacheEntry | None,
    *,
    use_cache: bool,
    files: Mapping[str, tuple[str, ...]] | None = None,
    recheck: Callable[[], str | None] | None = None,
) -> tuple[bool, str]:
    """Decide whether a step runs. Rules, first match wins:

    1. Caching is off for this run (`--no-cache`): run.
    2. No published entry exists for the key: run.
    3. The entry lacks an output folder it lists: run (the entry was damaged by hand).
    4. An output lacks a file its port declares (`Port.files`): run (damaged, or made by older code).
    5. The step's recheck says the result is no longer true (e.g. the registry version it
       names was deleted): run. Asked only here, so a step without a hit never pays for it.
    6. Otherwise: reuse the entry.

    Args:
        files: output port -> files that must exist in it.
        recheck: returns None while the entry's result still holds, else why it does not.
    """
    if not use_cache:
        return True, "caching is off (--no-cache)"
    if entry is None:
        return True, "no cache entry for this key"
    missing = [p for p in entry.outputs if not entry.output_dir(p).is_dir()]
    if missing:
        return True, f"cache entry is missing outputs {', '.join(missing)}"
    for port, names in sorted((files or {}).items()):
        lacking = [name for name in names if not (entry.output_dir(port) / name).is_file()]
        if lacking:
            return True, f"cache entry's output {port!r} lacks {', '.join(lacking)}"
    reason = recheck() if recheck else None
    if reason:
        return True, f"cached result no longer holds: {reason}"
    return False, "cache hit"


def lacking_files(definition: StepDefinition, out_dirs: Mapping[str, Path]) -> list[str]:
    """Declared files (`Port.files`) missing from a step's output folders, one line per port."""
    lacking = []
    for port in definition.spec.outputs:
        missing = [name for name in port.files if not (out_dirs[port.name] / name).is_file()]
        if missing:
            lacking.append(f"output {port.name!r} lacks declared file{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return lacking


def bound_recheck(definition: StepDefinition, step: str, entry: CacheEntry, env: Mapping[str, str]) -> Callable[[], str | None]:
    """The step type's recheck, bound to a cache entry and the step's env, for `should_run`.

    An exception it raises becomes one clear `StepFailed`: a SkyopsError keeps its message,
    anything else is named by its type.
    """
    recheck = definition.recheck
    assert recheck is not None
    outputs = {port: entry.output_dir(port) for port in entry.outputs}

    def bound() -> str | None:
        try:
            return recheck(outputs, env)
        except SkyopsError as e:
            raise StepFailed(f"step {step!r}: recheck of its cached result failed: {e.message}", hint=e.hint) from None
        except Exception as e:
            raise StepFailed(f"step {step!r}: recheck of its cached result failed: {type(e).__name__}: {e}") from None

    return bound


class Cache:
    """Published entries live at `root/<key>`; work in progress lives in `staging/` until renamed."""

    def __init__(self, root: Path, staging: Path) -> None:
        self.root = root
        self.staging = staging

    def lookup(self, key: str) -> CacheEntry | None:
        path = self.root / key
        try:
            data = json.loads((path / ENTRY_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return CacheEntry(path, KeyParts(**data["parts"]), data["outputs"])

    def stage(self, key: str) -> Path:
        """A fresh private folder for a step's outputs; invisible to lookups until published."""
        self.staging.mkdir(parents=True, exist_ok=True)
        path = self.staging / f"{key}.{os.getpid()}.{os.urandom(4).hex()}"
        (path / OUTPUTS_DIR).mkdir(parents=True)
        return path

    def publish(self, staged: Path, parts: KeyParts, outputs: dict[str, str], *, replace: bool = False) -> CacheEntry:
        """Write the entry file, then rename the staged folder into place in one atomic step.

        An entry already published under the key is kept (another run got there first), unless
        `replace` (a forced re-run): then the old one is moved aside first and deleted after.
        """
        write_json_atomic(staged / ENTRY_FILE, {"parts": parts.as_dict(), "outputs": outputs})
        target = self.root / parts.key
        self.root.mkdir(parents=True, exist_ok=True)
        old = None
        if replace and target.exists():
            old = self.staging / f"{parts.key}.{os.getpid()}.{os.urandom(4).hex()}.old"
            os.rename(target, old)
        try:
            os.rename(staged, target)
        except OSError:
            if old is not None:
                os.rename(old, target)  # the forced re-run failed to publish: keep what was there
                raise
            if not (target / ENTRY_FILE).is_file():
                raise
            shutil.rmtree(staged)  # another run published the same key first
            return self.lookup(parts.key) or CacheEntry(target, parts, outputs)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return CacheEntry(target, parts, outputs)

    def clean_staging(self) -> int:
        """Remove staged folders whose process is gone (a crash or SIGKILL); return how many."""
        removed = 0
        if not self.staging.is_dir():
            return 0
        for path in self.staging.iterdir():
            pid = path.name.split(".")[1] if path.name.count(".") >= 2 else ""
            if pid.isdigit() and not pid_exists(int(pid)):
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed


# ---- code version -------------------------------------------------------------------------------
#
# Following a step's imports parses every module it reaches (tens of files, most of a second on a
# busy machine), so what was learnt is kept: in this process, and in the state folder for the next
# one (`CodeMemo`, made and saved by the engine around a run). Each remembered
# closure and hash is re-checked against its files' stat stamps before use: an edit (or any
# replacement of a file, even with its old mtime: ctime and inode change) re-reads what it touched,
# and a file added to a watched folder (one holding a module of the closure) follows the imports again.

Stamp = tuple[int, int, int, int]  # (mtime_ns, ctime_ns, size, inode) of a file or folder


@dataclass(frozen=True)
class _Closure:
    files: tuple[tuple[Path, bytes], ...]  # every module of the closure, with its name relative to its root
    folders: tuple[Path, ...]  # where a new file could change the closure: the step package and each module's folder
    stamps: tuple[Stamp, ...]  # of `files`, then of `folders`, when the closure was followed


_CLOSURES: dict[tuple[Path, tuple[tuple[str, Path], ...]], _Closure] = {}  # (package dir, roots) -> its closure
_SHAS: dict[tuple[Path, Stamp], str] = {}  # (file, stamp) -> sha256 of its content
_memo_lock = threading.Lock()  # also serialises ast.parse: CPython 3.11's AST builder is not thread-safe (gh-106905)


def code_digest(package_dir: Path, roots: dict[str, Path]) -> str:
    """sha256 of a step package's sources and every module they import from the given roots.

    Args:
        package_dir: the step's package folder.
        roots: top-level package name -> its folder, e.g. {"skyops": .../src/skyops}; imports of
            other packages are third-party and enter the key through `libraries` instead.
    """
    roots_key = tuple(sorted(roots.items()))
    with _memo_lock:
        closure = _CLOSURES.get((package_dir, roots_key))
        stamps = closure and _stamps(closure.files, closure.folders)
        if closure is None or stamps != closure.stamps:  # first use, or a file changed: follow the imports again
            closure = _follow_imports(package_dir, roots_key)
            _CLOSURES[(package_dir, roots_key)] = closure
            stamps = closure.stamps
        digest = hashlib.sha256()
        for (path, name), stamp in zip(closure.files, stamps, strict=False):  # stamps: the files' first, then the folders'
            sha = _SHAS.get((path, stamp))
            if sha is None:
                sha = _SHAS[(path, stamp)] = hashlib.sha256(path.read_bytes()).hexdigest()
            digest.update(name + b"\0" + sha.encode())
    return digest.hexdigest()


def _stamp(path: Path) -> Stamp:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def _stamps(files: tuple[tuple[Path, bytes], ...], folders: tuple[Path, ...]) -> tuple[Stamp, ...] | None:
    try:
        return tuple(_stamp(p) for p in (*(f for f, _ in files), *folders))
    except OSError:  # a module or folder is gone: follow the imports again
        return None


def _follow_imports(package_dir: Path, roots_key: tuple[tuple[str, Path], ...]) -> _Closure:
    files = set(package_dir.glob("*.py"))
    pending = list(files)
    while pending:
        path = pending.pop()
        for dep in _imported_files(path, _stamp(path), roots_key):
            if dep not in files:
                files.add(dep)
                pending.append(dep)
    named = []
    for path in sorted(files):
        # Relative names keep keys equal across clones in different folders.
        name = next((path.relative_to(r.parent) for _, r in roots_key if path.is_relative_to(r)), path)
        named.append((path, name.as_posix().encode()))
    folders = tuple(sorted({package_dir, *(path.parent for path in files)}))
    stamps = _stamps(tuple(named), folders)
    assert stamps is not None, f"a module of {package_dir} vanished while its imports were followed"
    return _Closure(tuple(named), folders, stamps)


@cache
def _imported_files(path: Path, stamp: Stamp, roots_key: tuple[tuple[str, Path], ...]) -> frozenset[Path]:  # stamp keys the memo
    roots = dict(roots_key)
    found: set[Path] = set()
    tree = ast.parse(path.read_bytes(), filename=str(path))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            found |= _module_files(name, roots)
    return frozenset(found)


def _module_files(name: str, roots: dict[str, Path]) -> set[Path]:
    top, *rest = name.split(".")
    if top not in roots:
        return set()
    files = set()
    folder = roots[top]
    for i in range(len(rest) + 1):
        base = folder.joinpath(*rest[:i])
        if (base / "__init__.py").is_file():
            files.add(base / "__init__.py")
        elif i and base.with_suffix(".py").is_file():
            files.add(base.with_suffix(".py"))
    return files


class CodeMemo:
    """What `code_digest` learnt (import closures, file hashes), kept in the state folder between processes.

    Made at the start of a run, adopting what earlier runs saved (a damaged file only costs
    re-reading the sources); saved at its end, atomically, when it would say something new.
    Used like `StatMemo`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._saved: object = None  # the file's content as loaded, so an unchanged memo is not rewritten
        try:
            data = json.loads(path.read_text())
            closures = {
                (Path(c["package"]), tuple((name, Path(folder)) for name, folder in c["roots"])): _Closure(
                    files=tuple((Path(f), n.encode()) for f, n in c["files"]),
                    folders=tuple(Path(f) for f in c["folders"]),
                    stamps=tuple(tuple(s) for s in c["stamps"]),
                )
                for c in data["closures"]
            }
            shas: dict[tuple[Path, Stamp], str] = {(Path(f), tuple(stamp)): sha for f, stamp, sha in data["shas"]}
        except (OSError, ValueError, TypeError, KeyError):
            return
        self._saved = data
        with _memo_lock:
            for key, closure in closures.items():
                _CLOSURES.setdefault(key, closure)
            for file_stamp, sha in shas.items():
                _SHAS.setdefault(file_stamp, sha)

    def save(self) -> None:
        with _memo_lock:
            live = {(f, s) for c in _CLOSURES.values() for (f, _), s in zip(c.files, c.stamps, strict=False)}
            data = {
                "closures": [
                    {
                        "package": str(package),
                        "roots": [[name, str(folder)] for name, folder in roots],
                        "files": [[str(f), n.decode()] for f, n in c.files],
                        "folders": [str(f) for f in c.folders],
                        "stamps": [list(s) for s in c.stamps],
                    }
                    for (package, roots), c in _CLOSURES.items()
                ],
                "shas": [[str(f), list(s), sha] for (f, s), sha in _SHAS.items() if (f, s) in live],
            }
        if data != self._saved:
            # Compact, unlike write_json_atomic: a machine's memo, written on every first run (4x faster).
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(data, separators=(",", ":")))
            os.replace(tmp, self.path)
            self._saved = data


def library_versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    versions.update({name: _version(name) for name in names})
    return versions


def _version(name: str) -> str:
    """`importlib.metadata.version(name)`, read from the metadata's header only.

    `metadata.version` parses the whole METADATA file as an e-mail message (a long README for
    some libraries): most of a cached step's key. The header block holds the same `Version:` line.
    Imported here, not at the top: `importlib.metadata` pulls in the `email` package (~20 ms), which
    a run whose steps name no libraries never needs.
    """
    from importlib import metadata

    try:
        distribution = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return "not installed"
    text = distribution.read_text("METADATA") or distribution.read_text("PKG-INFO") or ""
    for line in text.splitlines():
        if not line.strip():
            break  # end of the header block
        if line.startswith("Version:"):
            return line.removeprefix("Version:").strip()
    return distribution.version  # an unusual layout: let the full parser find it
