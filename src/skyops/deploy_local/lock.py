"""One deployment per environment at a time: a flock on `<state>/serving/<env>/deploy.lock`.

The holder writes who it is into the file (pid, actor, version, since), so a second apply is refused
with a line naming the first, or waits for it with `--wait SECONDS`. The kernel drops the lock when its
holder dies, even by SIGKILL: a killed deploy never blocks the next one (which then repairs what it
left, see skyops.deploy_local.observe).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from skyops.deploy_local.state import folder
from skyops.errors import SkyopsError

POLL_S = 0.1


class DeployBusy(SkyopsError):
    """Another deployment to the environment holds its lock."""

    exit_code = 1


@contextlib.contextmanager
def environment_lock(state_dir: Path, environment: str, *, actor: str, version: int | None, wait: float = 0.0) -> Iterator[None]:
    """Hold the environment's deploy lock for the block.

    Raises:
        DeployBusy: another deployment holds it, and did not let go within `wait` seconds.
    """
    path = folder(state_dir, environment) / "deploy.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                waited = f" after waiting {wait:g} s" if wait > 0 else ""
                raise DeployBusy(
                    f"another deployment to {environment} is in progress{waited}: {holder(path)}",
                    hint="wait for it to finish (skyops deploy status shows it), or run again with --wait SECONDS",
                )
            time.sleep(POLL_S)
        record = {"pid": os.getpid(), "actor": actor, "version": version, "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def locked(state_dir: Path, environment: str) -> str | None:
    """Who holds the environment's lock now (see `holder`), or None when nobody does."""
    path = folder(state_dir, environment) / "deploy.lock"
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        if _try_lock(fd, shared=True):
            return None
        return holder(path)
    finally:
        os.close(fd)


def holder(path: Path) -> str:
    """'alice's apply of v2 (pid 1234, since 15:02:11 UTC)', from what the holder wrote; 'a process that did not say who' otherwise."""
    try:
        record = json.loads(path.read_text())
        since = datetime.fromtimestamp(float(record["since"]), UTC).strftime("%H:%M:%S UTC")
        version = "no version" if record.get("version") is None else f"v{record['version']}"
        return f"{record['actor']}'s apply of {version} (pid {record['pid']}, since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that did not say who (it is still writing its record, or an older skyops)"


def _try_lock(fd: int, *, shared: bool = False) -> bool:
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
