"""Events emitted where the actions happen: the governed registry's observer (the CLI's approve, reject, promote,
rollback, deploy; a registration pending approval), a failed `skyops run`, and a run that registered a version."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from skyops.monitoring.notify import governed_events, notify, registry_observer, run_events
from skyops.pipeline.lineage import RunRecord, RunStatus, StepRecord, StepStatus
from skyops.registry.governed import Governed, GovernedRegistry
from skyops.registry.roles import Action
from skyops.settings import load_settings

# The registry tests' project (a real MLflow store shared by the session, the team's roles; SKYOPS_PROJECT_DIR and
# SKYOPS_STATE_DIR point at them): it replaces this folder's `project` fixture in this module.
from tests.registry.conftest import project, register_version, store_dir  # noqa: F401

from .conftest import SINK_ENV, Webhook, cli


def events_of(state_dir: Path, model: str) -> list[dict[str, Any]]:
    path = state_dir / "events" / "events.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    return [e for e in lines if e["detail"].get("model") == model]


@pytest.fixture
def registry_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:  # noqa: F811  (the imported fixture)
    """(project folder, state folder with the MLflow store), no event sink besides the log."""
    for name in SINK_ENV:
        monkeypatch.delenv(name, raising=False)
    return project, Path(os.environ["SKYOPS_STATE_DIR"])


@pytest.fixture
def model(request: pytest.FixtureRequest) -> str:
    """A registered-model name of this test's own (the store is shared by the session)."""
    return f"events-{request.node.name[5:40].replace('_', '-')}"


def test_the_cli_publishes_approval_and_deployment_events(registry_project: tuple[Path, Path], capsys: Any, model: str) -> None:
    _, state = registry_project
    first, second = register_version(state, model, 0.30), register_version(state, model, 0.35)
    for version in (first, second):
        assert cli(capsys, "models", "approve", str(version), "--as", "alice", "--reason", "looks good", "--model", model)[0] == 0
        assert cli(capsys, "models", "promote", str(version), "--as", "alice", "--model", model)[0] == 0
    assert cli(capsys, "models", "rollback", "--as", "alice", "--reason", "false positives", "--model", model)[0] == 0
    assert cli(capsys, "models", "approve", "99", "--as", "alice", "--model", model)[0] == 2  # refused: no event
    assert cli(capsys, "models", "promote", str(first), "--as", "bob", "--model", model)[0] == 2  # denied: no event
    events = events_of(state, model)
    summary = [(e["type"], e["detail"].get("action") or e["detail"].get("decision"), e["detail"]["version"]) for e in events]
    assert summary == [
        ("approval.decided", "Approved", first),
        ("deployment.changed", "promote", first),
        ("approval.decided", "Approved", second),
        ("deployment.changed", "promote", second),
        ("deployment.changed", "rollback", first),
    ]
    assert events[0]["detail"].items() >= {"actor": "alice", "reason": "looks good", "before": "PendingManualApproval"}.items()
    assert [e["detail"]["previous"] for e in events if e["type"] == "deployment.changed"] == [None, first, second]


def test_deploy_apply_publishes_a_deployment_event(registry_project: tuple[Path, Path], capsys: Any, model: str) -> None:
    folder, state = registry_project
    version = register_version(state, model, 0.3, approve=True)
    (folder / "deploy/environments/production.yaml").write_text(
        f"environment: production\nmodel: {model}\nalias: champion\nversion: {version}\n"
    )
    code, _, err = cli(capsys, "deploy", "apply", "--env", "production", "--as", "alice")
    assert code == 0, err
    [deployed] = [e for e in events_of(state, model) if e["type"] == "deployment.changed"]
    assert (
        deployed["detail"].items()
        >= {"action": "deploy", "version": version, "environment": "production", "alias": "champion", "actor": "alice"}.items()
    )


def test_a_registration_pending_approval_is_an_approval_request(registry_project: tuple[Path, Path], model: str) -> None:
    _, state = registry_project
    from skyops.registry.models import ModelRegistry
    from skyops.registry.roles import Governance
    from skyops.training.tracking import TrackingStore

    version = register_version(state, model, 0.3)  # registered by bob, without an observer
    seen: list[Governed] = []
    registry = GovernedRegistry(
        ModelRegistry(TrackingStore.local(state), model), Governance(state / "roles", state / "audit.log"), observer=seen.append
    )
    registry.reject("alice", version, reason="blurry")
    assert [(g.action, g.actor, g.model, g.details["version"], g.details["to"]) for g in seen] == [
        (Action.REJECT, "alice", model, version, "Rejected")
    ]
    [decided] = governed_events(seen[0])
    assert decided.detail["decision"] == "Rejected"
    registered = Governed(Action.REGISTER, "bob", model, "run 1", {"version": 7, "created": True, "status": "PendingManualApproval"})
    [requested] = governed_events(registered)
    assert (requested.type, requested.detail["version"], requested.detail["actor"]) == ("approval.requested", 7, "bob")
    assert (
        governed_events(Governed(Action.REGISTER, "bob", model, "", {"version": 7, "created": False, "status": "PendingManualApproval"}))
        == []
    )
    assert governed_events(Governed(Action.REGISTER, "bob", model, "", {"version": 8, "created": True, "status": "Rejected"})) == []


FAILING = """\
name: failing
catalog: tests.pipeline.toysteps
steps:
  - {name: first, step: node, config: {tag: first}}
  - {name: broken, step: node, config: {tag: broken, fail: true}, inputs: {a: first.out}}
"""


def test_a_failed_run_publishes_pipeline_failed_to_the_log_and_the_webhook(
    tmp_path: Path, capsys: Any, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "failing.yaml").write_text(FAILING)
    for name in SINK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SKYOPS_EVENT_WEBHOOK", webhook.url)
    code, _, err = cli(capsys, "run", "failing")
    assert code == 1 and "failed at step 'broken'" in err
    [logged] = [json.loads(line) for line in (tmp_path / "state" / "events" / "events.jsonl").read_text().splitlines()]
    assert logged["type"] == "pipeline.failed"
    assert logged["detail"].items() >= {"pipeline": "failing", "status": "failed", "failed_steps": ["broken"]}.items()
    assert logged["detail"]["resume_command"].startswith("skyops run")
    assert [r.json() for r in webhook.received] == [logged]
    webhook.answers = [500] * 10
    monkeypatch.setenv("SKYOPS_EVENT_WEBHOOK_RETRIES", "0")
    code, _, err = cli(capsys, "run", "failing")  # the webhook fails: the run's own error and exit code stand
    assert code == 1
    assert "warning: webhook http://127.0.0.1:" in err and "not delivered after 1 attempt(s): HTTP 500" in err
    assert err.rstrip().splitlines()[-2].startswith("error: run ")
    monkeypatch.setenv("SKYOPS_EVENT_WEBHOOK", "not a url")
    code, _, err = cli(capsys, "run", "failing")  # a bad setting: a warning, the run's error stands
    assert code == 1 and "warning: 1 event(s) (pipeline.failed) not published: SKYOPS_EVENT_WEBHOOK is not an http(s) URL" in err


def test_a_run_that_registered_a_version_pending_approval_announces_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(tmp_path / "state"))
    for name in SINK_ENV:
        monkeypatch.delenv(name, raising=False)
    done, cached = tmp_path / "done", tmp_path / "cached"
    for folder, version in ((done, 4), (cached, 3)):
        folder.mkdir()
        registration = {
            "model": "drone-detector",
            "version": version,
            "status": "PendingManualApproval",
            "created": True,
            "registered_by": {"user": "bob"},
        }
        (folder / "registration.json").write_text(json.dumps(registration))
    steps = {
        "register": StepRecord("register", "register", StepStatus.DONE, outputs={"registration": {"path": str(done)}}),
        "old": StepRecord("old", "register", StepStatus.CACHED, outputs={"registration": {"path": str(cached)}}),
    }
    record = RunRecord("r1", "drone-detection", {}, "bob", "host", 0.0, steps, RunStatus.SUCCEEDED)
    [requested] = run_events(record)
    assert (requested.type, requested.detail["version"], requested.detail["actor"], requested.detail["run_id"]) == (
        "approval.requested",
        4,
        "bob",
        "r1",
    )
    report = notify(load_settings(), [requested])
    assert report is not None and report.deliveries == []
    assert json.loads((tmp_path / "state" / "events" / "events.jsonl").read_text())["id"] == requested.id


def test_notify_turns_a_log_that_cannot_be_written_into_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    (state / "events").mkdir(parents=True)
    (state / "events" / "events.jsonl").mkdir()  # a folder where the log should be: every append fails
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(state))
    warnings: list[str] = []
    observe = registry_observer(load_settings(), warn=warnings.append)
    observe(Governed(Action.APPROVE, "alice", "m", "ok", {"version": 1, "from": "PendingManualApproval", "to": "Approved"}))
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: 1 event(s) (approval.decided) not published: cannot append to ")
    assert os.path.isdir(state / "events" / "events.jsonl")
