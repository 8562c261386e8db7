"""Faults of the state folder's file system as one clear error, and a hook that injects them in tests.

A full disk (ENOSPC), an exhausted quota (EDQUOT), a read-only mount (EROFS) or a folder this user
may not write (EACCES, EPERM) is not a bug: it is the machine, and the user can fix it. The engine
turns each into a `StateError` that names the path and the way out, and removes what it was
writing, so nothing half-written is left behind.

Test hook: `SKYOPS_FAULT_INJECT=<ERRNO>:<glob>` (e.g. `ENOSPC:entry.json`, `EROFS:*`) makes every
engine write to a file whose name matches the glob fail with that errno, after part of it was
written, as a real full disk would. Unset (always, outside tests) it costs one dict lookup.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

from skyops.errors import StateError

FAULT_ENV = "SKYOPS_FAULT_INJECT"
PROBE = ".skyops-write-probe"

_RECOVERY = "then run again: finished steps are reused from the cache"
# errno -> (what it means, how to recover)
ENVIRONMENT_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", f"free space on that disk (or set SKYOPS_STATE_DIR to a folder on another), {_RECOVERY}"),
    errno.EDQUOT: ("disk quota exceeded", f"free space within your quota (or set SKYOPS_STATE_DIR to a folder elsewhere), {_RECOVERY}"),
    errno.EROFS: ("read-only file system", f"set SKYOPS_STATE_DIR to a writable folder, {_RECOVERY}"),
    errno.EACCES: ("permission denied", f"make it writable for this user, or set SKYOPS_STATE_DIR to a writable folder, {_RECOVERY}"),
    errno.EPERM: ("operation not permitted", f"make it writable for this user, or set SKYOPS_STATE_DIR to a writable folder, {_RECOVERY}"),
}


def environment_error(error: OSError, what: str, path: Path) -> StateError | None:
    """The clear error for a file-system fault while writing `what` at `path`; None for other errors.

    It names `path`, what the engine was writing, not the OSError's file name: a failed write()
    carries none, and a temp file's name would mean nothing to the reader.
    """
    known = ENVIRONMENT_ERRNOS.get(error.errno or 0)
    if known is None:
        return None
    meaning, hint = known
    return StateError(f"cannot write {what} at {path}: {meaning} ({errno.errorcode[error.errno or 0]})", hint=hint)


@contextmanager
def writing(what: str, path: Path) -> Iterator[None]:
    """Turn a file-system fault raised inside the block into a `StateError` naming `what` and `path`."""
    try:
        yield
    except OSError as e:
        error = environment_error(e, what, path)
        if error is None:
            raise
        raise error from None


def inject(path: Path) -> None:
    """Raise the fault `SKYOPS_FAULT_INJECT` asks for, if it names this file (tests only)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    name, _, pattern = spec.partition(":")
    if fnmatch(path.name, pattern or "*"):
        code = getattr(errno, name)
        raise OSError(code, os.strerror(code), str(path))


def check_writable(root: Path) -> None:
    """Fail early, with one clear error naming the folder, if the state folder cannot be created or written."""
    probe = root / f"{PROBE}.{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        try:
            with open(probe, "wb") as f:
                inject(probe)
                f.write(b"skyops")  # one block: a full disk refuses it
        finally:
            probe.unlink(missing_ok=True)
    except OSError as e:
        error = environment_error(e, "the state folder", root)
        if error is None:
            raise
        raise error from None
