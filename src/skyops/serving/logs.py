"""Structured logs: one JSON object per line on stderr, for the server's own records and uvicorn's alike.

    {"time": "2026-01-31T13:05:09.123Z", "level": "info", "logger": "skyops.serving", "message": "request",
     "event": "request", "request_id": "...", "status": 200, "latency_ms": 9.8, "bytes": 18211, ...}

A record's structured fields come from `extra={"fields": {...}}`; CloudWatch (SageMaker sends the
container's stderr there) and `jq` read them as they are.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """Send every log record of this process to stderr as JSON lines (replacing earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # theirs go through the root handler, as JSON
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
