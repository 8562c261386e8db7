"""CloudFormation stacks through the profile guard: plan a change set, say what it changes, execute it, wait, explain.

    stacks = Stacks(AwsGuard())
    plan = stacks.plan("skyops-dev", body, parameters, tags)   # a change set, described; no change is made yet
    plan.changes                                                # () when the stack already is what the template says
    stacks.execute(plan)                                        # -> Stack (outputs, tags); InfraError with recovery steps

Deploying twice with the same template, parameters and tags changes nothing: CloudFormation answers the second change
set with "didn't contain changes", which `plan` turns into an empty plan (and removes the change set). Every parameter
is passed with its value, never `UsePreviousValue`, so what a deploy asks for is always written out in full.
Requests are made only when a method is called; AWS errors become AwsRequestError saying what was asked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from skyops.aws.infra import InfraError, tag_map
from skyops.aws.session import AwsGuard, AwsRequestError, aws_request

CAPABILITIES = ["CAPABILITY_NAMED_IAM"]  # the templates name their roles
_NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
_MISSING = "does not exist"  # CloudFormation's only sign of a missing stack: a ValidationError with this text
_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE", "DELETE_COMPLETE"}


@dataclass(frozen=True)
class Change:
    """One resource a change set adds, modifies or removes. `replacement`: 'True', 'False', 'Conditional' or ''."""

    action: str
    logical_id: str
    resource_type: str
    replacement: str = ""

    @property
    def line(self) -> str:
        replace = {"True": "  (REPLACED: a new resource, the old one deleted)", "Conditional": "  (may be replaced)"}.get(
            self.replacement, ""
        )
        return f"{self.action:8} {self.logical_id:32} {self.resource_type}{replace}"


@dataclass(frozen=True)
class Stack:
    name: str
    stack_id: str
    status: str
    reason: str
    outputs: Mapping[str, str]
    parameters: Mapping[str, str]
    tags: Mapping[str, str]


@dataclass(frozen=True)
class Plan:
    """A described change set. `change_set` is None when nothing would change (no change set is left behind).

    A change set may change no resource and still be worth executing: new parameter values, tags or outputs."""

    stack: str
    change_set: str | None
    creates: bool
    changes: tuple[Change, ...]


class Stacks:
    """Stacks of one account and region, through one guarded CloudFormation client.

    Args:
        poll_seconds: time between two looks at a change set or stack that is still in progress.
        timeout_seconds: how long to wait for one before giving up (the stack goes on; `skyops infra status` follows it).
    """

    def __init__(self, guard: AwsGuard, *, poll_seconds: float = 5.0, timeout_seconds: float = 3600.0) -> None:
        self.guard = guard
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self._client: Any = None

    @property
    def cloudformation(self) -> Any:
        if self._client is None:
            self._client = self.guard.client("cloudformation")
        return self._client

    def describe(self, name: str) -> Stack | None:
        """The stack `name` (or a stack id), or None when there is none."""
        try:
            with aws_request(f"describe stack {name}"):
                found = self.cloudformation.describe_stacks(StackName=name)["Stacks"]
        except AwsRequestError as e:
            if _MISSING in e.message:
                return None
            raise
        stack = found[0]
        return Stack(
            name=stack["StackName"],
            stack_id=stack["StackId"],
            status=stack["StackStatus"],
            reason=stack.get("StackStatusReason") or "",
            outputs={o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []},
            parameters={p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []},
            tags=tag_map(stack.get("Tags")),
        )

    def plan(self, name: str, template_body: str, parameters: Mapping[str, str], tags: Mapping[str, str], existing: Stack | None) -> Plan:
        """Create a change set of `name` and describe it; nothing changes until `execute`.

        Args:
            existing: the stack as `describe` found it (None: the change set creates it).

        Raises:
            InfraError: the stack cannot take a change now (busy, failed), or the change set failed (the reason).
            AwsRequestError: CloudFormation refused the request (a template error, missing permissions).
        """
        creates = existing is None or existing.status == "REVIEW_IN_PROGRESS"  # a create change set that was never executed
        if existing is not None and not creates:
            _refuse_unsettled(existing, self.guard.profile)
        change_set_name = "skyops-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        try:
            with aws_request(f"create a change set of stack {name}", hint="the template or a parameter is wrong: the message says which"):
                created = self.cloudformation.create_change_set(
                    StackName=name,
                    ChangeSetName=change_set_name,
                    ChangeSetType="CREATE" if creates else "UPDATE",
                    TemplateBody=template_body,
                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(parameters.items())],
                    Capabilities=CAPABILITIES,
                    Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
                    Description=f"skyops infra deploy of {name}",
                )
        except AwsRequestError as e:
            if any(text in e.message for text in _NO_CHANGES):  # said at once rather than by a failed change set
                return Plan(stack=name, change_set=None, creates=False, changes=())
            raise
        arn = created["Id"]
        described = self._settled_change_set(arn, name)
        if described["Status"] == "FAILED":
            reason = described.get("StatusReason") or "no reason given"
            self._delete_change_set(arn, name)
            if any(text in reason for text in _NO_CHANGES):
                return Plan(stack=name, change_set=None, creates=False, changes=())
            raise InfraError(
                f"the change set of stack {name} failed: {reason}",
                hint="fix the template or the parameters it names, then deploy again (nothing was changed)",
            )
        return Plan(stack=name, change_set=arn, creates=creates, changes=tuple(_changes(described)))

    def discard(self, plan: Plan) -> None:
        """Remove a plan's change set without executing it (a `--plan` deploy), and the empty stack a create plan made."""
        if plan.change_set is None:
            return
        self._delete_change_set(plan.change_set, plan.stack)
        if plan.creates:  # CloudFormation made a stack in REVIEW_IN_PROGRESS to hold the change set: it holds nothing
            with aws_request(f"delete the empty stack {plan.stack} the plan made"):
                self.cloudformation.delete_stack(StackName=plan.stack)

    def execute(self, plan: Plan) -> Stack:
        """Execute the plan's change set and wait until the stack settles.

        Raises:
            InfraError: the stack failed and rolled back (or could not): the failed resources and the recovery steps.
        """
        if plan.change_set is None:
            stack = self.describe(plan.stack)
            assert stack is not None, f"a plan without changes of a stack that does not exist: {plan.stack}"
            return stack
        with aws_request(f"execute the change set of stack {plan.stack}"):
            self.cloudformation.execute_change_set(ChangeSetName=plan.change_set, StackName=plan.stack)
        stack = self._settled_stack(plan.stack)
        if stack.status not in _DONE:
            raise self._failure(stack)
        return stack

    def delete(self, name: str) -> None:
        """Delete the stack and wait until it is gone (resources with DeletionPolicy Retain stay)."""
        stack = self.describe(name)
        if stack is None:
            return
        with aws_request(f"delete stack {name}"):
            self.cloudformation.delete_stack(StackName=stack.stack_id)
        settled = self._settled_stack(stack.stack_id)
        if settled.status != "DELETE_COMPLETE":
            raise self._failure(settled)

    def resources(self, name: str) -> list[tuple[str, str, str]]:
        """(logical id, type, physical id) of every resource of the stack."""
        found: list[tuple[str, str, str]] = []
        with aws_request(f"list the resources of stack {name}"):
            for page in self.cloudformation.get_paginator("list_stack_resources").paginate(StackName=name):
                found += [
                    (r["LogicalResourceId"], r["ResourceType"], r.get("PhysicalResourceId", "")) for r in page["StackResourceSummaries"]
                ]
        return [r for r in found if r[0]]  # moto lists the resources it could not make with empty names

    def _settled_change_set(self, arn: str, name: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            with aws_request(f"describe the change set of stack {name}"):
                described: dict[str, Any] = self.cloudformation.describe_change_set(ChangeSetName=arn)
                pages = [described]
                while pages[-1].get("NextToken"):
                    pages.append(self.cloudformation.describe_change_set(ChangeSetName=arn, NextToken=pages[-1]["NextToken"]))
            if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
                described["Changes"] = [change for page in pages for change in page.get("Changes", [])]
                return described
            self._wait(deadline, f"the change set of stack {name} ({described['Status']})")

    def _settled_stack(self, name: str) -> Stack:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            stack = self.describe(name)
            if stack is None:  # gone while we waited: deleted
                return Stack(name, name, "DELETE_COMPLETE", "", {}, {}, {})
            if not stack.status.endswith("_IN_PROGRESS"):
                return stack
            self._wait(deadline, f"stack {stack.name} ({stack.status})")

    def _wait(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise InfraError(
                f"{what} did not settle within {self.timeout_seconds:.0f} s",
                hint="CloudFormation goes on without skyops: follow it with `skyops infra status`, then deploy or destroy again",
            )
        time.sleep(self.poll_seconds)

    def _delete_change_set(self, arn: str, name: str) -> None:
        with aws_request(f"delete the change set of stack {name}"):
            self.cloudformation.delete_change_set(ChangeSetName=arn)

    def _failure(self, stack: Stack) -> InfraError:
        """The stack's failed resources (newest first) and the recovery steps for the state it ended in."""
        with aws_request(f"read the events of stack {stack.name}"):
            events = self.cloudformation.describe_stack_events(StackName=stack.stack_id).get("StackEvents", [])
        failed = [
            f"{e['LogicalResourceId']} ({e.get('ResourceType', '?')}): {e.get('ResourceStatusReason') or e['ResourceStatus']}"
            for e in events
            if e.get("ResourceStatus", "").endswith("_FAILED") and e.get("LogicalResourceId") != stack.name
        ][:5]
        detail = "; ".join(failed) or stack.reason or "CloudFormation gave no reason"
        return InfraError(f"stack {stack.name} ended {stack.status}: {detail}", hint=recovery(stack.name, stack.status, self.guard.profile))


def recovery(name: str, status: str, profile: str) -> str:
    """What to do about a stack that ended, or sits, in `status`."""
    env = name.removeprefix("skyops-").removesuffix("-studio")
    if status == "UPDATE_ROLLBACK_COMPLETE":
        return "the stack is back as it was before this deploy: fix the cause above, then deploy again"
    if status == "UPDATE_ROLLBACK_FAILED":
        return (
            f"CloudFormation could not roll the update back: run `aws cloudformation continue-update-rollback --stack-name {name} "
            f"--profile {profile}` (with --resources-to-skip for a resource it cannot restore), then deploy again"
        )
    if status == "DELETE_FAILED":
        return (
            f"empty or release what the message names (e.g. Studio apps still running), then `skyops infra destroy --env {env} --yes` again"
        )
    if status.endswith("_IN_PROGRESS"):
        return "wait until it settles (`skyops infra status`), then try again"
    return (
        f"the stack failed to be created and holds nothing but its record: fix the cause above, remove it with "
        f"`skyops infra destroy --env {env} --yes` (skyops' own stacks only), then deploy again"
    )


def _refuse_unsettled(stack: Stack, profile: str) -> None:
    """InfraError for a stack a change set cannot update now: busy, or left failed by an earlier operation."""
    if stack.status.endswith(("_IN_PROGRESS", "_FAILED")) or stack.status == "ROLLBACK_COMPLETE":
        raise InfraError(
            f"stack {stack.name} is {stack.status} and cannot be changed now", hint=recovery(stack.name, stack.status, profile)
        )


def _changes(described: Mapping[str, Any]) -> list[Change]:
    changes = []
    for change in described.get("Changes", []):
        resource = change.get("ResourceChange", {})
        changes.append(
            Change(
                action=resource.get("Action", "?"),
                logical_id=resource.get("LogicalResourceId", "?"),
                resource_type=resource.get("ResourceType", "?"),
                replacement=str(resource.get("Replacement", "")),
            )
        )
    return changes
