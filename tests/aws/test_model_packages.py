"""SageMaker model package groups through the guard, against a real moto server: the raw store, and
the same governed registry API as the local one over it (roles checked, rules applied, audited)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyops.aws.model_packages import ApprovalStatus, ModelPackages, PackageCandidate, PackageGroupStore, registry_resolver
from skyops.aws.session import AwsGuard, AwsRequestError
from skyops.errors import AwsGuardError, ConfigError, PermissionDenied, SkyopsError
from skyops.registry.audit import AuditLog
from skyops.registry.governed import GovernedRegistry
from skyops.registry.roles import ROLES_FILE, Governance

from .conftest import MotoServer

GROUP = "drone-detection"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/skyops-inference:1"
ROLES = "default_role: none\nusers: {alice: ml-engineer, bob: data-scientist}\n"


@pytest.fixture
def packages(moto: MotoServer) -> ModelPackages:
    """A registry client on the moto server with group drone-detection created."""
    packages = ModelPackages(AwsGuard())
    packages.ensure_group(GROUP, description="YOLO11 drone detectors")
    return packages


@pytest.fixture
def governed(packages: ModelPackages, tmp_path: Path) -> GovernedRegistry[PackageCandidate]:
    """The group behind the governed API: alice ml-engineer, bob data-scientist, anyone else none; an empty audit log."""
    (tmp_path / ROLES_FILE).write_text(ROLES)
    return GovernedRegistry(PackageGroupStore(packages, GROUP), Governance(tmp_path, tmp_path / "audit.log"))


def _register(packages: ModelPackages, run: int) -> str:
    """The raw store's registration (no governance): for the tests of the store itself."""
    return packages._register(GROUP, f"s3://models/run{run}/model.tar.gz", IMAGE, description=f"run {run}")


def _audited(governed: GovernedRegistry[PackageCandidate]) -> list[tuple[str, str, str, str]]:
    return [(r.actor, r.action, r.target, str(r.outcome)) for r in AuditLog(governed.governance.audit.path).outcomes()]


def test_ensure_group_creates_once(packages: ModelPackages, moto: MotoServer) -> None:
    arn = packages.ensure_group(GROUP)
    assert arn == f"arn:aws:sagemaker:eu-west-1:123456789012:model-package-group/{GROUP}"
    assert packages.ensure_group("other-group").endswith(":model-package-group/other-group")
    assert (
        packages.sagemaker.describe_model_package_group(ModelPackageGroupName=GROUP)["ModelPackageGroupDescription"]
        == "YOLO11 drone detectors"
    )


def test_register_is_pending_with_image_data_metrics_and_metadata(packages: ModelPackages) -> None:
    arn = packages._register(
        GROUP,
        "s3://models/run1/model.tar.gz",
        IMAGE,
        metrics_s3_uri="s3://models/run1/evaluation.json",
        description="yolo11n on aerial-cars",
        customer_metadata={"skyops.run_id": "abc123", "skyops.dataset_fingerprint": "f00d"},
    )
    package = packages.describe(arn)
    assert (package.arn, package.group, package.version, package.status) == (arn, GROUP, 1, ApprovalStatus.PENDING)
    assert (package.image_uri, package.model_data_url) == (IMAGE, "s3://models/run1/model.tar.gz")
    assert package.metrics_s3_uri == "s3://models/run1/evaluation.json"
    assert package.description == "yolo11n on aerial-cars" and package.approval_note == ""
    assert dict(package.customer_metadata) == {"skyops.run_id": "abc123", "skyops.dataset_fingerprint": "f00d"}
    raw = packages.sagemaker.describe_model_package(ModelPackageName=arn)
    assert raw["InferenceSpecification"]["SupportedContentTypes"] == ["application/x-image"]
    assert raw["InferenceSpecification"]["SupportedResponseMIMETypes"] == ["application/json"]
    assert raw["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json",
        "S3Uri": "s3://models/run1/evaluation.json",
    }


def test_without_metrics_no_model_metrics(packages: ModelPackages) -> None:
    arn = _register(packages, 1)
    assert packages.describe(arn).metrics_s3_uri is None
    assert "ModelQuality" not in packages.sagemaker.describe_model_package(ModelPackageName=arn).get("ModelMetrics", {})


def test_approve_and_reject_set_status_and_note(packages: ModelPackages) -> None:
    first, second = _register(packages, 1), _register(packages, 2)
    packages._set_status(first, ApprovalStatus.APPROVED, "mAP50 0.71 beats the champion")
    packages._set_status(second, ApprovalStatus.REJECTED, "recall on small objects dropped")
    assert (packages.describe(first).status, packages.describe(first).approval_note) == (
        ApprovalStatus.APPROVED,
        "mAP50 0.71 beats the champion",
    )
    assert (packages.describe(second).status, packages.describe(second).approval_note) == (
        ApprovalStatus.REJECTED,
        "recall on small objects dropped",
    )


def test_list_versions_oldest_first(packages: ModelPackages) -> None:
    arns = [_register(packages, run) for run in (1, 2, 3)]
    packages._set_status(arns[1], ApprovalStatus.APPROVED, "ok")
    versions = packages.list_versions(GROUP)
    assert [(v.arn, v.version, v.status, v.description) for v in versions] == [
        (arns[0], 1, ApprovalStatus.PENDING, "run 1"),
        (arns[1], 2, ApprovalStatus.APPROVED, "run 2"),
        (arns[2], 3, ApprovalStatus.PENDING, "run 3"),
    ]
    assert versions[0].created <= versions[1].created <= versions[2].created
    assert packages.list_versions("empty-group") == []


def test_latest_approved(packages: ModelPackages) -> None:
    assert packages.latest_approved(GROUP) is None
    arns = [_register(packages, run) for run in (1, 2, 3)]
    assert packages.latest_approved(GROUP) is None  # pending versions do not count
    packages._set_status(arns[0], ApprovalStatus.APPROVED, "first")
    packages._set_status(arns[1], ApprovalStatus.APPROVED, "second")
    packages._set_status(arns[2], ApprovalStatus.REJECTED, "worse")
    latest = packages.latest_approved(GROUP)
    assert latest is not None and (latest.arn, latest.version) == (arns[1], 2)


def test_aws_errors_say_what_was_asked(packages: ModelPackages) -> None:
    with pytest.raises(
        AwsRequestError, match=r"register a version in model package group 'nope' failed: .*Model Package Group does not exist"
    ) as caught:
        packages._register("nope", "s3://m/model.tar.gz", IMAGE)
    assert caught.value.hint == "create the group first: ensure_group('nope')"
    missing = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/drone-detection/99"
    with pytest.raises(
        AwsRequestError, match=rf"describe model package {missing} failed: ValidationException: Model package {missing} not found"
    ):
        packages.describe(missing)
    with pytest.raises(AwsRequestError, match=rf"set model package {missing} to Approved failed: ValidationException"):
        packages._set_status(missing, ApprovalStatus.APPROVED, "ok")


def test_bad_arguments_are_refused_before_any_request(packages: ModelPackages, moto: MotoServer) -> None:
    before = len(moto.requests)
    with pytest.raises(ConfigError, match=r"^5 problems in the new version of model package group 'bad_name!'") as caught:
        packages._register("bad_name!", "/local/model.tar.gz", "", metrics_s3_uri="evaluation.json", customer_metadata={"k": ""})
    assert caught.value.problems == [
        "customer_metadata['k'] = '' must be a string of 1-256 characters",
        "group name 'bad_name!' is not valid; expected 1-63 letters, digits and inner hyphens, e.g. drone-detection",
        "image_uri is empty; expected the inference image, e.g. <account>.dkr.ecr.<region>.amazonaws.com/skyops:1",
        "metrics_s3_uri 'evaluation.json' is not an S3 URI; expected s3://bucket/key",
        "model_data_url '/local/model.tar.gz' is not an S3 URI; expected s3://bucket/key",
    ]
    with pytest.raises(ConfigError, match=r"the note is empty; say why the version is approved"):
        packages._set_status("arn:x", ApprovalStatus.APPROVED, "  ")
    with pytest.raises(ConfigError, match=r"description is 1025 characters long; at most 1024 are allowed"):
        packages.ensure_group(GROUP, description="x" * 1025)
    assert len(moto.requests) == before


def test_refused_guard_sends_nothing(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "other")
    packages = ModelPackages(AwsGuard())
    for call in (lambda: packages.ensure_group(GROUP), lambda: packages.latest_approved(GROUP), lambda: packages.describe("arn:x")):
        with pytest.raises(AwsGuardError, match=r"\$AWS_PROFILE=other names another profile than 'ab'"):
            call()
    assert moto.requests == []


def test_the_champion_on_sagemaker_is_the_newest_approved_version(packages: ModelPackages) -> None:
    said: list[str] = []
    resolve = registry_resolver(packages, said.append)
    assert resolve(f"{GROUP}@champion") is None  # no Approved version yet: a first run compares with none
    first, second, third = (_register(packages, run) for run in (1, 2, 3))
    packages._set_status(first, ApprovalStatus.APPROVED, "the first good one")
    packages._set_status(second, ApprovalStatus.APPROVED, "better")
    packages._set_status(third, ApprovalStatus.REJECTED, "worse")
    assert resolve(f"{GROUP}@champion") == "s3://models/run2/model.tar.gz"
    assert said == [f"comparing with the champion: {GROUP} v2 ({second})"]
    assert resolve("no-such-group@champion") is None  # a group that does not exist yet: nothing to compare with


@pytest.mark.parametrize("reference", [f"{GROUP}@previous", "drone_detector@champion", "champion"])
def test_the_sagemaker_resolver_refuses_other_references(packages: ModelPackages, reference: str) -> None:
    with pytest.raises(ConfigError, match=rf"^registry:{reference} is not registry:<model>@champion$"):
        registry_resolver(packages)(reference)


# ---- the governed registry over the group ----------------------------------------------------------


def test_a_data_scientist_registers_pending_but_cannot_approve_and_both_are_audited(governed: GovernedRegistry[PackageCandidate]) -> None:
    candidate = PackageCandidate(model_data_url="s3://models/run1/model.tar.gz", image_uri=IMAGE, description="run 1")
    done = governed.register("bob", candidate, ApprovalStatus.PENDING.value, reason="pipeline run 1")
    assert (done.model, done.version, done.created) == (GROUP, 1, True)
    with pytest.raises(
        PermissionDenied,
        match=r"^bob \(role data-scientist\) may not approve drone-detection:1: approve needs the role ml-engineer or admin$",
    ):
        governed.approve("bob", 1, reason="looks fine to me")
    packages = governed.store.packages  # type: ignore[attr-defined]
    assert packages.list_versions(GROUP)[0].status is ApprovalStatus.PENDING  # UpdateModelPackage never sent
    assert _audited(governed) == [("bob", "register", GROUP, "succeeded"), ("bob", "approve", f"{GROUP}:1", "denied")]


def test_an_ml_engineer_approves_with_update_model_package(governed: GovernedRegistry[PackageCandidate], packages: ModelPackages) -> None:
    _register(packages, 1)
    change = governed.approve("alice", 1, reason="mAP50 0.71 beats the champion")
    assert (change.version, change.before, change.after) == (1, "PendingManualApproval", "Approved")
    (version,) = packages.list_versions(GROUP)
    described = packages.describe(version.arn)
    assert (described.status, described.approval_note) == (ApprovalStatus.APPROVED, "mAP50 0.71 beats the champion")
    (record,) = AuditLog(governed.governance.audit.path).outcomes()
    assert (record.actor, record.role, record.action, record.outcome, record.details) == (
        "alice",
        "ml-engineer",
        "approve",
        "succeeded",
        {"from": "PendingManualApproval"},
    )
    assert governed.store.resolve("champion") == 1


def test_no_one_registers_a_package_approved(governed: GovernedRegistry[PackageCandidate], packages: ModelPackages) -> None:
    candidate = PackageCandidate(model_data_url="s3://models/run1/model.tar.gz", image_uri=IMAGE)
    with pytest.raises(
        ConfigError,
        match=r"^a new version of drone-detection cannot be registered Approved: a registration is PendingManualApproval or Rejected$",
    ):
        governed.register("alice", candidate, ApprovalStatus.APPROVED.value)
    assert packages.list_versions(GROUP) == []
    assert _audited(governed) == [("alice", "register", GROUP, "failed")]


NO_ALIASES = "SageMaker model package group drone-detection has no aliases, so drone-detection cannot be {}: its champion is its newest Approved version; approve one instead"


@pytest.mark.parametrize(
    ("action", "target", "message"),
    [
        ("promote", f"{GROUP}:1", NO_ALIASES.format("promoted")),
        ("rollback", f"{GROUP}@champion", NO_ALIASES.format("rolled back")),
        ("delete", f"{GROUP}:1", "skyops does not delete versions of SageMaker model package group 'drone-detection'"),
    ],
)
def test_what_a_package_group_cannot_do_is_refused_and_audited(
    governed: GovernedRegistry[PackageCandidate], packages: ModelPackages, action: str, target: str, message: str
) -> None:
    _register(packages, 1)
    governed.approve("alice", 1, reason="good")
    calls = {
        "promote": lambda: governed.promote("alice", 1),
        "rollback": lambda: governed.rollback("alice"),
        "delete": lambda: governed.delete("alice", 1),
    }
    with pytest.raises(ConfigError) as refused:
        calls[action]()
    assert refused.value.message == message
    assert _audited(governed)[-1] == ("alice", action, target, "failed")
    assert [v.status for v in packages.list_versions(GROUP)] == [ApprovalStatus.APPROVED]  # still there, still approved


def test_rejecting_the_newest_approved_package_moves_the_champion(
    governed: GovernedRegistry[PackageCandidate], packages: ModelPackages
) -> None:
    for run in (1, 2):
        _register(packages, run)
        governed.approve("alice", run, reason="good")
    assert governed.store.resolve("@champion") == 2
    governed.reject("alice", "champion", reason="false positives on roofs")  # no alias to guard: a rollback on SageMaker
    assert governed.store.resolve("champion") == 1
    with pytest.raises(SkyopsError, match=r"^model package group 'drone-detection' has no version 9$"):
        governed.approve("alice", 9)
