"""One execution per cache key at a time, across threads and processes: a flock on `locks/<key>.lock`.

Two runs that need the same step result (same key) would otherwise both execute it, sharing its
checkpoint folder. The lock makes one execute and the other wait, then reuse the published result.
The kernel drops a flock when the holder's file is closed, which process death does, even by
SIGKILL: a crash never leaves a lock behind. Lock files are a few bytes and stay: removing one
while another process waits on it would let two processes hold "the" lock.

Why not the `filelock` package: importing it costs ~200 ms here (measured with -X importtime),
more than a whole cached step; the engine needs only this much of it.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

POLL_SECONDS = 0.1  # how often a waiter retries, and how soon it notices its run is stopping


class LockWaitStopped(Exception):
    """The run stopped (a signal, a fatal error) while this step waited for the lock."""


@contextmanager
def key_lock(path: Path, *, stop: threading.Event, on_wait: Callable[[], None]) -> Iterator[float]:
    """Hold an exclusive lock on `path` for the block; yield the seconds spent waiting for it.

    Args:
        path: the lock file (created if absent).
        stop: set when the run is stopping; a waiter then gives up with `LockWaitStopped`.
        on_wait: called once, before waiting, when another holder has the lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children (PEP 446)
    try:
        waited = 0.0
        if not _try_lock(fd):
            on_wait()
            start = time.monotonic()
            while not _try_lock(fd):
                if stop.wait(POLL_SECONDS):
                    raise LockWaitStopped(str(path))
            waited = time.monotonic() - start
        yield waited
    finally:
        os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
