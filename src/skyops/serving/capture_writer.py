"""The server's data-capture writer: sampled, in the background, never in a request's way.

A request that is sampled (`percent` of the successful ones; refused requests never are) hands its
event to a bounded queue and goes on; one thread writes. A full queue drops the event (counted), so
a slow disk never slows inference.

Files (capture.py has the record format), under `root/<endpoint>/<variant>/yyyy/mm/dd/hh/`:

    .<MM-SS-mmm-uuid>.jsonl.<pid>.partial   the file being written: whole lines, flushed per record
    <MM-SS-mmm-uuid>.jsonl                  renamed from it (after fsync) once it is over `rotate_bytes`,
                                            older than `rotate_seconds`, the hour changes, or the server stops
    thumbnails/<eventId>.jpg                written to a temp name and renamed, before its record

A reader lists only `*.jsonl` files that are not hidden, so it never sees a file being written, nor a
half line. A server killed with SIGKILL leaves its `.partial` behind; the next writer on that folder
finishes it (cuts a trailing incomplete line, renames it) when its pid is gone.

A write that fails (a full disk, a read-only or vanished folder) stops capture for the rest of the
server's life: one log line, `skyops_capture_enabled` 0, `skyops_capture_errors_total` +1; what was
written so far is finished as above when the disk allows; requests go on untouched.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from skyops.serving.capture import THUMBNAILS, capture_record
from skyops.serving.metrics import CaptureMetrics

log = logging.getLogger("skyops.serving.capture")

DEFAULT_VARIANT = "AllTraffic"  # SageMaker's name for an endpoint's only variant
PARTIAL = ".partial"


@dataclass(frozen=True)
class CaptureConfig:
    root: Path
    percent: float = 100.0  # of successful requests, 0..100
    endpoint: str = "local"
    variant: str = DEFAULT_VARIANT
    rotate_bytes: int = 16 * 1024 * 1024
    rotate_seconds: float = 60.0
    queue_size: int = 256  # events waiting for the writer; more are dropped


@dataclass(frozen=True)
class CaptureEvent:
    when: datetime  # UTC
    request_id: str
    input_type: str
    body: bytes
    output: bytes  # the JSON response
    thumbnails: tuple[bytes, ...]  # one small JPEG per image of the request


class _Open:
    """The file being written: where it goes when finished, and how many bytes of whole lines it holds."""

    def __init__(self, folder: Path, hour: tuple[int, int, int, int], now: datetime) -> None:
        name = f"{now:%M-%S}-{now.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        self.final = folder / name
        self.partial = folder / f".{name}.{os.getpid()}{PARTIAL}"
        self.hour = hour
        self.opened = time.monotonic()
        self.good = 0  # bytes of whole lines written and flushed
        folder.mkdir(parents=True, exist_ok=True)
        self.file: IO[bytes] = self.partial.open("xb")


class CaptureWriter:
    """Samples, queues and writes capture events (the module docstring). `start()` it, `close()` it at shutdown."""

    def __init__(self, config: CaptureConfig, metrics: CaptureMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.folder = config.root / config.endpoint / config.variant
        self.queue: queue.Queue[CaptureEvent | None] = queue.Queue(config.queue_size)
        self.stopped = False  # after a failed write: nothing more is written
        self.current: _Open | None = None
        self.thread = threading.Thread(target=self._run, name="skyops-capture", daemon=True)
        metrics.enabled.set(1)

    def start(self) -> None:
        self.thread.start()

    def sampled(self) -> bool:
        """Whether this request is captured (`percent` of them, drawn independently); after a failure none is (counted as dropped)."""
        drawn = self.config.percent > 0 and random.random() * 100 < self.config.percent
        if drawn and self.stopped:
            self.metrics.dropped.labels("stopped").inc()
            return False
        return drawn

    def submit(self, event: CaptureEvent) -> None:
        """Queue an event without waiting; a full queue drops it (counted)."""
        if self.stopped:
            self.metrics.dropped.labels("stopped").inc()
            return
        try:
            self.queue.put_nowait(event)
        except queue.Full:
            self.metrics.dropped.labels("queue_full").inc()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, finish the open file, stop the thread."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout)

    # The writer thread.

    def _run(self) -> None:
        self._guard(self._recover)
        while True:
            wait = None if self.current is None else max(0.0, self.current.opened + self.config.rotate_seconds - time.monotonic())
            try:
                event = self.queue.get(timeout=wait)
            except queue.Empty:
                self._guard(self._finish)  # the open file is old enough
                continue
            if event is None:
                self._guard(self._finish)
                return
            if self.stopped:
                self.metrics.dropped.labels("stopped").inc()
                continue
            self._guard(functools.partial(self._write, event))

    def _guard(self, action: Callable[[], None]) -> None:
        """Run a file action; the first OSError stops capture for good (one log line, a metric)."""
        if self.stopped:
            return
        try:
            action()
        except OSError as e:
            self.stopped = True
            self.metrics.enabled.set(0)
            self.metrics.errors.inc()
            log.error(
                "data capture stopped: %s (%s); requests are still served, captures from now on are dropped",
                e.strerror or type(e).__name__,
                getattr(e, "filename", None) or self.folder,
            )
            self._salvage()

    def _write(self, event: CaptureEvent) -> None:
        when = event.when.astimezone(UTC)
        hour = (when.year, when.month, when.day, when.hour)
        current = self.current
        if current is not None and (current.hour != hour or current.good >= self.config.rotate_bytes):
            self._finish()
            current = None
        if current is None:
            current = self.current = _Open(self.folder.joinpath(*(f"{v:02d}" for v in hour)), hour, when)
        event_id = str(uuid.uuid4())
        for i, jpeg in enumerate(event.thumbnails):
            name = f"{event_id}.jpg" if len(event.thumbnails) == 1 else f"{event_id}-{i}.jpg"
            _write_atomic(current.final.parent / THUMBNAILS / name, jpeg)
        record = capture_record(
            event_id=event_id,
            inference_id=event.request_id,
            when=when,
            input_type=event.input_type,
            body=event.body,
            output_type="application/json",
            output=event.output,
        )
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        current.file.write(line)
        current.file.flush()
        current.good += len(line)
        self.metrics.records.inc()

    def _finish(self) -> None:
        """Publish the open file under its final name (fsync first, so a crash never publishes a torn file)."""
        current, self.current = self.current, None
        if current is None:
            return
        current.file.flush()
        os.fsync(current.file.fileno())
        current.file.close()
        if current.good:
            os.replace(current.partial, current.final)
        else:
            current.partial.unlink()

    def _salvage(self) -> None:
        """After a failed write: keep the whole lines written so far, published if the disk lets us."""
        current, self.current = self.current, None
        if current is None:
            return
        with contextlib.suppress(OSError):
            current.file.close()
        with contextlib.suppress(OSError):
            os.truncate(current.partial, current.good)
            if current.good:
                os.replace(current.partial, current.final)
            else:
                current.partial.unlink()

    def _recover(self) -> None:
        """Finish the `.partial` files that writers which are gone left under this endpoint/variant."""
        if not self.folder.is_dir():
            return
        for partial in self.folder.rglob(f".*{PARTIAL}"):
            name, _, pid = partial.name[1 : -len(PARTIAL)].rpartition(".")
            # Our own pid here is an earlier process's (a container restarts with the same pid): nothing is open yet.
            if not pid.isdigit() or (int(pid) != os.getpid() and _alive(int(pid))):
                continue
            data = partial.read_bytes()
            whole = data[: data.rfind(b"\n") + 1]
            if whole:
                os.truncate(partial, len(whole))
                os.replace(partial, partial.with_name(name))
            else:
                partial.unlink()
            log.warning(
                "finished %s, left by capture writer pid %s that is gone (%d bytes of whole lines)",
                partial.with_name(name),
                pid,
                len(whole),
            )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)
