"""Events emitted where the actions happen: a failed run, a registration waiting for approval, an approval, a deployment.

    governed = GovernedRegistry(store, governance, observer=registry_observer(settings))   # the CLI's registries
    notify(settings, run_events(record))                                                    # `skyops run`, when it ends

These are side effects of actions that already happened: `notify` never raises for a sink. A failed
delivery, or a local event log that cannot take the event (a full disk), is one `warning:` line on
stderr (and a failed delivery a line in `<state>/events/deliveries.jsonl`, sinks.py); the action's own
outcome and exit code stand. A malformed sink setting ($SKYOPS_EVENT_WEBHOOK, ...) is a warning here
too, for the same reason; `skyops monitor alert`, whose purpose is the event, refuses it instead.

Which actions become which events:
    register (created, PendingManualApproval)  -> approval.requested
    approve, reject                            -> approval.decided ("decision": Approved | Rejected)
    promote, rollback, deploy                  -> deployment.changed ("action": promote | rollback | deploy)
    a local run that ended failed               -> pipeline.failed
    a local run whose step registered a new version pending approval -> approval.requested (the register
        step runs in its own process without an observer; the run that started it reports it)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyops.errors import SkyopsError
from skyops.monitoring.events import Event, EventType, new_event
from skyops.settings import Settings

if TYPE_CHECKING:
    from skyops.monitoring.sinks import PublishReport
    from skyops.pipeline.lineage import RunRecord
    from skyops.registry.governed import Governed

PENDING = "PendingManualApproval"
REGISTRATION_FILE = "registration.json"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def notify(settings: Settings, events: Iterable[Event], *, warn: Callable[[str], None] = _stderr) -> PublishReport | None:
    """Publish `events` to the configured sinks; each problem is one `warning:` line through `warn`, never an exception.

    Returns:
        The report, or None when nothing was published (no events, a bad setting, or the log refused).
    """
    from skyops.monitoring.sinks import publisher_from_env

    events = list(events)
    if not events:
        return None
    try:
        report = publisher_from_env(settings).publish(events)
    except SkyopsError as e:
        warn(f"warning: {len(events)} event(s) ({', '.join(sorted({str(e.type) for e in events}))}) not published: {e.message}")
        return None
    for failed in report.failed:
        warn(f"warning: {failed.line()}")
    return report


def governed_events(done: Governed) -> list[Event]:
    """The events of one governed action that succeeded (see the module docstring's table)."""
    from skyops.registry.roles import Action

    details = done.details
    version = details.get("version")
    if done.action is Action.REGISTER:
        if details.get("created") and details.get("status") == PENDING:
            return [
                new_event(EventType.APPROVAL_REQUESTED, {"model": done.model, "version": version, "status": PENDING, "actor": done.actor})
            ]
        return []
    if done.action in (Action.APPROVE, Action.REJECT):
        detail = {"model": done.model, "version": version, "decision": details.get("to"), "actor": done.actor, "reason": done.reason}
        return [new_event(EventType.APPROVAL_DECIDED, {**detail, "before": details.get("from")})]
    if done.action is Action.PROMOTE:
        return [_deployment(done, "promote", version, details.get("previous"))]
    if done.action is Action.ROLLBACK:
        return [_deployment(done, "rollback", details.get("to"), details.get("from"))]
    if done.action is Action.DEPLOY:
        event = _deployment(done, "deploy", version, details.get("previous"))
        extra = {"environment": details.get("environment"), "alias": details.get("alias"), "changes": details.get("changes", [])}
        return [new_event(EventType.DEPLOYMENT_CHANGED, {**event.detail, **extra})]
    return []


def _deployment(done: Governed, action: str, version: Any, previous: Any) -> Event:
    detail = {"model": done.model, "action": action, "version": version, "previous": previous, "actor": done.actor, "reason": done.reason}
    return new_event(EventType.DEPLOYMENT_CHANGED, detail)


def registry_observer(settings: Settings, *, warn: Callable[[str], None] = _stderr) -> Callable[[Governed], None]:
    """An observer for GovernedRegistry that publishes each action's events (see `governed_events`)."""

    def observe(done: Governed) -> None:
        notify(settings, governed_events(done), warn=warn)

    return observe


def run_events(record: RunRecord) -> list[Event]:
    """The events of a finished local run: pipeline.failed when it failed; approval.requested for each version one of
    its steps registered (newly, pending approval) in this run."""
    from skyops.pipeline.lineage import RunStatus, StepStatus

    events = []
    if record.status is RunStatus.FAILED:
        failed = [s.name for s in record.steps.values() if s.status is StepStatus.FAILED]
        detail: dict[str, Any] = {
            "run_id": record.run_id,
            "pipeline": record.pipeline,
            "status": str(record.status),
            "failed_steps": failed,
            "errors": {s.name: s.error for s in record.steps.values() if s.status is StepStatus.FAILED and s.error},
            "resume_command": record.resume_command,
            "user": record.user,
            "host": record.host,
        }
        events.append(new_event(EventType.PIPELINE_FAILED, detail))
    for step in record.steps.values():
        if step.status is not StepStatus.DONE:  # a cached registration was reported by the run that made it
            continue
        for output in step.outputs.values():
            registration = _registration(Path(str(output.get("path", ""))) / REGISTRATION_FILE)
            if registration and registration.get("created") and registration.get("status") == PENDING:
                actor = str(registration.get("registered_by", {}).get("user", record.user))
                requested = {"model": registration.get("model"), "version": registration.get("version"), "status": PENDING}
                detail = {**requested, "actor": actor, "run_id": record.run_id, "step": step.name}
                events.append(new_event(EventType.APPROVAL_REQUESTED, detail))
    return events


def _registration(path: Path) -> dict[str, Any] | None:
    """A step's registration.json, or None when there is none or it is not a JSON object (the run's own checks report that)."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
