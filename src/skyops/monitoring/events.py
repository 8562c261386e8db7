"""One event model for everything skyops tells the outside world: drift, failed runs, approvals, deployments, retraining.

    {"id": "<uuid4>", "time": "2026-01-31T13:05:09.123Z", "source": "skyops",
     "type": "drift.detected", "detail": {...}}

`type` is one of `EventType`; `detail` is a JSON object holding at least the keys `REQUIRED[type]`
(more are welcome). Events are built with `new_event`, which checks both, so a sink never receives an
event another reader cannot rely on. Sinks (sinks.py) write the same JSON to the local log and the
webhook; EventBridge receives it as a PutEvents entry (`to_eventbridge_entry`): Source "skyops",
DetailType the type, Detail the detail plus `event_id`, Time the event's time.

The EventBridge rules that route these events are data here (`RULES`, `rule_patterns()`), shipped as
infra/eventbridge/rule-patterns.json for the infrastructure templates (a test keeps the file equal to
`rule_file()`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from skyops.errors import DataValidationError

SOURCE = "skyops"
EVENT_ID_KEY = "event_id"  # the event's id inside an EventBridge entry's Detail (EventBridge gives entries ids of its own)
RULE_FILE = Path("infra") / "eventbridge" / "rule-patterns.json"


class EventType(StrEnum):
    DRIFT_DETECTED = "drift.detected"  # a monitoring window was judged drifted (drift.json "drifted": true)
    PIPELINE_FAILED = "pipeline.failed"  # a local run ended failed (`skyops run`)
    APPROVAL_REQUESTED = "approval.requested"  # a version was registered PendingManualApproval
    APPROVAL_DECIDED = "approval.decided"  # a version was approved or rejected
    DEPLOYMENT_CHANGED = "deployment.changed"  # @champion moved (promote, rollback) or a desired state was applied
    RETRAIN_DECIDED = "retrain.decided"  # the retraining policy started a run or refused one


# The detail keys each type always carries (what rules and readers may match on).
REQUIRED: Mapping[EventType, tuple[str, ...]] = {
    EventType.DRIFT_DETECTED: ("drift_file", "window", "baseline", "top", "drifted_features"),
    EventType.PIPELINE_FAILED: ("run_id", "pipeline", "status", "failed_steps", "resume_command"),
    EventType.APPROVAL_REQUESTED: ("model", "version", "status", "actor"),
    EventType.APPROVAL_DECIDED: ("model", "version", "decision", "actor", "reason"),
    EventType.DEPLOYMENT_CHANGED: ("model", "action", "version", "previous", "actor"),
    EventType.RETRAIN_DECIDED: ("decision", "rule", "reason", "trigger", "dataset"),
}


@dataclass(frozen=True, kw_only=True)
class Event:
    """One event. Build it with `new_event` (checked); `from_json` reads one back (checked the same way)."""

    id: str
    time: datetime  # UTC
    type: EventType
    detail: Mapping[str, Any] = field(default_factory=dict)
    source: str = SOURCE

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "time": format_time(self.time), "source": self.source, "type": str(self.type), "detail": dict(self.detail)}

    def line(self) -> bytes:
        """The event as one JSON line (the local log's and the webhook's body, without the newline for the latter)."""
        return (json.dumps(self.to_json(), separators=(",", ":"), sort_keys=False) + "\n").encode()

    @classmethod
    def from_json(cls, data: Any, where: str) -> Event:
        """Read an event written by `to_json`.

        Raises:
            DataValidationError: naming `where` (a file and line) and what is wrong.
        """
        if not isinstance(data, dict):
            raise DataValidationError(f"{where} is not an event: expected a JSON object", hint="an event log holds one event per line")
        missing = [k for k in ("id", "time", "source", "type", "detail") if k not in data]
        if missing:
            raise DataValidationError(
                f"{where} is not an event: {', '.join(missing)} missing", hint="an event log holds one event per line"
            )
        try:
            kind = EventType(data["type"])
            when = parse_time(data["time"])
        except (ValueError, TypeError) as e:
            raise DataValidationError(f"{where}: {e}", hint=f"types are {', '.join(t.value for t in EventType)}") from None
        return _checked(cls(id=str(data["id"]), time=when, type=kind, detail=data["detail"], source=str(data["source"])), where)


def new_event(kind: EventType, detail: Mapping[str, Any], *, now: datetime | None = None) -> Event:
    """A new event of `kind` with a fresh id, at `now` (default: the current UTC time).

    Raises:
        DataValidationError: `detail` lacks a key of `REQUIRED[kind]`, is not a JSON object, or uses `event_id`.
    """
    return _checked(Event(id=str(uuid.uuid4()), time=(now or datetime.now(UTC)).astimezone(UTC), type=kind, detail=dict(detail)), "event")


def _checked(event: Event, where: str) -> Event:
    detail = event.detail
    if not isinstance(detail, Mapping) or not all(isinstance(k, str) for k in detail):
        raise DataValidationError(f"{where}: the detail of a {event.type} event is not a JSON object", hint="pass a dict with string keys")
    missing = [k for k in REQUIRED[event.type] if k not in detail]
    if missing:
        raise DataValidationError(
            f"{where}: a {event.type} event needs detail keys {', '.join(REQUIRED[event.type])}; missing {', '.join(missing)}",
            hint="see REQUIRED in skyops.monitoring.events",
        )
    if EVENT_ID_KEY in detail:
        raise DataValidationError(f"{where}: detail key {EVENT_ID_KEY!r} is reserved (EventBridge entries carry the event id there)")
    try:
        json.dumps(dict(detail), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise DataValidationError(
            f"{where}: the detail of a {event.type} event is not JSON ({e})", hint="use str, numbers, lists and dicts"
        ) from None
    return event


def format_time(when: datetime) -> str:
    """UTC, milliseconds, Z: "2026-01-31T13:05:09.123Z"."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(text: Any) -> datetime:
    if not isinstance(text, str):
        raise TypeError(f"time {text!r} is not a string")
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return when.astimezone(UTC)


def to_eventbridge_entry(event: Event, bus: str) -> dict[str, Any]:
    """The PutEvents entry of `event` on `bus` (a name or an ARN): Source, DetailType, Detail (+ event_id), Time."""
    return {
        "Time": event.time,
        "Source": event.source,
        "DetailType": str(event.type),
        "Detail": json.dumps({**event.detail, EVENT_ID_KEY: event.id}, separators=(",", ":")),
        "EventBusName": bus,
    }


@dataclass(frozen=True)
class Rule:
    """An EventBridge rule skyops ships: its name, what it is for, and its event pattern."""

    name: str
    description: str
    pattern: Mapping[str, Any]


def _pattern(*types: EventType, detail: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    pattern: dict[str, Any] = {"source": [SOURCE], "detail-type": [str(t) for t in types]}
    if detail:
        pattern["detail"] = dict(detail)
    return pattern


RULES: tuple[Rule, ...] = (
    Rule("skyops-drift-detected", "a monitoring window drifted from the training baseline", _pattern(EventType.DRIFT_DETECTED)),
    Rule("skyops-pipeline-failed", "a pipeline run ended failed", _pattern(EventType.PIPELINE_FAILED)),
    Rule(
        "skyops-approval",
        "a model version waits for approval, or was approved or rejected",
        _pattern(EventType.APPROVAL_REQUESTED, EventType.APPROVAL_DECIDED),
    ),
    Rule("skyops-deployment-changed", "@champion moved or a desired state was applied", _pattern(EventType.DEPLOYMENT_CHANGED)),
    Rule(
        "skyops-retrain-started",
        "the retraining policy started a training run",
        _pattern(EventType.RETRAIN_DECIDED, detail={"decision": ["start"]}),
    ),
    Rule("skyops-all", "every skyops event (an archive, an audit trail)", {"source": [SOURCE]}),
)


def rule_patterns() -> dict[str, dict[str, Any]]:
    """Rule name -> EventBridge event pattern, for every rule skyops ships."""
    return {rule.name: json.loads(json.dumps(rule.pattern)) for rule in RULES}


def rule_file() -> dict[str, Any]:
    """The content of infra/eventbridge/rule-patterns.json: each rule's name, description and pattern."""
    return {
        "source": SOURCE,
        "detail_types": [t.value for t in EventType],
        "rules": [{"name": r.name, "description": r.description, "pattern": rule_patterns()[r.name]} for r in RULES],
    }
