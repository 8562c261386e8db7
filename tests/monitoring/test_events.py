"""The event model: what an event must carry, how it reads back, and the EventBridge rule patterns shipped as data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from skyops.errors import DataValidationError
from skyops.monitoring.events import (
    EVENT_ID_KEY,
    REQUIRED,
    RULE_FILE,
    Event,
    EventType,
    format_time,
    new_event,
    rule_file,
    rule_patterns,
    to_eventbridge_entry,
)

ROOT = Path(__file__).resolve().parents[2]


def full_detail(kind: EventType) -> dict[str, object]:
    return {key: f"value of {key}" for key in REQUIRED[kind]}


@pytest.mark.parametrize("kind", list(EventType))
def test_every_type_round_trips_through_json(kind: EventType) -> None:
    when = datetime(2026, 1, 31, 13, 5, 9, 123456, tzinfo=UTC)
    event = new_event(kind, {**full_detail(kind), "extra": [1, 2.5, None]}, now=when)
    data = json.loads(event.line())
    assert data == {
        "id": event.id,
        "time": "2026-01-31T13:05:09.123Z",
        "source": "skyops",
        "type": kind.value,
        "detail": dict(event.detail),
    }
    back = Event.from_json(data, "test")
    assert (back.id, back.type, back.detail, back.time) == (event.id, kind, event.detail, when.replace(microsecond=123000))


def test_each_event_gets_its_own_id() -> None:
    ids = {new_event(EventType.PIPELINE_FAILED, full_detail(EventType.PIPELINE_FAILED)).id for _ in range(50)}
    assert len(ids) == 50


def test_a_detail_missing_a_required_key_is_refused_naming_it() -> None:
    detail = full_detail(EventType.APPROVAL_DECIDED)
    del detail["decision"]
    with pytest.raises(DataValidationError, match=r"approval\.decided event needs detail keys .*; missing decision"):
        new_event(EventType.APPROVAL_DECIDED, detail)


def test_a_detail_that_is_not_json_or_uses_the_reserved_key_is_refused() -> None:
    with pytest.raises(DataValidationError, match="is not JSON"):
        new_event(EventType.PIPELINE_FAILED, {**full_detail(EventType.PIPELINE_FAILED), "when": datetime.now(UTC)})
    with pytest.raises(DataValidationError, match="is not JSON"):
        new_event(EventType.PIPELINE_FAILED, {**full_detail(EventType.PIPELINE_FAILED), "score": float("nan")})
    with pytest.raises(DataValidationError, match="'event_id' is reserved"):
        new_event(EventType.PIPELINE_FAILED, {**full_detail(EventType.PIPELINE_FAILED), EVENT_ID_KEY: "x"})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "is not an event: expected a JSON object"),
        ({"id": "1", "time": "2026-01-31T13:05:09Z", "source": "skyops", "detail": {}}, "type missing"),
        (
            {"id": "1", "time": "2026-01-31T13:05:09Z", "source": "skyops", "type": "drift.maybe", "detail": {}},
            "'drift.maybe' is not a valid EventType",
        ),
        ({"id": "1", "time": "2026-01-31T13:05:09", "source": "skyops", "type": "pipeline.failed", "detail": {}}, "has no time zone"),
        ({"id": "1", "time": "2026-01-31T13:05:09Z", "source": "skyops", "type": "pipeline.failed", "detail": {}}, "missing run_id"),
    ],
)
def test_reading_back_a_bad_event_names_where_and_what(data: object, message: str) -> None:
    with pytest.raises(DataValidationError, match=rf"^events\.jsonl:7.*{message}"):
        Event.from_json(data, "events.jsonl:7")


def test_the_eventbridge_entry_carries_source_type_detail_with_the_event_id_and_time() -> None:
    event = new_event(EventType.DRIFT_DETECTED, full_detail(EventType.DRIFT_DETECTED))
    entry = to_eventbridge_entry(event, "skyops-bus")
    assert entry["Source"] == "skyops"
    assert entry["DetailType"] == "drift.detected"
    assert entry["EventBusName"] == "skyops-bus"
    assert entry["Time"] == event.time
    assert json.loads(entry["Detail"]) == {**event.detail, EVENT_ID_KEY: event.id}


def test_the_shipped_rule_file_is_what_the_code_says() -> None:
    """infra/eventbridge/rule-patterns.json is generated from RULES; regenerate it when they change:
    python -c "import json; from skyops.monitoring.events import rule_file; print(json.dumps(rule_file(), indent=2))" > infra/eventbridge/rule-patterns.json"""
    assert json.loads((ROOT / RULE_FILE).read_text()) == rule_file()


def test_every_type_is_routed_by_a_rule_besides_the_catch_all() -> None:
    routed = {t for name, p in rule_patterns().items() if name != "skyops-all" for t in p["detail-type"]}
    assert routed == {t.value for t in EventType}
    assert all(p["source"] == ["skyops"] for p in rule_patterns().values())


def test_times_are_utc_with_milliseconds() -> None:
    from datetime import timedelta, timezone

    assert format_time(datetime(2026, 1, 31, 15, 5, 9, 999999, tzinfo=timezone(timedelta(hours=2)))) == "2026-01-31T13:05:09.999Z"
