"""An append-only JSON Lines file shared by processes: whole lines only, rotated by size, read oldest first.

The event log (`<state>/events/events.jsonl`) and the retraining decision log are such files. Many
processes may append at once (a scheduled monitor, a `skyops run` that failed, an approval):

- an append holds a flock on `.<name>.lock` beside the file, so appends and rotations never interleave;
- the line(s) go in one `write` on an O_APPEND descriptor, then fsync; a write that fails (a full disk)
  is cut back to the size before it, so the file never keeps half a line;
- a writer killed mid-write can still leave a line without its newline: the next append first cuts
  such a tail, and readers never return it;
- past `max_bytes` the file is renamed `<name>.1` (`.1` to `.2`, ..., the oldest beyond `keep` removed)
  before the append, under the same lock.

Why not the `filelock` package: importing it costs ~200 ms (see skyops.pipeline.locks); `skyops run`
appends here when a run fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from skyops.errors import DataValidationError, StateError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_KEEP = 5  # rotated files kept besides the current one


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if absent) for the block; the kernel drops it if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


class JsonlLog:
    """One JSON Lines file with its rotated predecessors. See the module docstring.

    Args:
        path: the current file, e.g. `<state>/events/events.jsonl`.
        max_bytes: rotate before an append would take the file past this size.
        keep: rotated files kept (`<name>.1` newest ... `<name>.<keep>` oldest).
    """

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, keep: int = DEFAULT_KEEP) -> None:
        if max_bytes < 1 or keep < 1:
            raise ValueError(f"max_bytes and keep must be >= 1, got {max_bytes} and {keep}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    def append(self, *records: dict[str, Any]) -> None:
        """Append one line per record, all or none.

        Raises:
            StateError: the folder or file cannot take the write (full disk, read-only, permissions).
        """
        data = b"".join((json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n").encode() for r in records)
        try:
            with locked(self.lock_path):
                self._append_locked(data)
        except OSError as e:
            raise StateError(
                f"cannot append to {self.path}: {e.strerror or e}",
                hint="free space or fix the permissions of the state folder (SKYOPS_STATE_DIR), then try again",
            ) from None

    def _append_locked(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = _cut_partial_tail(fd, os.fstat(fd).st_size)
            if size and size + len(data) > self.max_bytes:
                os.close(fd)
                fd = -1
                self._rotate()
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
                size = 0
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # never leave half a line behind
                raise
        finally:
            if fd >= 0:
                os.close(fd)

    def _rotate(self) -> None:
        for n in range(self.keep - 1, 0, -1):
            older = self._rotated(n)
            if older.exists():
                os.replace(older, self._rotated(n + 1))
        os.replace(self.path, self._rotated(1))

    def _rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def files(self) -> list[Path]:
        """The existing files, oldest first."""
        return [p for p in [*(self._rotated(n) for n in range(self.keep, 0, -1)), self.path] if p.is_file()]

    def read(self) -> Iterator[tuple[str, Any]]:
        """(where, parsed record) of every whole line, oldest first; `where` is "file:line".

        Raises:
            DataValidationError: a whole line that is not JSON, named by file and line.
        """
        for path in self.files():
            with path.open("rb") as f:
                for number, line in enumerate(f, 1):
                    if not line.endswith(b"\n"):
                        break  # a line being written, or cut by a crash: not a record (the next append removes it)
                    if not line.strip():
                        continue
                    where = f"{path}:{number}"
                    try:
                        yield where, json.loads(line)
                    except (UnicodeDecodeError, json.JSONDecodeError) as e:
                        raise DataValidationError(
                            f"{where} is not a JSON line ({type(e).__name__})",
                            hint=f"{path} holds one JSON record per line; move the damaged file aside",
                        ) from None


def _cut_partial_tail(fd: int, size: int) -> int:
    """Truncate a last line without its newline (a writer died mid-write); the size after."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    block = 4096
    end = size
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            os.ftruncate(fd, start + cut + 1)
            return start + cut + 1
        end = start
    os.ftruncate(fd, 0)
    return 0
