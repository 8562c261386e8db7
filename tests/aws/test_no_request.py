"""No request of any kind before the guard has decided: a counting listener on 127.0.0.1 stands in for the
instance metadata service, the container credentials endpoint and every endpoint a request could go to.

Every refused configuration leaves it with zero connections ($AWS_EC2_METADATA_DISABLED unset: the guard
alone prevents them), and the accepted profile still reaches the moto server.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from skyops.aws.model_packages import ModelPackages
from skyops.aws.session import AwsGuard, guarded_session
from skyops.errors import AwsGuardError

from .conftest import AwsFiles, CountingListener, MotoServer

# A credential process that first tells the listener it ran (a connection), then prints fresh credentials.
CONNECTING_PROCESS = """\
import json, socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10).sendall(b"credential_process ran\\n")
print(json.dumps({"Version": 1, "AccessKeyId": "AKIDPROC", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": "2999-01-01T00:00:00Z"}))
"""
SSO = """\
[profile sso]
region = eu-west-1
sso_session = corp
sso_account_id = 123456789012
sso_role_name = Engineer

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = eu-west-1
"""
ROLE = "role_arn = arn:aws:iam::123456789012:role/skyops\n"
UNSET = ""  # a case's env value that removes the variable


@dataclass(frozen=True)
class Case:
    """A refused configuration: the profile the guard is asked for, config added to the test files, env changes.

    `{process}` in config is a credential process that connects to the listener; `{listener}` its URL.
    """

    profile: str
    config: str = ""
    env: dict[str, str] = field(default_factory=dict)
    sso_token_expires: str | None = None  # write a cached SSO token for session 'corp' expiring then
    no_files: bool = False
    refusal: str = ""  # a regex the refusal must contain


CASES = {
    "AWS_PROFILE names another profile": Case("ab", env={"AWS_PROFILE": "other"}, refusal=r"\$AWS_PROFILE=other names another profile"),
    "no config or credentials file": Case("ab", no_files=True, refusal=r"profile 'ab' is not defined in .* \(profiles found: none\)"),
    "profile not defined": Case("prod", refusal=r"profile 'prod' is not defined"),
    "SSO session not defined (issue 11)": Case(
        "ssoless",
        "[profile ssoless]\nregion = eu-west-1\nsso_session = missing\n",
        refusal=r"names sso_session 'missing', which is not defined",
    ),
    "SSO session not defined, SSO role named": Case(
        "ssoless", "[profile ssoless]\nregion = eu-west-1\nsso_session = missing\nsso_account_id = 123456789012\nsso_role_name = Engineer\n"
    ),
    "SSO token not cached": Case("sso", SSO, refusal=r"profile 'sso' has no SSO token \(no .*/home/.aws/sso/cache/"),
    "SSO token expired": Case(
        "sso", SSO, sso_token_expires="2001-01-01T00:00:00Z", refusal=r"the SSO token of profile 'sso' .* expired at 2001"
    ),
    "credential_process without a region": Case(
        "proc", "[profile proc]\ncredential_process = {process}\n", refusal=r"no region for profile 'proc'"
    ),
    "credential_process beside an undefined SSO session": Case(
        "proc", "[profile proc]\nregion = eu-west-1\nsso_session = missing\ncredential_process = {process}\n"
    ),
    "credential_process, endpoint override not allowed": Case(
        "proc",
        "[profile proc]\nregion = eu-west-1\ncredential_process = {process}\n",
        env={"SKYOPS_ALLOW_ENDPOINT_URL": UNSET},
        refusal=r"\$AWS_ENDPOINT_URL sends signed requests to http://127.0.0.1:\d+ instead of AWS",
    ),
    "role from instance metadata (credential_source)": Case(
        "imds", f"[profile imds]\nregion = eu-west-1\n{ROLE}credential_source = Ec2InstanceMetadata\n", refusal=r"credential_source = Ec2"
    ),
    "role from a container (credential_source)": Case(
        "ecs", f"[profile ecs]\nregion = eu-west-1\n{ROLE}credential_source = EcsContainer\n"
    ),
    "role whose source_profile is not defined": Case(
        "role",
        f"[profile role]\nregion = eu-west-1\n{ROLE}source_profile = nowhere\n",
        refusal=r"source_profile 'nowhere' of profile 'role'",
    ),
    "role whose source_profile has no credentials": Case(
        "role",
        f"[profile role]\nregion = eu-west-1\n{ROLE}source_profile = nocreds\n",
        refusal=r"profile 'nocreds' \(source_profile of 'role'\)",
    ),
    "keys in the environment": Case("ab", env={"AWS_ACCESS_KEY_ID": "AKIDENV", "AWS_SECRET_ACCESS_KEY": "x"}),
    "$AWS_ENDPOINT_URL not allowed": Case("ab", env={"SKYOPS_ALLOW_ENDPOINT_URL": UNSET}),
    "$AWS_ENDPOINT_URL_STS not allowed": Case(
        "ab", env={"AWS_ENDPOINT_URL": UNSET, "AWS_ENDPOINT_URL_STS": "{listener}", "SKYOPS_ALLOW_ENDPOINT_URL": UNSET}
    ),
    "allowed URL is another one": Case("ab", env={"SKYOPS_ALLOW_ENDPOINT_URL": "http://127.0.0.1:1"}),
    "allowed URL is not a loopback address": Case(
        "ab",
        env={"AWS_ENDPOINT_URL": "http://localhost:{port}", "SKYOPS_ALLOW_ENDPOINT_URL": "http://localhost:{port}"},
        refusal=r"\$SKYOPS_ALLOW_ENDPOINT_URL=http://localhost:\d+ is not a loopback URL",
    ),
    "endpoint_url in the profile": Case(
        "local",
        "[profile local]\nregion = eu-west-1\ncredential_process = {process}\nendpoint_url = {listener}\n",
        env={"AWS_ENDPOINT_URL": UNSET, "SKYOPS_ALLOW_ENDPOINT_URL": UNSET},
        refusal=r"endpoint_url in profile 'local'",
    ),
    "services section in the profile": Case(
        "local",
        "[profile local]\nregion = eu-west-1\ncredential_process = {process}\nservices = here\n\n[services here]\nsts =\n  endpoint_url = {listener}\n",
        env={"AWS_ENDPOINT_URL": UNSET, "SKYOPS_ALLOW_ENDPOINT_URL": UNSET},
        refusal=r"endpoint_url of sts in \[services here\]",
    ),
    "no region": Case("noregion"),
    "no credentials": Case("nocreds"),
    "partial keys": Case("partial"),
    "expired credentials": Case("expired", refusal=r"the credentials of profile 'expired' \(from custom-process\) have expired"),
}


def _prepare(case: Case, files: AwsFiles, listener: CountingListener, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write the case's files and env; every client is sent to the listener (allowed) unless the case says otherwise."""
    process = files.home.parent / "connecting_process.py"
    process.write_text(CONNECTING_PROCESS)
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(process))} {listener.port}"
    values = {"process": command, "listener": listener.url, "port": str(listener.port)}
    files.config.write_text(files.config.read_text() + "\n" + case.config.format(**values))
    if case.no_files:
        files.config.unlink()
        files.credentials.unlink()
    if case.sso_token_expires:
        cache = files.home / ".aws" / "sso" / "cache"
        cache.mkdir(parents=True)
        token = {
            "startUrl": "https://corp.awsapps.com/start",
            "region": "eu-west-1",
            "accessToken": "t",
            "expiresAt": case.sso_token_expires,
        }
        (cache / f"{hashlib.sha1(b'corp').hexdigest()}.json").write_text(json.dumps(token))
    env = {"AWS_ENDPOINT_URL": listener.url, "SKYOPS_ALLOW_ENDPOINT_URL": listener.url, **case.env}
    for name, value in env.items():
        if value == UNSET:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value.format(**values))


@pytest.mark.parametrize("name", CASES)
def test_a_refused_configuration_sends_nothing(
    name: str, aws_files: AwsFiles, listener: CountingListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    _prepare(case, aws_files, listener, monkeypatch)
    guard = AwsGuard(case.profile)
    calls: list[Callable[[], Any]] = [
        guard.check,
        lambda: guard.client("sts").get_caller_identity(),
        lambda: guarded_session(case.profile).client("s3").list_buckets(),
        lambda: ModelPackages(AwsGuard(case.profile)).list_versions("drone-detection"),
    ]
    refusals = []
    for call in calls:
        with pytest.raises(
            AwsGuardError, match=rf"in the AWS guard for profile '{case.profile}' \(refused before any request\):\n"
        ) as caught:
            call()
        refusals.append(caught.value)
    assert listener.connections() == []
    for refused in refusals:
        assert all(" fix: " in problem for problem in refused.problems), refused.problems
        assert not case.refusal or any(re.search(case.refusal, problem) for problem in refused.problems), refused.problems


def test_the_listener_sees_what_botocore_alone_would_send(
    aws_files: AwsFiles, listener: CountingListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness can fail: botocore's own chain asks the container endpoint and the metadata service for a profile
    without credentials, and runs a profile's credential process, whatever else is wrong."""
    import boto3
    from botocore.exceptions import CredentialRetrievalError

    _prepare(CASES["SSO session not defined (issue 11)"], aws_files, listener, monkeypatch)
    with pytest.raises(CredentialRetrievalError, match="container-role"):
        boto3.Session(profile_name="ssoless").get_credentials()
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    assert boto3.Session(profile_name="ssoless").get_credentials() is None
    _prepare(CASES["credential_process, endpoint override not allowed"], aws_files, listener, monkeypatch)
    boto3.Session(profile_name="proc").client("sts")  # creating a client loads the credentials
    assert set(listener.connections()) == {  # botocore retries some of them
        "GET /container-credentials HTTP/1.1",
        "PUT /latest/api/token HTTP/1.1",
        "GET /latest/meta-data/iam/security-credentials/ HTTP/1.1",
        "credential_process ran",
    }


def test_an_endpoint_given_in_code_is_refused_before_its_request(
    aws_files: AwsFiles, listener: CountingListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Profile ab is accepted; a client the code points elsewhere is refused (by the guard, and by the session's handler)."""
    assert AwsGuard().check().allowed_endpoint is None
    with pytest.raises(AwsGuardError, match=rf"refused endpoint_url={listener.url} for a s3 client: only AWS itself"):
        AwsGuard().client("s3", endpoint_url=listener.url)
    with pytest.raises(AwsGuardError, match=rf"refused a client's endpoint {listener.url}: only AWS itself, or the loopback URL"):
        guarded_session().client("s3", endpoint_url=listener.url).list_buckets()
    monkeypatch.setenv("SKYOPS_ALLOW_ENDPOINT_URL", "http://127.0.0.1:1")  # allowed: another test server
    with pytest.raises(AwsGuardError, match=r"refused a client's endpoint"):
        guarded_session().client("sts", endpoint_url=listener.url + "/").get_caller_identity()
    assert listener.connections() == []


def test_the_accepted_profile_reaches_moto_and_nothing_else(moto: MotoServer, listener: CountingListener) -> None:
    assert AwsGuard().client("sts").get_caller_identity()["Account"] == "123456789012"
    assert [r.split(" ")[0] for r in moto.requests] == ["POST"]
    assert listener.connections() == []


def test_an_allowed_endpoint_given_in_code_is_used(moto: MotoServer, listener: CountingListener, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    guard = AwsGuard()
    assert (guard.check().endpoint_url, guard.check().allowed_endpoint) == (None, moto.url)
    assert guard.client("s3", endpoint_url=moto.url).list_buckets()["Buckets"] == []
    assert len(moto.requests) == 1 and listener.connections() == []
