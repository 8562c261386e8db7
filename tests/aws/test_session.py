"""The AWS guard: every refusal happens before any request (counted on a real moto server), and ab works."""

from __future__ import annotations

import subprocess
import sys

import pytest

from skyops.aws.model_packages import ModelPackages
from skyops.aws.session import AwsGuard, guarded_session
from skyops.errors import AwsGuardError
from skyops.settings import Settings

from .conftest import AwsFiles, MotoServer

# what the guard accepts


def test_profile_ab_passes_with_its_region_and_keys(aws_files: AwsFiles) -> None:
    report = AwsGuard().check()
    assert (report.profile, report.region, report.region_source) == ("ab", "eu-west-1", "profile ab")
    assert report.credentials == "shared-credentials-file"
    assert report.files == (aws_files.config, aws_files.credentials)
    assert report.endpoint_url is None


def test_region_precedence_explicit_then_env_then_profile(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert (AwsGuard().check().region, AwsGuard().check().region_source) == ("us-west-2", "$AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert AwsGuard().check().region == "ap-south-1"
    assert AwsGuard(region="sa-east-1").check().region_source == "explicit"
    assert guarded_session(region="sa-east-1").region_name == "sa-east-1"


def test_matching_profile_env_and_unexpired_process_credentials_pass(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "fresh")
    assert AwsGuard("fresh").check().credentials == "custom-process"


def test_guard_follows_settings(aws_files: AwsFiles) -> None:
    guard = AwsGuard.from_settings(Settings(project_dir=aws_files.home, state_dir=aws_files.home, aws_profile="other"))
    assert guard.check().region == "us-east-1"


def test_an_override_equal_to_the_allowed_loopback_url_passes(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("SKYOPS_ALLOW_ENDPOINT_URL", "http://127.0.0.1:9")
    report = AwsGuard().check()
    assert (report.endpoint_url, report.allowed_endpoint) == ("http://127.0.0.1:9", "http://127.0.0.1:9")


# what the guard refuses, and how it says so


@pytest.mark.parametrize("variable", ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])
def test_env_naming_another_profile(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "other")
    with pytest.raises(
        AwsGuardError,
        match=rf"1 problem in the AWS guard for profile 'ab' \(refused before any request\):\n  - \${variable}=other names another profile than 'ab'",
    ) as caught:
        AwsGuard().check()
    assert f"fix: unset {variable} (or set it to ab), or set SKYOPS_AWS_PROFILE=other" in caught.value.message
    assert "aws configure list --profile ab" in caught.value.hint


def test_profile_missing_lists_profiles_and_files(aws_files: AwsFiles) -> None:
    with pytest.raises(
        AwsGuardError,
        match=rf"profile 'prod' is not defined in {aws_files.config} and {aws_files.credentials} "
        r"\(profiles found: ab, expired, fresh, nocreds, noregion, other, partial\); fix: `aws configure --profile prod`",
    ):
        AwsGuard("prod").check()


def test_default_files_are_under_home(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_CONFIG_FILE")
    monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE")
    aws = aws_files.home / ".aws"
    with pytest.raises(AwsGuardError, match=rf"profile 'ab' is not defined in {aws}/config and {aws}/credentials \(profiles found: none\)"):
        AwsGuard().check()


def test_no_region(aws_files: AwsFiles) -> None:
    with pytest.raises(
        AwsGuardError, match=r"no region for profile 'noregion': none given, \$AWS_REGION and \$AWS_DEFAULT_REGION are unset"
    ):
        AwsGuard("noregion").check()


def test_no_credentials(aws_files: AwsFiles) -> None:
    with pytest.raises(
        AwsGuardError,
        match=r"profile 'nocreds' has no credentials \(none of aws_access_key_id, role_arn, .*\); fix: `aws configure --profile nocreds`",
    ):
        AwsGuard("nocreds").check()


def test_partial_keys(aws_files: AwsFiles) -> None:
    with pytest.raises(AwsGuardError) as caught:
        AwsGuard("partial").check()
    assert caught.value.problems == [
        f"profile 'partial' has aws_access_key_id but no aws_secret_access_key in {aws_files.credentials}; "
        "fix: add the secret key beside it (`aws configure --profile partial`)"
    ]


def test_expired_credentials(aws_files: AwsFiles) -> None:
    with pytest.raises(AwsGuardError, match=r"the credentials of profile 'expired' \(from custom-process\) have expired; fix: renew them"):
        AwsGuard("expired").check()


def test_env_credentials_would_override_the_profile(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    with pytest.raises(
        AwsGuardError, match=r"\$AWS_ACCESS_KEY_ID, \$AWS_SESSION_TOKEN set in the environment: such keys take precedence over profile 'ab'"
    ):
        AwsGuard().check()


def test_every_problem_at_once(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "other")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    with pytest.raises(AwsGuardError, match=r"^3 problems in the AWS guard for profile 'nocreds'") as caught:
        AwsGuard("nocreds").check()
    assert [p.split(" ")[0] for p in caught.value.problems] == ["$AWS_PROFILE=other", "$AWS_SECRET_ACCESS_KEY", "profile"]


def test_boto3_is_not_imported_with_the_modules() -> None:
    code = "import sys, skyops.aws.session, skyops.aws.model_packages, skyops.registry.roles; print(sorted({'boto3', 'botocore', 'yaml'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


# requests on a real moto server: none unless the guard passes


REFUSALS = {
    "AWS_PROFILE names other": ("ab", {"AWS_PROFILE": "other"}),
    "AWS_DEFAULT_PROFILE names other": ("ab", {"AWS_DEFAULT_PROFILE": "other"}),
    "profile not configured": ("prod", {}),
    "no region": ("noregion", {}),
    "no credentials": ("nocreds", {}),
    "expired credentials": ("expired", {}),
    "keys in the environment": ("ab", {"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "x"}),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_no_request_reaches_the_server_when_refused(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    profile, env = REFUSALS[case]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    guard = AwsGuard(profile)
    calls = [
        lambda: guard.client("sts").get_caller_identity(),
        lambda: guard.client("s3").list_buckets(),
        lambda: guarded_session(profile).client("s3", endpoint_url=moto.url).list_buckets(),
        lambda: ModelPackages(guard).list_versions("drone-detection"),
    ]
    for call in calls:
        with pytest.raises(AwsGuardError, match=rf"in the AWS guard for profile '{profile}' \(refused before any request\)"):
            call()
    assert moto.requests == []


def test_profile_ab_reaches_the_server(moto: MotoServer) -> None:
    guard = AwsGuard()
    assert guard.client("sts").get_caller_identity()["Account"] == "123456789012"
    s3 = guard.client("s3")
    s3.create_bucket(Bucket="skyops-test", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["skyops-test"]
    assert guard.session() is guard.session()  # checked once, one session
    assert len(moto.requests) == 3 and moto.requests[0].startswith("POST 127.0.0.1")
