"""Where events go: the local event log (always), a webhook and EventBridge (when configured).

    publisher = publisher_from_env(settings)          # the log, plus $SKYOPS_EVENT_WEBHOOK / $SKYOPS_EVENT_BUS
    report = publisher.publish([event])               # the log first; then every other sink
    for failed in report.failed: print(failed.line())

The local log (`<state>/events/events.jsonl`, jsonl.py: whole lines under a lock, rotated by size) is
the record of truth and is written first: an event the log could not take is sent nowhere
(StateError), and a sink that fails afterwards never takes the logged record with it. Every failed
delivery is appended to `<state>/events/deliveries.jsonl` (event id, sink, attempts, error) and
returned, so the caller prints it: nothing is silent, and a receiver can be re-fed from the log.

Webhook: an HTTP(S) POST of the event's JSON (`Content-Type: application/json`, headers
`X-Skyops-Event-Id` / `X-Skyops-Event-Type` for receivers that de-duplicate), `timeout` seconds per
attempt; a connection error, a timeout, a 429 or a 5xx is retried up to `retries` times after
`backoff * 2**n` seconds (at most 30 s); any other answer than 2xx is final. Messages name the
webhook by scheme and host only: its path often carries a secret token.

EventBridge: PutEvents through the profile guard (skyops.aws.session: profile 'ab' unless configured),
batched within PutEvents' limits (10 entries, entries totalling under 256 KB as EventBridge counts
them); an entry too large by itself fails alone; entries failed with a transient code are retried
like the webhook; the others are reported with EventBridge's code and message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from skyops.errors import ConfigError
from skyops.monitoring.events import Event, format_time, to_eventbridge_entry
from skyops.monitoring.jsonl import JsonlLog
from skyops.settings import Settings

EVENTS_DIR = "events"
EVENT_LOG = "events.jsonl"
DELIVERY_LOG = "deliveries.jsonl"
WEBHOOK_ENV = "SKYOPS_EVENT_WEBHOOK"
WEBHOOK_TIMEOUT_ENV = "SKYOPS_EVENT_WEBHOOK_TIMEOUT"
WEBHOOK_RETRIES_ENV = "SKYOPS_EVENT_WEBHOOK_RETRIES"
BUS_ENV = "SKYOPS_EVENT_BUS"
MAX_BACKOFF_S = 30.0
PUT_EVENTS_MAX_ENTRIES = 10
PUT_EVENTS_MAX_BYTES = 256 * 1024  # the entries of one request total less than this
TRANSIENT_CODES = frozenset({"InternalFailure", "InternalException", "ThrottlingException", "ServiceUnavailable"})


@dataclass(frozen=True)
class Delivery:
    """How one event fared at one sink."""

    sink: str  # "log", "webhook https://host", "eventbridge bus-name"
    event_id: str
    ok: bool
    attempts: int = 1
    error: str = ""

    def line(self) -> str:
        return f"{self.sink}: event {self.event_id} " + (
            "delivered" if self.ok else f"not delivered after {self.attempts} attempt(s): {self.error}"
        )


class Sink(Protocol):
    name: str

    def send(self, events: Sequence[Event]) -> list[Delivery]: ...


@dataclass(frozen=True)
class PublishReport:
    events: list[Event]
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def failed(self) -> list[Delivery]:
        return [d for d in self.deliveries if not d.ok]


class Publisher:
    """The local log, then every other sink. See the module docstring.

    Args:
        events_dir: `<state>/events`.
        sinks: the sinks besides the log (webhook, EventBridge), in order.
    """

    def __init__(self, events_dir: Path, sinks: Sequence[Sink] = (), *, max_bytes: int | None = None, keep: int | None = None) -> None:
        limits = {k: v for k, v in (("max_bytes", max_bytes), ("keep", keep)) if v is not None}
        self.log = JsonlLog(events_dir / EVENT_LOG, **limits)
        self.deliveries = JsonlLog(events_dir / DELIVERY_LOG, **limits)
        self.sinks = list(sinks)

    def publish(self, events: Sequence[Event]) -> PublishReport:
        """Log `events` (StateError when the log cannot take them: then nothing is sent), then send them to every sink."""
        events = list(events)
        self.log.append(*(e.to_json() for e in events))
        deliveries: list[Delivery] = []
        for sink in self.sinks:
            deliveries += sink.send(events)
        failed = [d for d in deliveries if not d.ok]
        if failed:
            now = format_time(datetime.now(UTC))
            self.deliveries.append(
                *({"time": now, "event_id": d.event_id, "sink": d.sink, "attempts": d.attempts, "error": d.error} for d in failed)
            )
        return PublishReport(events, deliveries)

    def logged(self) -> Iterator[Event]:
        """Every event of the local log, oldest first."""
        for where, data in self.log.read():
            yield Event.from_json(data, where)


def redact(url: str) -> str:
    """A URL shown without its path, query or credentials: "https://hooks.example.com/…"."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def check_webhook_url(url: str, where: str = WEBHOOK_ENV) -> str:
    """`url` when it is an http(s) URL with a host; ConfigError otherwise (the URL itself is never echoed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{where} is not an http(s) URL with a host (scheme {parts.scheme or 'none'!r})",
            hint="e.g. SKYOPS_EVENT_WEBHOOK=https://hooks.example.com/skyops",
        )
    return url


class WebhookSink:
    """POSTs each event's JSON to `url`; see the module docstring for retries and what is final.

    Args:
        sleep: how backoff waits (tests pass a recorder instead of time.sleep).
    """

    def __init__(
        self, url: str, *, timeout: float = 5.0, retries: int = 3, backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.url = check_webhook_url(url)
        self.name = f"webhook {redact(url)}"
        self.timeout, self.retries, self.backoff, self.sleep = timeout, retries, backoff, sleep

    def send(self, events: Sequence[Event]) -> list[Delivery]:
        import httpx  # ~100 ms: only when a webhook is configured

        import skyops

        headers = {"Content-Type": "application/json", "User-Agent": f"skyops/{skyops.__version__}"}
        with httpx.Client(timeout=self.timeout, headers=headers, follow_redirects=False) as client:
            return [self._deliver(client, event) for event in events]

    def _deliver(self, client: Any, event: Event) -> Delivery:
        import httpx

        body = event.line().rstrip(b"\n")
        headers = {"X-Skyops-Event-Id": event.id, "X-Skyops-Event-Type": str(event.type)}
        error = ""
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self.sleep(min(self.backoff * 2 ** (attempt - 2), MAX_BACKOFF_S))
            try:
                response = client.post(self.url, content=body, headers=headers)
            except httpx.TimeoutException:
                error = f"no answer within {self.timeout:g} s"
                continue
            except httpx.TransportError as e:
                error = f"cannot connect ({type(e).__name__})"
                continue
            if 200 <= response.status_code < 300:
                return Delivery(self.name, event.id, True, attempt)
            error = f"HTTP {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                return Delivery(self.name, event.id, False, attempt, error + " (not retried: the receiver refused the event)")
        return Delivery(self.name, event.id, False, self.retries + 1, error)


def entry_size(entry: Mapping[str, Any]) -> int:
    """An entry's size as EventBridge counts it: Time 14 bytes, then UTF-8 bytes of Source, DetailType, Detail, Resources."""
    size = 14 if entry.get("Time") is not None else 0
    size += sum(len(str(entry.get(k, "")).encode()) for k in ("Source", "DetailType", "Detail"))
    return size + sum(len(r.encode()) for r in entry.get("Resources", []))


def batches(entries: Sequence[dict[str, Any]]) -> Iterator[list[int]]:
    """Indexes of `entries` grouped into PutEvents requests (at most 10 entries, under 256 KB); an entry too
    large by itself is its own group (EventBridge refuses it alone)."""
    group: list[int] = []
    total = 0
    for i, entry in enumerate(entries):
        size = entry_size(entry)
        if group and (len(group) == PUT_EVENTS_MAX_ENTRIES or total + size >= PUT_EVENTS_MAX_BYTES):
            yield group
            group, total = [], 0
        group.append(i)
        total += size
    if group:
        yield group


class EventBridgeSink:
    """PutEvents to `bus` through a client the caller makes (the profile guard's). See the module docstring.

    Args:
        bus: the event bus name or ARN ("default" for the account's default bus).
        client: makes the `events` client when the first event is sent (e.g. `AwsGuard().client("events")`).
    """

    def __init__(
        self, bus: str, client: Callable[[], Any], *, retries: int = 2, backoff: float = 0.5, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.bus = bus
        self.name = f"eventbridge {bus}"
        self._client_factory = client
        self.retries, self.backoff, self.sleep = retries, backoff, sleep

    def send(self, events: Sequence[Event]) -> list[Delivery]:
        from skyops.errors import SkyopsError

        events = list(events)
        entries = [to_eventbridge_entry(e, self.bus) for e in events]
        results: dict[int, Delivery] = {}
        try:
            client = self._client_factory()
        except SkyopsError as e:  # the guard refused (profile, credentials): nothing was sent
            return [Delivery(self.name, ev.id, False, 0, f"{e.message} ({e.hint})" if e.hint else e.message) for ev in events]
        for group in batches(entries):
            if len(group) == 1 and entry_size(entries[group[0]]) >= PUT_EVENTS_MAX_BYTES:
                size = entry_size(entries[group[0]])
                results[group[0]] = Delivery(self.name, events[group[0]].id, False, 0, f"entry of {size} bytes is over PutEvents' 256 KB")
                continue
            self._put(client, entries, events, group, results)
        return [results[i] for i in range(len(events))]

    def _put(self, client: Any, entries: list[dict[str, Any]], events: list[Event], group: list[int], results: dict[int, Delivery]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        pending = list(group)
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                self.sleep(min(self.backoff * 2 ** (attempt - 2), MAX_BACKOFF_S))
            try:
                response = client.put_events(Entries=[entries[i] for i in pending])
            except ClientError as e:
                error = e.response.get("Error", {})
                why = f"PutEvents failed: {error.get('Code', 'error')}: {error.get('Message', e)}"
                for i in pending:
                    results[i] = Delivery(self.name, events[i].id, False, attempt, why)
                if error.get("Code") not in TRANSIENT_CODES:
                    return
                continue
            except BotoCoreError as e:
                for i in pending:
                    results[i] = Delivery(self.name, events[i].id, False, attempt, f"PutEvents failed: {e}")
                continue
            retry = []
            for i, answer in zip(pending, response.get("Entries", []), strict=False):
                code = answer.get("ErrorCode")
                if not code:
                    results[i] = Delivery(self.name, events[i].id, True, attempt)
                    continue
                results[i] = Delivery(self.name, events[i].id, False, attempt, f"{code}: {answer.get('ErrorMessage', '')}")
                if code in TRANSIENT_CODES:
                    retry.append(i)
            for i in pending[len(response.get("Entries", [])) :]:  # fewer answers than entries: never seen, but never "delivered"
                results[i] = Delivery(self.name, events[i].id, False, attempt, "PutEvents returned no result for this entry")
            pending = retry
            if not pending:
                return


def _number(environ: Mapping[str, str], name: str, default: float, kind: type[int] | type[float]) -> Any:
    text = environ.get(name, "")
    if not text:
        return kind(default)
    try:
        value = kind(text)
    except ValueError:
        value = -1
    if value < 0 or value != value:  # negative or nan
        raise ConfigError(
            f"{name}={text[:20]!r} is not a {'whole ' if kind is int else ''}number >= 0", hint=f"e.g. {name}={kind(default)}"
        )
    return value


def publisher_from_env(settings: Settings, environ: Mapping[str, str] | None = None) -> Publisher:
    """The log under `settings.state_dir`, plus the webhook of $SKYOPS_EVENT_WEBHOOK and the EventBridge bus of
    $SKYOPS_EVENT_BUS when they are set ($SKYOPS_EVENT_WEBHOOK_TIMEOUT seconds, default 5; _RETRIES, default 3).

    Raises:
        ConfigError: a malformed URL or number (before anything is logged or sent).
    """
    env = os.environ if environ is None else environ
    sinks: list[Sink] = []
    if url := env.get(WEBHOOK_ENV, ""):
        sinks.append(
            WebhookSink(url, timeout=_number(env, WEBHOOK_TIMEOUT_ENV, 5.0, float), retries=_number(env, WEBHOOK_RETRIES_ENV, 3, int))
        )
    if bus := env.get(BUS_ENV, ""):
        from skyops.aws.session import AwsGuard

        guard = AwsGuard.from_settings(settings)
        sinks.append(EventBridgeSink(bus, lambda: guard.client("events")))
    return Publisher(settings.state_dir / EVENTS_DIR, sinks)
