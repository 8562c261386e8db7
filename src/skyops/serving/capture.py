"""Data capture in SageMaker's own format, and the one reader of it (local captures and SageMaker's alike).

SageMaker's data capture (Model Monitor) writes JSON Lines under
`<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`, the hour being the invocation's (UTC),
one record per captured invocation:

    {"captureData": {"endpointInput":  {"observedContentType": "image/jpeg", "mode": "INPUT",
                                        "data": "<base64 of the body>", "encoding": "BASE64"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "{\"detections\": ...}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<request id>", "inferenceTime": "2026-01-31T13:05:09Z"},
     "eventVersion": "0"}

Encodings as SageMaker uses them: JSON bodies are kept as text ("JSON"), CSV as "CSV", anything else
(images) as "BASE64". `inferenceId` is optional in SageMaker's records (present when the caller
gave one); the server puts its request id there. The server's writer (capture_writer.py) also keeps
small JPEG thumbnails beside each hour's files, `thumbnails/<eventId>.jpg` (`<eventId>-<i>.jpg` for
the images of a batch).

`read_captures(path)` reads a capture folder at any level (the prefix, an endpoint, an hour) or one
file, oldest first; the monitoring code reads SageMaker's captures through it once they are copied
down (`aws s3 sync`); reading s3:// directly is not built yet and says so.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skyops.errors import ConfigError, DataValidationError

EVENT_VERSION = "0"
INPUT, OUTPUT = "INPUT", "OUTPUT"
BASE64, JSON_ENCODING, CSV_ENCODING = "BASE64", "JSON", "CSV"
THUMBNAILS = "thumbnails"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # as in SageMaker's records; the reader also takes fractions of a second


@dataclass(frozen=True)
class CapturedPayload:
    """One side of an invocation (the request's body or the response's), as captured."""

    content_type: str
    mode: str  # INPUT or OUTPUT
    encoding: str  # BASE64, JSON or CSV
    data: str

    def raw(self) -> bytes:
        """The payload's bytes as the endpoint received or sent them."""
        return base64.b64decode(self.data) if self.encoding == BASE64 else self.data.encode("utf-8")

    def json(self) -> Any:
        """The payload parsed as JSON (a JSON request or any response of the server)."""
        return json.loads(self.raw())


@dataclass(frozen=True)
class CaptureRecord:
    event_id: str
    inference_time: datetime  # UTC
    inference_id: str | None
    event_version: str
    input: CapturedPayload | None  # None when only the output was captured (SageMaker's CaptureMode Output)
    output: CapturedPayload | None
    file: Path
    line: int  # 1-based, in `file`

    @property
    def thumbnails(self) -> list[Path]:
        """The thumbnails the skyops server kept for this event (none for SageMaker's own captures)."""
        return sorted((self.file.parent / THUMBNAILS).glob(f"{self.event_id}*.jpg"))


def payload(content_type: str, mode: str, body: bytes) -> dict[str, str]:
    """One side of a capture record, encoded the way SageMaker encodes that content type."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json") or kind == "application/jsonlines":
        encoding, data = JSON_ENCODING, body.decode("utf-8")
    elif kind == "text/csv":
        encoding, data = CSV_ENCODING, body.decode("utf-8")
    else:
        encoding, data = BASE64, base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def capture_record(
    *, event_id: str, inference_id: str, when: datetime, input_type: str, body: bytes, output_type: str, output: bytes
) -> dict[str, Any]:
    """A capture record (the module docstring's shape) for one invocation."""
    return {
        "captureData": {"endpointInput": payload(input_type, INPUT, body), "endpointOutput": payload(output_type, OUTPUT, output)},
        "eventMetadata": {"eventId": event_id, "inferenceId": inference_id, "inferenceTime": when.astimezone(UTC).strftime(TIME_FORMAT)},
        "eventVersion": EVENT_VERSION,
    }


def capture_files(path: Path) -> list[Path]:
    """The finished .jsonl files under `path` (or `path` itself), oldest first: the folder layout sorts by time."""
    if path.is_file():
        return [path]
    # Hidden names are files still being written (`.<name>.jsonl.<pid>.partial`): never read.
    return sorted(p for p in path.rglob("*.jsonl") if not any(part.startswith(".") for part in p.relative_to(path).parts))


def read_captures(path_or_prefix: str | os.PathLike[str]) -> Iterator[CaptureRecord]:
    """Every capture record under a local capture folder (any level) or in one .jsonl file, oldest first.

    Raises:
        ConfigError: an s3:// prefix (not built yet) or a path that does not exist.
        DataValidationError: a line that is not a capture record, named by file and line.
    """
    text = os.fspath(path_or_prefix)
    if text.startswith("s3://"):
        raise ConfigError(
            f"reading captures from {text} directly is not built yet",
            hint=f"copy them down first: aws s3 sync {text} ./captures --profile ab, then read ./captures",
        )
    path = Path(text)
    if not path.exists():
        raise ConfigError(
            f"capture folder {path} does not exist", hint="give the folder a server wrote with --capture-dir, or a copy of SageMaker's"
        )
    for file in capture_files(path):
        with file.open("rb") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield _record(line, file, number)


def _record(line: bytes, file: Path, number: int) -> CaptureRecord:
    where = f"{file}:{number}"
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataValidationError(f"{where} is not a JSON line ({e})", hint="a capture file holds one JSON record per line") from None
    if not isinstance(data, dict) or not isinstance(data.get("captureData"), dict) or not isinstance(data.get("eventMetadata"), dict):
        raise DataValidationError(
            f"{where} is not a capture record: expected captureData and eventMetadata objects",
            hint="is this a SageMaker data-capture file?",
        )
    meta = data["eventMetadata"]
    event_id, when = meta.get("eventId"), meta.get("inferenceTime")
    if not isinstance(event_id, str) or not isinstance(when, str):
        raise DataValidationError(
            f"{where}: eventMetadata needs eventId and inferenceTime strings", hint="is this a SageMaker data-capture file?"
        )
    try:
        inference_time = datetime.fromisoformat(when.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise DataValidationError(
            f"{where}: inferenceTime {when[:40]!r} is not an ISO 8601 time", hint="e.g. 2026-01-31T13:05:09Z"
        ) from None
    capture = data["captureData"]
    inference_id = meta.get("inferenceId")
    return CaptureRecord(
        event_id=event_id,
        inference_time=inference_time,
        inference_id=inference_id if isinstance(inference_id, str) else None,
        event_version=str(data.get("eventVersion", "")),
        input=_payload(capture.get("endpointInput"), where, "endpointInput"),
        output=_payload(capture.get("endpointOutput"), where, "endpointOutput"),
        file=file,
        line=number,
    )


def _payload(value: Any, where: str, key: str) -> CapturedPayload | None:
    if value is None:
        return None
    fields = ("observedContentType", "mode", "data", "encoding")
    if not isinstance(value, dict) or not all(isinstance(value.get(k), str) for k in fields):
        raise DataValidationError(
            f"{where}: captureData.{key} needs {', '.join(fields)} strings", hint="is this a SageMaker data-capture file?"
        )
    if value["encoding"] not in (BASE64, JSON_ENCODING, CSV_ENCODING):
        raise DataValidationError(f"{where}: captureData.{key}.encoding is {value['encoding'][:20]!r}, expected BASE64, JSON or CSV")
    return CapturedPayload(value["observedContentType"], value["mode"], value["encoding"], value["data"])
