"""SageMaker model package groups through the guard, against a real moto server."""

from __future__ import annotations

import pytest

from skyops.aws.model_packages import ApprovalStatus, ModelPackages, registry_resolver
from skyops.aws.session import AwsGuard, AwsRequestError
from skyops.errors import AwsGuardError, ConfigError

from .conftest import MotoServer

GROUP = "drone-detection"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/skyops-inference:1"


@pytest.fixture
def packages(moto: MotoServer) -> ModelPackages:
    """A registry client on the moto server with group drone-detection created."""
    packages = ModelPackages(AwsGuard())
    packages.ensure_group(GROUP, description="YOLO11 drone detectors")
    return packages


def _register(packages: ModelPackages, run: int) -> str:
    return packages.register(GROUP, f"s3://models/run{run}/model.tar.gz", IMAGE, description=f"run {run}")


def test_ensure_group_creates_once(packages: ModelPackages, moto: MotoServer) -> None:
    arn = packages.ensure_group(GROUP)
    assert arn == f"arn:aws:sagemaker:eu-west-1:123456789012:model-package-group/{GROUP}"
    assert packages.ensure_group("other-group").endswith(":model-package-group/other-group")
    assert (
        packages.sagemaker.describe_model_package_group(ModelPackageGroupName=GROUP)["ModelPackageGroupDescription"]
        == "YOLO11 drone detectors"
    )


def test_register_is_pending_with_image_data_metrics_and_metadata(packages: ModelPackages) -> None:
    arn = packages.register(
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
    packages.approve(first, "mAP50 0.71 beats the champion")
    packages.reject(second, "recall on small objects dropped")
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
    packages.approve(arns[1], "ok")
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
    packages.approve(arns[0], "first")
    packages.approve(arns[1], "second")
    packages.reject(arns[2], "worse")
    latest = packages.latest_approved(GROUP)
    assert latest is not None and (latest.arn, latest.version) == (arns[1], 2)


def test_aws_errors_say_what_was_asked(packages: ModelPackages) -> None:
    with pytest.raises(
        AwsRequestError, match=r"register a version in model package group 'nope' failed: .*Model Package Group does not exist"
    ) as caught:
        packages.register("nope", "s3://m/model.tar.gz", IMAGE)
    assert caught.value.hint == "create the group first: ensure_group('nope')"
    missing = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/drone-detection/99"
    with pytest.raises(
        AwsRequestError, match=rf"describe model package {missing} failed: ValidationException: Model package {missing} not found"
    ):
        packages.describe(missing)
    with pytest.raises(AwsRequestError, match=rf"set model package {missing} to Approved failed: ValidationException"):
        packages.approve(missing, "ok")


def test_bad_arguments_are_refused_before_any_request(packages: ModelPackages, moto: MotoServer) -> None:
    before = len(moto.requests)
    with pytest.raises(ConfigError, match=r"^5 problems in the new version of model package group 'bad_name!'") as caught:
        packages.register("bad_name!", "/local/model.tar.gz", "", metrics_s3_uri="evaluation.json", customer_metadata={"k": ""})
    assert caught.value.problems == [
        "customer_metadata['k'] = '' must be a string of 1-256 characters",
        "group name 'bad_name!' is not valid; expected 1-63 letters, digits and inner hyphens, e.g. drone-detection",
        "image_uri is empty; expected the inference image, e.g. <account>.dkr.ecr.<region>.amazonaws.com/skyops:1",
        "metrics_s3_uri 'evaluation.json' is not an S3 URI; expected s3://bucket/key",
        "model_data_url '/local/model.tar.gz' is not an S3 URI; expected s3://bucket/key",
    ]
    with pytest.raises(ConfigError, match=r"the note is empty; say why the version is approved"):
        packages.approve("arn:x", "  ")
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
    packages.approve(first, "the first good one")
    packages.approve(second, "better")
    packages.reject(third, "worse")
    assert resolve(f"{GROUP}@champion") == "s3://models/run2/model.tar.gz"
    assert said == [f"comparing with the champion: {GROUP} v2 ({second})"]
    assert resolve("no-such-group@champion") is None  # a group that does not exist yet: nothing to compare with


@pytest.mark.parametrize("reference", [f"{GROUP}@previous", "drone_detector@champion", "champion"])
def test_the_sagemaker_resolver_refuses_other_references(packages: ModelPackages, reference: str) -> None:
    with pytest.raises(ConfigError, match=rf"^registry:{reference} is not registry:<model>@champion$"):
        registry_resolver(packages)(reference)
