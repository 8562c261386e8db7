"""The sinks: the local event log (whole lines from many processes, rotation, a crash or a full disk), a real webhook on
127.0.0.1 (retries, timeouts, what is final), and EventBridge on a real moto server through the profile guard."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from skyops.errors import ConfigError
from skyops.monitoring.events import EVENT_ID_KEY, REQUIRED, Event, EventType, new_event, rule_patterns
from skyops.monitoring.jsonl import JsonlLog
from skyops.monitoring.sinks import (
    DELIVERY_LOG,
    EVENT_LOG,
    PUT_EVENTS_MAX_BYTES,
    EventBridgeSink,
    Publisher,
    WebhookSink,
    batches,
    entry_size,
    publisher_from_env,
)
from skyops.settings import Settings
from tests.aws.conftest import MotoServer
from tests.monitoring.loop_support import Webhook


def event(kind: EventType = EventType.PIPELINE_FAILED, **extra: Any) -> Event:
    return new_event(kind, {**{k: f"{k}-value" for k in REQUIRED[kind]}, **extra})


# --- the local log -------------------------------------------------------------------------------------------------


def _append_many(path: str, writer: int, count: int) -> None:
    log = JsonlLog(Path(path), max_bytes=4000, keep=1000)
    for n in range(count):
        log.append({"writer": writer, "n": n, "pad": "x" * (n % 50)})


def test_appends_from_several_processes_at_once_are_whole_lines_none_lost_across_rotations(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), w, 150)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    log = JsonlLog(path, max_bytes=4000, keep=1000)
    assert len(log.files()) > 5  # it rotated, under contention
    records = [data for _, data in log.read()]
    assert sorted((r["writer"], r["n"]) for r in records) == [(w, n) for w in range(4) for n in range(150)]
    for w in range(4):  # oldest first: each writer's records in its own order
        assert [r["n"] for r in records if r["writer"] == w] == list(range(150))
    assert all(f.stat().st_size <= 4000 for f in log.files())


def test_rotation_keeps_the_newest_files_and_reads_oldest_first(tmp_path: Path) -> None:
    log = JsonlLog(tmp_path / "e.jsonl", max_bytes=100, keep=2)
    for n in range(12):
        log.append({"n": n, "pad": "y" * 30})  # ~45 bytes: two lines per file
    assert [p.name for p in log.files()] == ["e.jsonl.2", "e.jsonl.1", "e.jsonl"]
    assert [d["n"] for _, d in log.read()] == [6, 7, 8, 9, 10, 11]


def test_a_line_cut_by_a_crash_is_never_read_and_the_next_append_removes_it(tmp_path: Path) -> None:
    log = JsonlLog(tmp_path / "e.jsonl")
    log.append({"n": 1})
    with log.path.open("ab") as f:
        f.write(b'{"n": 2, "half')  # a writer killed mid-write
    assert [d for _, d in log.read()] == [{"n": 1}]
    log.append({"n": 3})
    assert log.path.read_bytes() == b'{"n":1}\n{"n":3}\n'


def test_a_damaged_whole_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    log = JsonlLog(tmp_path / "e.jsonl")
    log.append({"n": 1})
    with log.path.open("ab") as f:
        f.write(b"not json\n")
    with pytest.raises(Exception, match=rf"{log.path}:2 is not a JSON line"):
        list(log.read())


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from skyops.errors import StateError
from skyops.monitoring.jsonl import JsonlLog
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # a write past the limit fails with EFBIG, as on a full disk
log = JsonlLog(Path(sys.argv[1]))
log.append({"n": 1})
resource.setrlimit(resource.RLIMIT_FSIZE, (log.path.stat().st_size + 10, resource.RLIM_INFINITY))
try:
    log.append({"n": 2, "pad": "z" * 100})
except StateError as e:
    print(e.message)
"""


def test_a_write_the_disk_refuses_leaves_no_half_line_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(FULL_DISK), str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"cannot append to {path}: File too large"
    assert path.read_bytes() == b'{"n":1}\n'  # the 10 bytes that fitted were cut back


# --- publishing: the log first, then the sinks ---------------------------------------------------------------------


def test_a_failing_webhook_never_loses_the_logged_event_and_the_failure_is_recorded(tmp_path: Path, webhook: Webhook) -> None:
    webhook.answers = [500, 502, 503, 500]
    waits: list[float] = []
    publisher = Publisher(tmp_path, [WebhookSink(webhook.url, retries=3, backoff=0.5, sleep=waits.append)])
    e = event()
    report = publisher.publish([e])
    assert [x.id for x in publisher.logged()] == [e.id]
    assert len(webhook.received) == 4 and waits == [0.5, 1.0, 2.0]
    [failed] = report.failed
    assert (failed.sink, failed.attempts, failed.error) == (
        "webhook http://127.0.0.1:" + webhook.url.split(":")[2].split("/")[0] + "/…",
        4,
        "HTTP 500",
    )
    [record] = [json.loads(line) for line in (tmp_path / DELIVERY_LOG).read_text().splitlines()]
    assert (record["event_id"], record["attempts"], record["error"]) == (e.id, 4, "HTTP 500")
    assert "secret-token-123" not in failed.line() + json.dumps(record)


def test_the_webhook_is_retried_until_it_answers_and_receives_the_event_itself(tmp_path: Path, webhook: Webhook) -> None:
    webhook.answers = [503, 429]
    publisher = Publisher(tmp_path, [WebhookSink(webhook.url, sleep=lambda s: None)])
    e = event(EventType.DRIFT_DETECTED)
    [delivery] = publisher.publish([e]).deliveries
    assert (delivery.ok, delivery.attempts) == (True, 3)
    assert all(r.json() == e.to_json() for r in webhook.received)
    last = webhook.received[-1]
    assert (last.path, last.headers["content-type"], last.headers["x-skyops-event-id"], last.headers["x-skyops-event-type"]) == (
        "/hooks/secret-token-123",
        "application/json",
        e.id,
        "drift.detected",
    )
    assert not (tmp_path / DELIVERY_LOG).exists()


def test_a_refusal_by_the_receiver_is_final(tmp_path: Path, webhook: Webhook) -> None:
    webhook.answers = [400]
    [delivery] = Publisher(tmp_path, [WebhookSink(webhook.url, sleep=lambda s: None)]).publish([event()]).deliveries
    assert (delivery.ok, delivery.attempts, len(webhook.received)) == (False, 1, 1)
    assert delivery.error == "HTTP 400 (not retried: the receiver refused the event)"


def test_a_webhook_that_does_not_answer_in_time_times_out_each_attempt(tmp_path: Path, webhook: Webhook) -> None:
    webhook.delay = 1.0
    [delivery] = Publisher(tmp_path, [WebhookSink(webhook.url, timeout=0.2, retries=1, sleep=lambda s: None)]).publish([event()]).deliveries
    assert (delivery.ok, delivery.attempts, delivery.error) == (False, 2, "no answer within 0.2 s")


def test_a_webhook_nobody_listens_on_is_a_connection_failure(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    [delivery] = (
        Publisher(tmp_path, [WebhookSink(f"http://127.0.0.1:{port}/x", retries=1, sleep=lambda s: None)]).publish([event()]).deliveries
    )
    assert (delivery.ok, delivery.attempts, delivery.error) == (False, 2, "cannot connect (ConnectError)")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SKYOPS_EVENT_WEBHOOK": "ftp://hooks.example.com/secret"},
            r"^SKYOPS_EVENT_WEBHOOK is not an http\(s\) URL with a host \(scheme 'ftp'\)$",
        ),
        ({"SKYOPS_EVENT_WEBHOOK": "hooks.example.com/secret"}, r"scheme 'none'"),
        (
            {"SKYOPS_EVENT_WEBHOOK": "https://h/secret", "SKYOPS_EVENT_WEBHOOK_RETRIES": "2.5"},
            r"SKYOPS_EVENT_WEBHOOK_RETRIES='2.5' is not a whole number >= 0",
        ),
        (
            {"SKYOPS_EVENT_WEBHOOK": "https://h/secret", "SKYOPS_EVENT_WEBHOOK_TIMEOUT": "nan"},
            r"SKYOPS_EVENT_WEBHOOK_TIMEOUT='nan' is not a number >= 0",
        ),
    ],
)
def test_bad_sink_settings_are_refused_without_echoing_the_url(project: Settings, env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        publisher_from_env(project, env)
    assert "secret" not in caught.value.message


# --- EventBridge ---------------------------------------------------------------------------------------------------


def test_batches_respect_the_entry_count_and_the_request_size() -> None:
    small = [{"Source": "skyops", "DetailType": "t", "Detail": "{}"} for _ in range(23)]
    assert [len(b) for b in batches(small)] == [10, 10, 3]
    big = [{"Time": 1, "Source": "skyops", "DetailType": "t", "Detail": "x" * 100_000} for _ in range(5)]
    assert entry_size(big[0]) == 14 + 6 + 1 + 100_000
    assert [len(b) for b in batches(big)] == [2, 2, 1]
    assert sum(entry_size(big[i]) for i in next(batches(big))) < PUT_EVENTS_MAX_BYTES


def _events_client(moto: MotoServer) -> Any:
    from skyops.aws.session import AwsGuard

    return AwsGuard().client("events")


def test_put_events_on_moto_batches_and_rules_route_by_the_shipped_patterns(project: Settings, moto: MotoServer) -> None:
    from skyops.aws.session import AwsGuard

    guard = AwsGuard()
    events_client, sqs = guard.client("events"), guard.client("sqs")
    events_client.create_event_bus(Name="skyops")
    queues = {}
    for name, pattern in rule_patterns().items():
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events_client.put_rule(Name=name, EventBusName="skyops", EventPattern=json.dumps(pattern))
        events_client.put_targets(Rule=name, EventBusName="skyops", Targets=[{"Id": "q", "Arn": arn}])
        queues[name] = url
    sent = [event(kind) for kind in EventType for _ in range(3)]  # 18 events
    sent.append(event(EventType.RETRAIN_DECIDED, decision="start"))
    sent.append(event(EventType.RETRAIN_DECIDED, decision="refused"))
    before = len(moto.requests)
    report = Publisher(project.state_dir / "events", [EventBridgeSink("skyops", lambda: guard.client("events"))]).publish(sent)
    assert all(d.ok for d in report.deliveries) and len(report.deliveries) == 20
    assert len(moto.requests) - before == 2  # 20 entries: two PutEvents requests

    def received(name: str) -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queues[name], MaxNumberOfMessages=10).get("Messages", [])
        messages += sqs.receive_message(QueueUrl=queues[name], MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    drift = received("skyops-drift-detected")
    assert [m["detail-type"] for m in drift] == ["drift.detected"] * 3
    assert {m["detail"][EVENT_ID_KEY] for m in drift} == {e.id for e in sent if e.type is EventType.DRIFT_DETECTED}
    assert sorted(m["detail-type"] for m in received("skyops-approval")) == ["approval.decided"] * 3 + ["approval.requested"] * 3
    assert [m["detail"]["decision"] for m in received("skyops-retrain-started")] == ["start"]
    assert len(received("skyops-all")) == 20


def test_a_missing_bus_fails_every_entry_with_the_service_answer_and_the_log_keeps_them(project: Settings, moto: MotoServer) -> None:
    from skyops.aws.session import AwsGuard

    guard = AwsGuard()
    publisher = Publisher(
        project.state_dir / "events", [EventBridgeSink("no-such-bus", lambda: guard.client("events"), sleep=lambda s: None)]
    )
    sent = [event(), event()]
    report = publisher.publish(sent)
    assert [(d.ok, d.event_id) for d in report.deliveries] == [(False, sent[0].id), (False, sent[1].id)]
    assert report.deliveries[0].error.startswith("PutEvents failed: ResourceNotFoundException: ")
    assert [e.id for e in publisher.logged()] == [e.id for e in sent]


def test_an_entry_over_256_kb_fails_alone_before_any_request(project: Settings, moto: MotoServer) -> None:
    from skyops.aws.session import AwsGuard

    guard = AwsGuard()
    sink = EventBridgeSink("default", lambda: guard.client("events"))
    huge, fine = event(blob="h" * PUT_EVENTS_MAX_BYTES), event()
    before = len(moto.requests)
    results = Publisher(project.state_dir / "events", [sink]).publish([huge, fine]).deliveries
    assert [d.ok for d in results] == [False, True]
    assert results[0].error.endswith("bytes is over PutEvents' 256 KB")
    assert len(moto.requests) - before == 1


def test_a_refused_profile_sends_nothing_and_says_why(project: Settings, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "other")
    monkeypatch.setenv("SKYOPS_EVENT_BUS", "default")
    report = publisher_from_env(project).publish([event()])
    [failed] = report.failed
    assert failed.sink == "eventbridge default"
    assert "$AWS_PROFILE=other names another profile than 'ab'" in failed.error
    assert moto.requests == []


def test_failed_entries_are_reported_with_their_code_and_transient_ones_retried() -> None:
    """moto never fails single entries, so this one case uses botocore's own Stubber for PutEvents' answers."""
    import botocore.session
    from botocore.stub import ANY, Stubber

    client = botocore.session.get_session().create_client(
        "events", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    first, second, third = event(), event(), event()
    waits: list[float] = []
    with Stubber(client) as stub:
        answer = [
            {"EventId": "a"},
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"},
            {"ErrorCode": "InvalidArgument", "ErrorMessage": "bad"},
        ]
        stub.add_response("put_events", {"FailedEntryCount": 2, "Entries": answer}, {"Entries": [ANY, ANY, ANY]})
        stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "b"}]}, {"Entries": [ANY]})
        results = EventBridgeSink("default", lambda: client, sleep=waits.append).send([first, second, third])
        stub.assert_no_pending_responses()
    assert [(d.ok, d.attempts, d.error) for d in results] == [(True, 1, ""), (True, 2, ""), (False, 1, "InvalidArgument: bad")]
    assert waits == [0.5]


def test_the_environment_configures_webhook_and_bus(project: Settings, webhook: Webhook) -> None:
    publisher = publisher_from_env(project, {"SKYOPS_EVENT_WEBHOOK": webhook.url, "SKYOPS_EVENT_BUS": "skyops"})
    assert [s.name for s in publisher.sinks] == [
        f"webhook http://127.0.0.1:{webhook.url.split(':')[2].split('/')[0]}/…",
        "eventbridge skyops",
    ]
    assert publisher.log.path == project.state_dir / "events" / EVENT_LOG
