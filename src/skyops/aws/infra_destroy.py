"""`skyops infra destroy`: one environment's own stacks and tagged buckets, and nothing else; a dry run unless confirmed.

    actions = plan_destroy(guard, env)     # reads only: what would be deleted, kept or refused, and why
    run_destroy(guard, actions, log)       # deletes, in order: the Studio stack, the core stack, then the buckets

What is skyops' own (`InfraEnvironment.owns`): a stack named `skyops-<env>[-studio]` tagged Project=skyops,
Environment=<env>, ManagedBy=<its name>; a bucket tagged Project=skyops, Environment=<env>, ManagedBy=skyops-<env>
(the core template's tags). Candidates are the buckets of the core stack (kept by its DeletionPolicy: Retain, so
deleting the stack leaves the data) and every bucket named like the environment's (`skyops-<env>-...`, e.g. one a
deleted stack left behind). A candidate without the tags, or tagged for another project or environment, is refused
and left untouched; the model package group is kept (the registry's history). Every decision goes to the action log.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from skyops.aws.infra import InfraEnvironment, InfraError, tag_map
from skyops.aws.infra_log import ActionLog
from skyops.aws.infra_stacks import Stacks
from skyops.aws.session import AwsGuard, AwsRequestError, aws_request

_BATCH = 1000  # DeleteObjects takes at most 1000 keys


class Step(StrEnum):
    DELETE_STACK = "delete-stack"
    DELETE_BUCKET = "empty-and-delete-bucket"
    KEEP = "keep"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Action:
    step: Step
    kind: str  # "stack", "bucket", "model package group"
    name: str
    reason: str

    @property
    def resource(self) -> str:
        return f"{self.kind} {self.name}"


def plan_destroy(guard: AwsGuard, env: InfraEnvironment) -> list[Action]:
    """What destroying `env` would do, in order; reads only (DescribeStacks, ListStackResources, ListBuckets, GetBucketTagging)."""
    stacks, s3 = Stacks(guard), guard.client("s3")
    actions: list[Action] = []
    buckets: dict[str, str] = {}  # name -> where it was found
    for name in (env.studio_stack, env.core_stack):  # the Studio stack uses the core stack's roles: it goes first
        stack = stacks.describe(name)
        if stack is None:
            continue
        if not env.owns(stack.tags, name):
            actions.append(Action(Step.REFUSE, "stack", name, env.why_not_owned(stack.tags, name)))
            continue
        actions.append(Action(Step.DELETE_STACK, "stack", name, f"tagged {_tags(env.ownership(name))} ({stack.status})"))
        for logical, kind, physical in stacks.resources(stack.stack_id):
            if kind == "AWS::S3::Bucket" and physical:
                buckets[physical] = f"resource {logical} of stack {name}, kept by its DeletionPolicy"
            elif kind == "AWS::SageMaker::ModelPackageGroup" and physical:
                actions.append(Action(Step.KEEP, "model package group", physical, _KEEP_GROUP))
    with aws_request("list the buckets", hint="the profile needs s3:ListAllMyBuckets"):
        listed = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    for name in listed:
        if name.startswith(env.bucket_prefix):
            buckets.setdefault(name, f"named like the {env.name} artifact bucket ({env.bucket_prefix}...)")
    for name, found in sorted(buckets.items()):
        tags = _bucket_tags(s3, name)
        if tags is None:
            continue  # gone since it was listed
        why = env.why_not_owned(tags, env.core_stack)
        step, reason = (
            (Step.REFUSE, f"{found}; {why}") if why else (Step.DELETE_BUCKET, f"{found}; tagged {_tags(env.ownership(env.core_stack))}")
        )
        actions.append(Action(step, "bucket", name, reason))
    return actions


def log_dry_run(actions: list[Action], log: ActionLog) -> None:
    """Record what a dry run found: each action as planned, refused or kept, with its reason."""
    outcomes = {Step.REFUSE: "refused", Step.KEEP: "kept"}
    for action in actions:
        log.write(action.step.value, action.resource, outcomes.get(action.step, "planned (dry run)"), action.reason)


def run_destroy(guard: AwsGuard, actions: list[Action], log: ActionLog, announce: Any = print) -> None:
    """Carry the plan out, logging each action before and after it. Stops at the first failure (InfraError)."""
    stacks, s3 = Stacks(guard), guard.client("s3")
    for action in actions:
        if action.step in (Step.REFUSE, Step.KEEP):
            log.write(action.step.value, action.resource, "refused" if action.step is Step.REFUSE else "kept", action.reason)
            continue
        log.write(action.step.value, action.resource, "started", action.reason)
        announce(f"{action.step.value:24} {action.resource}")
        try:
            if action.step is Step.DELETE_STACK:
                stacks.delete(action.name)
                detail = ""
            else:
                detail = f"{delete_bucket(s3, action.name)} object versions and delete markers removed"
        except (InfraError, AwsRequestError) as e:
            log.write(action.step.value, action.resource, "failed", e.message)
            raise
        log.write(action.step.value, action.resource, "done", detail)


def delete_bucket(s3: Any, bucket: str) -> int:
    """Remove every object version and delete marker of `bucket`, then the bucket; returns how many were removed."""
    removed = 0
    while True:
        with aws_request(f"list the object versions of bucket {bucket}"):
            pages = list(s3.get_paginator("list_object_versions").paginate(Bucket=bucket))
        entries = [
            {"Key": entry["Key"], "VersionId": entry["VersionId"]}
            for page in pages
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if not entries:
            break
        for start in range(0, len(entries), _BATCH):
            with aws_request(f"delete object versions of bucket {bucket}"):
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": entries[start : start + _BATCH], "Quiet": True})
            if errors := answer.get("Errors"):
                first = errors[0]
                raise InfraError(
                    f"bucket {bucket}: {len(errors)} object versions could not be deleted, e.g. {first.get('Key')} "
                    f"({first.get('Code')}: {first.get('Message')})",
                    hint="an object lock or a bucket policy may protect them: release it, then destroy again",
                )
        removed += len(entries)
    with aws_request(f"delete bucket {bucket}"):
        s3.delete_bucket(Bucket=bucket)
    return removed


_KEEP_GROUP = (
    "the registry's history (versions, approvals) outlives the environment (DeletionPolicy: Retain); a new deploy of "
    "this environment needs it gone or another --model-group: delete its versions, then the group, with the AWS CLI"
)


def _bucket_tags(s3: Any, bucket: str) -> dict[str, str] | None:
    """The bucket's tags ({} when it has none), or None when the bucket no longer exists."""
    try:
        with aws_request(f"read the tags of bucket {bucket}", hint="the profile needs s3:GetBucketTagging"):
            return tag_map(s3.get_bucket_tagging(Bucket=bucket).get("TagSet"))
    except AwsRequestError as e:
        if "NoSuchTagSet" in e.message:
            return {}
        if "NoSuchBucket" in e.message:
            return None
        raise


def _tags(tags: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in tags.items())
