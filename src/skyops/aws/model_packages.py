"""The SageMaker model registry: versions of a model package group, registered pending, then approved or rejected.

    packages = ModelPackages(AwsGuard())                      # every request goes through the profile guard
    packages.ensure_group("drone-detection")
    packages.latest_approved("drone-detection")                # -> PackageVersion | None
    registry_resolver(packages)("drone-detector@champion")     # -> the champion's model.tar.gz URI | None

    store = PackageGroupStore(packages, "drone-detection")    # the group as a registry store, to govern:
    governed = GovernedRegistry(store, governance)             # skyops.registry.governed (the caller joins them)
    governed.register("bob", PackageCandidate(model_data_url="s3://bucket/model.tar.gz", image_uri=image), "PendingManualApproval")
    governed.approve("alice", 1, reason="mAP50 0.71 beats the champion")   # UpdateModelPackage, audited

Registering and setting a status are private here (`_register`, `_set_status`): who may, and which
changes are allowed, is decided by the governed registry, which calls them (nothing else does). This
module does not import the registry package, nor it this one (the layers contract): `PackageGroupStore`
has the shape `GovernedRegistry` takes, with statuses as plain strings.

Requests are made only when a method is called. AWS errors become AwsRequestError saying what was asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from skyops.aws.session import AwsGuard, AwsRequestError, aws_request
from skyops.errors import ConfigError, SkyopsError, problems_error

CONTENT_TYPES = ("application/x-image",)  # what the inference container accepts (SageMaker contract)
RESPONSE_TYPES = ("application/json",)
_GROUP_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")  # SageMaker's EntityName
_MAX_TEXT = 1024  # characters of a description or an approval note
_MAX_METADATA = 50  # entries of customer metadata; keys up to 128 characters, values up to 256
_MISSING = "does not exist"  # SageMaker's only sign of a missing group: a ValidationException with this text
CHAMPION = "champion"  # `registry:<group>@champion`: the group's newest Approved version (SageMaker has no aliases)


class ApprovalStatus(StrEnum):
    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


@dataclass(frozen=True)
class PackageVersion:
    """One version of a model package group, as listed."""

    arn: str
    group: str
    version: int
    status: ApprovalStatus
    created: datetime
    description: str


@dataclass(frozen=True)
class ModelPackage:
    """One version in full, as described."""

    arn: str
    group: str
    version: int
    status: ApprovalStatus
    approval_note: str
    created: datetime
    description: str
    image_uri: str
    model_data_url: str
    metrics_s3_uri: str | None
    customer_metadata: Mapping[str, str]


class ModelPackages:
    """Model package groups and their versions, through one guarded SageMaker client."""

    def __init__(self, guard: AwsGuard | None = None) -> None:
        self.guard = guard or AwsGuard()
        self._client: Any = None

    @property
    def sagemaker(self) -> Any:
        """The SageMaker client, created (and the guard checked) on first use."""
        if self._client is None:
            self._client = self.guard.client("sagemaker")
        return self._client

    def ensure_group(self, name: str, *, description: str = "") -> str:
        """The ARN of model package group `name`, created when it does not exist yet."""
        _raise_problems(f"model package group {name!r}", _check_group(name) + _check_text("description", description))
        try:
            with aws_request(f"describe model package group {name!r}"):
                return str(self.sagemaker.describe_model_package_group(ModelPackageGroupName=name)["ModelPackageGroupArn"])
        except AwsRequestError as exc:
            if _MISSING not in exc.message:
                raise
        with aws_request(f"create model package group {name!r}"):
            response = self.sagemaker.create_model_package_group(ModelPackageGroupName=name, ModelPackageGroupDescription=description)
        return str(response["ModelPackageGroupArn"])

    def _register(
        self,
        group: str,
        model_data_url: str,
        image_uri: str,
        metrics_s3_uri: str | None = None,
        *,
        description: str = "",
        customer_metadata: Mapping[str, str] | None = None,
        status: ApprovalStatus = ApprovalStatus.PENDING,
    ) -> str:
        """Register a new version of `group` with `status` (pending manual approval, or rejected), and return its ARN.

        Args:
            group: the model package group (see ensure_group).
            model_data_url: s3:// URI of the model archive (model.tar.gz).
            image_uri: the inference container image (ECR URI).
            metrics_s3_uri: s3:// URI of evaluation.json, shown as the version's model quality statistics.
            description: shown in SageMaker Studio (up to 1024 characters).
            customer_metadata: up to 50 string pairs kept with the version (run id, dataset fingerprint, ...).
            status: never Approved: approving is a person's act (the governed registry refuses it first).
        """
        metadata = dict(customer_metadata or {})
        problems = _check_group(group) + _check_text("description", description) + _check_metadata(metadata)
        problems += _check_s3("model_data_url", model_data_url)
        if metrics_s3_uri is not None:
            problems += _check_s3("metrics_s3_uri", metrics_s3_uri)
        if not image_uri:
            problems.append("image_uri is empty; expected the inference image, e.g. <account>.dkr.ecr.<region>.amazonaws.com/skyops:1")
        if status is ApprovalStatus.APPROVED:
            problems.append("status is Approved; a new version is registered PendingManualApproval or Rejected")
        _raise_problems(f"the new version of model package group {group!r}", problems)

        request: dict[str, Any] = {
            "ModelPackageGroupName": group,
            "ModelPackageDescription": description,
            "ModelApprovalStatus": ApprovalStatus(status).value,
            "InferenceSpecification": {
                "Containers": [{"Image": image_uri, "ModelDataUrl": model_data_url}],
                "SupportedContentTypes": list(CONTENT_TYPES),
                "SupportedResponseMIMETypes": list(RESPONSE_TYPES),
            },
        }
        if metrics_s3_uri is not None:
            request["ModelMetrics"] = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": metrics_s3_uri}}}
        if metadata:
            request["CustomerMetadataProperties"] = metadata
        with aws_request(f"register a version in model package group {group!r}", hint=f"create the group first: ensure_group({group!r})"):
            return str(self.sagemaker.create_model_package(**request)["ModelPackageArn"])

    def list_versions(self, group: str) -> list[PackageVersion]:
        """Every version of `group`, oldest first."""
        _raise_problems(f"model package group {group!r}", _check_group(group))
        pages = self.sagemaker.get_paginator("list_model_packages").paginate(
            ModelPackageGroupName=group, ModelPackageType="Versioned", SortBy="CreationTime", SortOrder="Ascending"
        )
        with aws_request(f"list the versions of model package group {group!r}"):
            return [_version(summary) for page in pages for summary in page["ModelPackageSummaryList"]]

    def latest_approved(self, group: str) -> PackageVersion | None:
        """The most recently created Approved version of `group`, or None when none is approved."""
        _raise_problems(f"model package group {group!r}", _check_group(group))
        with aws_request(f"find the latest approved version of model package group {group!r}"):
            found = self.sagemaker.list_model_packages(
                ModelPackageGroupName=group,
                ModelPackageType="Versioned",
                ModelApprovalStatus=ApprovalStatus.APPROVED.value,
                SortBy="CreationTime",
                SortOrder="Descending",
                MaxResults=1,
            )["ModelPackageSummaryList"]
        return _version(found[0]) if found else None

    def describe(self, arn: str) -> ModelPackage:
        """Everything about version `arn`: status, note, image, model data, metrics, metadata."""
        with aws_request(f"describe model package {arn}", hint="list the versions of the group to find the ARN"):
            found = self.sagemaker.describe_model_package(ModelPackageName=arn)
        container = (found.get("InferenceSpecification", {}).get("Containers") or [{}])[0]
        statistics = found.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
        return ModelPackage(
            arn=found["ModelPackageArn"],
            group=found.get("ModelPackageGroupName", ""),
            version=int(found.get("ModelPackageVersion", 0)),
            status=ApprovalStatus(found["ModelApprovalStatus"]),
            approval_note=found.get("ApprovalDescription") or "",
            created=found["CreationTime"],
            description=found.get("ModelPackageDescription") or "",
            image_uri=container.get("Image", ""),
            model_data_url=container.get("ModelDataUrl", ""),
            metrics_s3_uri=statistics.get("S3Uri"),
            customer_metadata=dict(found.get("CustomerMetadataProperties") or {}),
        )

    def _set_status(self, arn: str, status: ApprovalStatus, note: str) -> None:
        """Set version `arn` to `status` (UpdateModelPackage), with `note` as its approval description (why)."""
        problems = _check_text("note", note)
        if not note.strip():
            problems.append(f"the note is empty; say why the version is {status.value.lower()}")
        _raise_problems(f"{status.value.lower()} of {arn}", problems)
        with aws_request(f"set model package {arn} to {status.value}", hint="list the versions of the group to find the ARN"):
            self.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=status.value, ApprovalDescription=note)


@dataclass(frozen=True, kw_only=True)
class PackageCandidate:
    """What registering a version of a model package group takes (see ModelPackages._register)."""

    model_data_url: str  # s3:// URI of model.tar.gz
    image_uri: str  # the inference image
    metrics_s3_uri: str | None = None  # s3:// URI of evaluation.json
    description: str = ""
    customer_metadata: Mapping[str, str] = field(default_factory=dict)


class PackageGroupStore:
    """One model package group in the shape `skyops.registry.governed.GovernedRegistry` governs.

    Versions are the group's version numbers (1, 2, ...); `champion` names the newest Approved one.
    There are no aliases to move, so the governed registry refuses promote, rollback and deploy here,
    and versions are not deleted (reject one instead: a Rejected version is never the champion).
    """

    kind = "SageMaker model package group"
    supports_aliases = False

    def __init__(self, packages: ModelPackages, group: str) -> None:
        _raise_problems(f"model package group {group!r}", _check_group(group))
        self.packages = packages
        self.name = group

    def resolve(self, version: int | str) -> int:
        """A version number, or `champion` (the newest Approved version); SkyopsError when there is none."""
        text = str(version).lstrip("@")
        if text == CHAMPION:
            found = self.packages.latest_approved(self.name)
            if found is None:
                raise SkyopsError(
                    f"model package group {self.name!r} has no Approved version, so no @{CHAMPION}", hint="approve a version first"
                )
            return found.version
        if not text.isdigit():
            raise SkyopsError(f"{version!r} is not a version of model package group {self.name!r}; expected a number or {CHAMPION}")
        self._arn(int(text))  # raises when the group has no such version
        return int(text)

    def status(self, version: int) -> str:
        return self.packages.describe(self._arn(version)).status.value

    def statuses(self) -> dict[int, str]:
        return {v.version: v.status.value for v in self.packages.list_versions(self.name)}

    def aliases(self) -> dict[str, int]:
        return {}  # none: the champion is found, not pointed at

    def _register(self, candidate: PackageCandidate, status: str) -> tuple[int, bool]:
        arn = self.packages._register(
            self.name,
            candidate.model_data_url,
            candidate.image_uri,
            candidate.metrics_s3_uri,
            description=candidate.description,
            customer_metadata=candidate.customer_metadata,
            status=ApprovalStatus(status),
        )
        return self.packages.describe(arn).version, True  # SageMaker keeps no weights digest to find an earlier version by

    def _set_status(self, version: int, status: str, reason: str) -> None:
        self.packages._set_status(self._arn(version), ApprovalStatus(status), reason)

    def _set_alias(self, alias: str, version: int | None) -> None:
        raise ConfigError(f"{self.kind} {self.name!r} has no aliases; its @{CHAMPION} is its newest Approved version")

    def _delete(self, version: int) -> None:
        raise ConfigError(
            f"skyops does not delete versions of {self.kind} {self.name!r}",
            hint=f"reject version {version} instead: a Rejected version is never the champion",
        )

    def _arn(self, version: int) -> str:
        versions = self.packages.list_versions(self.name)
        for found in versions:
            if found.version == version:
                return found.arn
        known = ", ".join(str(v.version) for v in versions) or "none"
        raise SkyopsError(f"model package group {self.name!r} has no version {version}", hint=f"versions: {known}")


def _version(summary: Mapping[str, Any]) -> PackageVersion:
    return PackageVersion(
        arn=summary["ModelPackageArn"],
        group=summary.get("ModelPackageGroupName", ""),
        version=int(summary.get("ModelPackageVersion", 0)),
        status=ApprovalStatus(summary["ModelApprovalStatus"]),
        created=summary["CreationTime"],
        description=summary.get("ModelPackageDescription") or "",
    )


def _check_group(name: str) -> list[str]:
    if _GROUP_NAME.fullmatch(name):
        return []
    return [f"group name {name!r} is not valid; expected 1-63 letters, digits and inner hyphens, e.g. drone-detection"]


def _check_text(what: str, text: str) -> list[str]:
    return [f"{what} is {len(text)} characters long; at most {_MAX_TEXT} are allowed"] if len(text) > _MAX_TEXT else []


def _check_s3(what: str, uri: str) -> list[str]:
    return [] if uri.startswith("s3://") and len(uri) > len("s3://") else [f"{what} {uri!r} is not an S3 URI; expected s3://bucket/key"]


def _check_metadata(metadata: Mapping[str, str]) -> list[str]:
    problems = (
        [f"customer_metadata has {len(metadata)} entries; at most {_MAX_METADATA} are allowed"] if len(metadata) > _MAX_METADATA else []
    )
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 128:
            problems.append(f"customer_metadata key {key!r} must be a string of 1-128 characters")
        if not isinstance(value, str) or not 1 <= len(value) <= 256:
            problems.append(f"customer_metadata[{key!r}] = {value!r} must be a string of 1-256 characters")
    return problems


def _raise_problems(subject: str, problems: list[str]) -> None:
    if problems:
        raise problems_error(ConfigError, subject, problems)


def registry_resolver(packages: ModelPackages, announce: Callable[[str], None] | None = None) -> Callable[[str], str | None]:
    """`skyops sagemaker start`'s resolver of `registry:<group>@champion` references.

    SageMaker's model registry has no aliases: the champion is the group's newest Approved version
    (approving goes through skyops' governance, docs/sagemaker.md). The resolver returns that
    version's ModelDataUrl (a model.tar.gz), or None when the group has no Approved version or does
    not exist yet (a first run compares with none).

    Raises (when called):
        ConfigError: a reference that is not `<group>@champion`.
    """

    def resolve(reference: str) -> str | None:
        group, _, alias = reference.rpartition("@")
        if alias != CHAMPION or not _GROUP_NAME.fullmatch(group):
            raise ConfigError(
                f"registry:{reference} is not registry:<model>@{CHAMPION}",
                hint=f"on SageMaker a model's @{CHAMPION} is its package group's newest Approved version",
            )
        try:
            found = packages.latest_approved(group)
        except AwsRequestError as exc:
            if _MISSING not in exc.message:
                raise
            found = None
        if found is None:
            return None
        package = packages.describe(found.arn)
        if announce is not None:
            announce(f"comparing with the champion: {group} v{package.version} ({package.arn})")
        return package.model_data_url

    return resolve
