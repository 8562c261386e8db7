"""The guard's decision from configuration: each credential source a profile can name, and each endpoint override,
accepted or refused with one line saying what, where and how to fix it. Nothing here sends a request: the
accepted sources are ones whose credentials come on the first request (SSO, roles) or from a file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from skyops.aws.session import AwsGuard
from skyops.errors import AwsGuardError

from .conftest import AwsFiles

SSO_SESSION = """\
[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-west-1
"""
SSO_PROFILE = """\
[profile sso]
region = eu-west-1
sso_session = corp
sso_account_id = 123456789012
sso_role_name = Engineer
"""
ROLE = "region = eu-west-1\nrole_arn = arn:aws:iam::123456789012:role/skyops\n"


def add_config(files: AwsFiles, text: str) -> None:
    files.config.write_text(files.config.read_text() + "\n" + text)


def add_to_ab(files: AwsFiles, lines: str, sections: str = "") -> None:
    """Lines added to [profile ab] of the config file, and sections after it."""
    files.config.write_text(files.config.read_text().replace("[profile ab]\n", f"[profile ab]\n{lines}") + "\n" + sections)


def refused(profile: str) -> list[str]:
    """The problems of the guard's refusal of `profile` (each must carry its fix)."""
    with pytest.raises(AwsGuardError, match=rf"in the AWS guard for profile '{profile}' \(refused before any request\)") as caught:
        AwsGuard(profile).check()
    assert all("; fix: " in problem for problem in caught.value.problems), caught.value.problems
    return caught.value.problems


def write_token(home: Path, name: str, **token: str) -> Path:
    """A cached SSO token as `aws sso login` leaves it: ~/.aws/sso/cache/<sha1 of the session name>.json."""
    path = home / ".aws" / "sso" / "cache" / f"{hashlib.sha1(name.encode()).hexdigest()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"startUrl": "https://corp.awsapps.com/start", "region": "eu-west-1", "accessToken": "t", **token}))
    return path


# SSO


def test_sso_with_a_valid_cached_token_passes_without_a_request(aws_files: AwsFiles) -> None:
    add_config(aws_files, SSO_PROFILE + SSO_SESSION)
    write_token(aws_files.home, "corp", expiresAt="2999-01-01T00:00:00Z")
    assert AwsGuard("sso").check().credentials == "sso"  # role credentials come on the first request


def test_sso_token_expired_but_refreshable_passes(aws_files: AwsFiles) -> None:
    add_config(aws_files, SSO_PROFILE + SSO_SESSION)
    write_token(
        aws_files.home,
        "corp",
        expiresAt="2001-01-01T00:00:00Z",
        refreshToken="r",
        clientId="c",
        clientSecret="s",
        registrationExpiresAt="2999-01-01T00:00:00Z",
    )
    assert AwsGuard("sso").check().credentials == "sso"


def test_sso_token_expired(aws_files: AwsFiles) -> None:
    add_config(aws_files, SSO_PROFILE + SSO_SESSION)
    path = write_token(
        aws_files.home,
        "corp",
        expiresAt="2001-01-01T00:00:00Z",
        refreshToken="r",
        clientId="c",
        clientSecret="s",
        registrationExpiresAt="2002-01-01T00:00:00Z",
    )
    assert refused("sso") == [
        f"the SSO token of profile 'sso' in {path} expired at 2001-01-01 00:00:00 UTC and cannot be refreshed; "
        "fix: `aws sso login --profile sso`"
    ]


def test_sso_token_missing_or_unreadable(aws_files: AwsFiles) -> None:
    add_config(aws_files, SSO_PROFILE + SSO_SESSION)
    path = aws_files.home / ".aws" / "sso" / "cache" / f"{hashlib.sha1(b'corp').hexdigest()}.json"
    assert refused("sso") == [f"profile 'sso' has no SSO token (no {path}); fix: `aws sso login --profile sso`"]
    path.parent.mkdir(parents=True)
    path.write_text('{"expiresAt": "2999-01-01T00:00:00Z"}')
    assert refused("sso") == [f"profile 'sso' has an unreadable SSO token in {path}; fix: `aws sso login --profile sso`"]


def test_legacy_sso_token_is_found_by_start_url(aws_files: AwsFiles) -> None:
    add_config(
        aws_files,
        "[profile legacy]\nregion = eu-west-1\nsso_start_url = https://corp.awsapps.com/start\nsso_region = eu-west-1\n"
        "sso_account_id = 123456789012\nsso_role_name = Engineer\n",
    )
    write_token(
        aws_files.home,
        "https://corp.awsapps.com/start",
        expiresAt="2001-01-01T00:00:00Z",
        refreshToken="r",
        clientId="c",
        clientSecret="s",
        registrationExpiresAt="2999-01-01T00:00:00Z",
    )
    assert refused("legacy")[0].startswith("the SSO token of profile 'legacy'")  # a legacy token is never refreshed


def test_sso_session_not_defined(aws_files: AwsFiles) -> None:
    """Issue 11: botocore fell through to the instance metadata service for this profile."""
    add_config(aws_files, "[profile ssoless]\nregion = eu-west-1\nsso_session = missing\n")
    assert refused("ssoless") == [
        "profile 'ssoless' has no credentials (none of aws_access_key_id, role_arn, sso_account_id, sso_role_name, credential_process, "
        f"web_identity_token_file, login_session in {aws_files.config} and {aws_files.credentials}); "
        "fix: `aws configure --profile ssoless` for keys, or `aws configure sso --profile ssoless`",
        f"profile 'ssoless' names sso_session 'missing', which is not defined in {aws_files.config} (sso-sessions found: none); "
        f"fix: add [sso-session missing] with sso_start_url and sso_region to {aws_files.config}, or run `aws configure sso --profile ssoless`",
    ]


def test_sso_session_not_defined_fails_a_profile_with_keys_too(aws_files: AwsFiles) -> None:
    add_to_ab(aws_files, "sso_session = gone\n")
    assert [p.split(",")[0] for p in refused("ab")] == ["profile 'ab' names sso_session 'gone'"]


def test_sso_settings_missing_or_inconsistent(aws_files: AwsFiles) -> None:
    add_config(aws_files, "[profile half]\nregion = eu-west-1\nsso_role_name = Engineer\n")
    assert refused("half") == [
        f"profile 'half' uses SSO but has no sso_start_url, sso_region, sso_account_id in {aws_files.config}; "
        "fix: `aws configure sso --profile half`"
    ]
    add_config(
        aws_files,
        SSO_SESSION + "[profile twice]\nregion = eu-west-1\nsso_session = corp\nsso_region = us-east-1\n"
        "sso_account_id = 1\nsso_role_name = r\n",
    )
    assert refused("twice")[0] == (
        f"profile 'twice' and sso-session 'corp' give different sso_region (us-east-1 and eu-west-1) in {aws_files.config}; "
        "fix: keep it in the sso-session only"
    )


# roles, web identity, config-file keys, login


def test_role_from_a_source_profile_passes_and_its_call_waits_for_the_first_request(aws_files: AwsFiles) -> None:
    add_config(aws_files, f"[profile role]\n{ROLE}source_profile = ab\n\n[profile chained]\n{ROLE}source_profile = role\n")
    assert AwsGuard("role").check().credentials == "assume-role"
    assert AwsGuard("chained").check().credentials == "assume-role"


@pytest.mark.parametrize("source", ["Ec2InstanceMetadata", "EcsContainer", "Environment"])
def test_role_from_credential_source_is_refused(aws_files: AwsFiles, source: str) -> None:
    add_config(aws_files, f"[profile machine]\n{ROLE}credential_source = {source}\n")
    assert refused("machine") == [
        f"profile 'machine' takes its role's source credentials from credential_source = {source} in {aws_files.config}: "
        "the machine's (instance metadata, a container) or the environment's, so who acts would depend on where skyops runs; "
        "fix: use source_profile = <a profile with keys or SSO> instead"
    ]


def test_role_chains_that_end_nowhere(aws_files: AwsFiles) -> None:
    add_config(
        aws_files,
        f"[profile lone]\n{ROLE}\n[profile lost]\n{ROLE}source_profile = nowhere\n[profile empty]\n{ROLE}source_profile = nocreds\n"
        f"[profile ping]\n{ROLE}source_profile = pong\n[profile pong]\n{ROLE}source_profile = ping\n",
    )
    assert refused("lone") == [
        f"profile 'lone' has role_arn but no source_profile in {aws_files.config}; fix: add source_profile = <a profile with keys or SSO>"
    ]
    assert refused("lost")[0].startswith(f"source_profile 'nowhere' of profile 'lost' is not defined in {aws_files.config} and ")
    assert refused("empty")[0].startswith("profile 'nocreds' (source_profile of 'empty') has no credentials")
    assert refused("ping")[0].startswith("profiles ping -> pong -> ping name each other as source_profile in a loop")


def test_web_identity_needs_its_token_file(aws_files: AwsFiles, tmp_path: Path) -> None:
    token = tmp_path / "token"
    add_config(aws_files, f"[profile web]\n{ROLE}web_identity_token_file = {token}\n")
    assert refused("web") == [f"web_identity_token_file {token} of profile 'web' does not exist; fix: point it at the token file"]
    token.write_text("jwt")
    assert AwsGuard("web").check().credentials == "assume-role-with-web-identity"


def test_keys_in_the_config_file_and_login_sessions(aws_files: AwsFiles) -> None:
    add_config(aws_files, "[profile cfg]\nregion = eu-west-1\naws_access_key_id = a\naws_secret_access_key = b\n")
    assert AwsGuard("cfg").check().credentials == "config-file"
    add_config(aws_files, "[profile cfghalf]\nregion = eu-west-1\naws_access_key_id = a\n")
    assert refused("cfghalf") == [
        f"profile 'cfghalf' has aws_access_key_id but no aws_secret_access_key in {aws_files.config}; "
        "fix: add the secret key beside it (`aws configure --profile cfghalf`)"
    ]


def test_a_security_token_in_the_environment(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "t")
    assert refused("ab")[0].startswith("$AWS_SECURITY_TOKEN set in the environment")


# endpoint overrides


def test_each_override_is_one_line(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    add_to_ab(aws_files, "endpoint_url = http://10.0.0.1\nservices = here\n", "[services here]\ns3 =\n  endpoint_url = http://10.0.0.2\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://10.0.0.3")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", "http://10.0.0.4")
    other = " (only a test server on a loopback address can be allowed, with $SKYOPS_ALLOW_ENDPOINT_URL)"
    assert refused("ab") == [
        f"$AWS_ENDPOINT_URL sends signed requests to http://10.0.0.3 instead of AWS; fix: unset AWS_ENDPOINT_URL{other}",
        f"$AWS_ENDPOINT_URL_SAGEMAKER sends signed requests to http://10.0.0.4 instead of AWS; fix: unset AWS_ENDPOINT_URL_SAGEMAKER{other}",
        f"endpoint_url in profile 'ab' ({aws_files.config} and {aws_files.credentials}) sends signed requests to http://10.0.0.1 "
        f"instead of AWS; fix: remove it from the profile{other}",
        f"endpoint_url of s3 in [services here] of {aws_files.config} sends signed requests to http://10.0.0.2 instead of AWS; "
        f"fix: remove it (or `services` from profile 'ab'){other}",
    ]


def test_a_loopback_override_names_the_allow_setting(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000")
    monkeypatch.setenv("SKYOPS_ALLOW_ENDPOINT_URL", "http://127.0.0.1:5001")
    assert refused("ab") == [
        "$AWS_ENDPOINT_URL_STS sends signed requests to http://127.0.0.1:5000 instead of AWS; fix: unset AWS_ENDPOINT_URL_STS, "
        "or, for the test server on this machine, set SKYOPS_ALLOW_ENDPOINT_URL=http://127.0.0.1:5000"
    ]


@pytest.mark.parametrize("allow", ["http://10.0.0.3", "http://localhost:9", "http://127.0.0.1:9/api", "ftp://127.0.0.1"])
def test_only_a_loopback_url_can_be_allowed(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch, allow: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", allow)
    monkeypatch.setenv("SKYOPS_ALLOW_ENDPOINT_URL", allow)
    problems = refused("ab")
    assert problems[1] == (
        f"$SKYOPS_ALLOW_ENDPOINT_URL={allow} is not a loopback URL: it only lets tests reach a local server (http://127.0.0.1:PORT, "
        "no path), never another machine; fix: unset SKYOPS_ALLOW_ENDPOINT_URL, or set it to the local server's URL"
    )
    assert problems[0].startswith(f"$AWS_ENDPOINT_URL sends signed requests to {allow} instead of AWS")


def test_a_services_section_that_does_not_exist(aws_files: AwsFiles) -> None:
    add_to_ab(aws_files, "services = nowhere\n")
    assert refused("ab") == [
        f"profile 'ab' names services section 'nowhere', which is not defined in {aws_files.config}; "
        "fix: add [services nowhere] or remove `services` from the profile"
    ]


def test_overrides_botocore_is_told_to_ignore_are_not_in_force(aws_files: AwsFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://10.0.0.3")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert AwsGuard().check().endpoint_url is None
