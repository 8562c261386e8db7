"""A window of captured requests, read through the one capture reader, turned into a feature table.

`select_records` picks the window: the records whose inference time is in [start, end), then the
`last` most recent of them. `window_features` decodes each request's images (one image, or each of a
JSON batch) and the server's answer for them, and adds one row per image, embedding the images in
batches. A record the monitor cannot use is skipped and counted by reason, never guessed at: a request
body that is not an image (CSV), or an answer that is not the skyops server's (no detections). A record
captured without its input (SageMaker's CaptureMode Output) still gives its prediction features.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from skyops.errors import ConfigError
from skyops.monitoring.embedding import Embeds
from skyops.monitoring.features import FeatureTable, Predicted
from skyops.serving.capture import CaptureRecord, read_captures
from skyops.serving.images import JSON, Limits, split_payload
from skyops.serving.problems import RequestError

# Captured bodies were accepted by the server already; these limits only bound what one record may cost here.
_LIMITS = Limits(max_bytes=1 << 31, max_pixels=1 << 31, max_batch=1 << 16)


@dataclass
class WindowInfo:
    """What the window holds: its time span, its size and what was skipped (reason -> records)."""

    source: str
    start: datetime | None = None  # the oldest record's inference time
    end: datetime | None = None  # the newest's
    requests: int = 0  # records that gave at least one row
    images: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "requests": self.requests,
            "images": self.images,
            "skipped": dict(sorted(self.skipped.items())),
        }


def parse_time(text: str, what: str) -> datetime | None:
    """An ISO 8601 time (UTC when no zone is given), or None for ''.

    Raises:
        ConfigError: not an ISO 8601 time.
    """
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{what} {text[:40]!r} is not an ISO 8601 time", hint="e.g. 2026-01-31T13:00:00Z") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def select_records(
    captures: str | Path, *, start: datetime | None = None, end: datetime | None = None, last: int = 0
) -> list[CaptureRecord]:
    """The window's records, oldest first: inference time in [start, end), then only the `last` newest (0: all)."""
    kept: deque[CaptureRecord] = deque(maxlen=last or None)
    for record in read_captures(captures):
        if (start is None or record.inference_time >= start) and (end is None or record.inference_time < end):
            kept.append(record)
    return sorted(kept, key=lambda r: r.inference_time)


def _answers(record: CaptureRecord) -> list[dict[str, Any]] | None:
    """The server's answer per image ({"image": {width, height}, "detections": [...]}), or None when it is not one."""
    if record.output is None:
        return None
    try:
        answer = record.output.json()
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(answer, dict):
        return None
    answers = answer.get("predictions", [answer])
    if not isinstance(answers, list) or not all(isinstance(a, dict) and isinstance(a.get("detections"), list) for a in answers):
        return None
    return answers


def _images(record: CaptureRecord, count: int) -> list[np.ndarray | None] | None:
    """The request's decoded images (None each when the input was not captured), or None when they cannot be read."""
    import cv2  # heavy: feature extraction only

    if record.input is None:
        return [None] * count
    kind = record.input.content_type.split(";", 1)[0].strip().lower()
    if not (kind == JSON or kind.startswith("image/") or kind == "application/x-image"):
        return None
    try:
        encoded, _ = split_payload(kind, record.input.raw(), _LIMITS)
    except (RequestError, ValueError):
        return None
    decoded: list[np.ndarray | None] = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for data in encoded]
    if len(decoded) != count or any(image is None for image in decoded):
        return None
    return decoded


def window_features(
    records: Iterable[CaptureRecord], detector: Embeds | None, *, source: str, batch: int = 32
) -> tuple[FeatureTable, WindowInfo]:
    """One feature row per captured image; embeddings by `detector` (the baseline's `Embedder`) in batches of `batch` images (none without one)."""
    table, info = FeatureTable(), WindowInfo(source=source)
    pending: list[tuple[str, np.ndarray | None, tuple[int, int], Predicted]] = []

    def flush() -> None:
        pixels = [image for _, image, _, _ in pending if image is not None]
        vectors = iter(detector.embed(pixels)) if detector is not None and pixels else iter(())
        for request_id, image, size, predicted in pending:
            table.add(request_id, image, size, predicted, next(vectors) if image is not None and detector is not None else None)
        pending.clear()

    for record in records:
        answers = _answers(record)
        if answers is None:
            info.skipped["no skyops answer captured"] += 1
            continue
        images = _images(record, len(answers))
        if images is None:
            info.skipped["input is not a readable image"] += 1
            continue
        request_id = record.inference_id or record.event_id
        for image, answer in zip(images, answers, strict=True):
            shape = answer.get("image") or {}
            size = (int(shape.get("width", 0)), int(shape.get("height", 0)))
            if image is not None:
                size = (image.shape[1], image.shape[0])
            pending.append((request_id, image, size, Predicted.from_server(answer["detections"])))
        info.requests += 1
        info.images += len(answers)
        info.start = min(info.start or record.inference_time, record.inference_time)
        info.end = max(info.end or record.inference_time, record.inference_time)
        if len(pending) >= batch:
            flush()
    flush()
    return table, info


def write_window(table: FeatureTable, info: WindowInfo, out_dir: Path, *, model_sha256: str) -> None:
    """features.npz and window.json into `out_dir` (an atomic output folder the caller publishes)."""
    table.save(out_dir / "features.npz")
    doc = {"format": 1, "window": info.to_json(), "model": {"weights_sha256": model_sha256}}
    (out_dir / "window.json").write_text(json.dumps(doc, indent=1))
