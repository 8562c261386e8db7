"""The one factory of AWS sessions and clients in skyops, guarded by the configured profile.

    guard = AwsGuard()                       # profile 'ab' (settings.aws_profile), region from the profile
    sagemaker = guard.client("sagemaker")    # AwsGuardError before any request unless the checks pass

Checks, all before any request, every problem reported at once:
1. $AWS_PROFILE / $AWS_DEFAULT_PROFILE, when set, name the guard's profile (not another one).
2. No credentials in the environment ($AWS_ACCESS_KEY_ID, ...): the AWS CLI, child processes and any
   session that names no profile would use those keys instead of the profile.
3. The profile is defined in the config or credentials file ($AWS_CONFIG_FILE /
   $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/config and ~/.aws/credentials).
4. A region resolves: the explicit one, else $AWS_REGION, else $AWS_DEFAULT_REGION, else the profile's.
5. The profile defines credentials (keys, a role, SSO, a credential process, ...) and botocore loads
   them from the profile (not from instance metadata or a container role).
6. Credentials with an expiry are not expired. Static keys cannot expire; credentials fetched on the
   first request (assume-role, SSO) are checked by botocore then.

$SKYOPS_AWS_ENDPOINT_URL sends every client to another endpoint (a moto server in tests).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import skyops
from skyops.errors import AwsGuardError, SkyopsError, problems_error
from skyops.settings import DEFAULT_AWS_PROFILE, Settings

if TYPE_CHECKING:
    from boto3 import Session

ENDPOINT_ENV = "SKYOPS_AWS_ENDPOINT_URL"
PROFILE_ENVS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
CREDENTIAL_ENVS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
REGION_ENVS = ("AWS_REGION", "AWS_DEFAULT_REGION")
# Profile keys from which botocore builds credentials; a profile with none of them has no credentials.
CREDENTIAL_KEYS = (
    "aws_access_key_id",
    "role_arn",
    "sso_session",
    "sso_start_url",
    "credential_process",
    "web_identity_token_file",
    "login_session",
)
# botocore's `Credentials.method` of credentials that came from the profile. The others (env, iam-role,
# container-role, boto-config, ec2-credentials-file) come from elsewhere and would act as someone else.
PROFILE_METHODS = frozenset(
    {"shared-credentials-file", "config-file", "custom-process", "assume-role", "assume-role-with-web-identity", "sso", "login"}
)


class AwsRequestError(SkyopsError):
    """An AWS request was sent (through the guard) and AWS, or the network, refused it."""

    exit_code = 1


@dataclass(frozen=True)
class GuardReport:
    """What the guard checked: `skyops aws whoami`-style facts, no secrets.

    Args:
        credentials: botocore's credential method, e.g. 'shared-credentials-file', 'sso', 'custom-process'.
        files: the config and credentials files read (they may not exist).
    """

    profile: str
    region: str
    region_source: str
    credentials: str
    files: tuple[Path, Path]
    endpoint_url: str | None


class AwsGuard:
    """Hands out boto3 sessions and clients for one profile only, after checking it (see the module docstring).

    Args:
        profile: the only profile skyops may use (default 'ab').
        region: overrides the environment's and the profile's region.
        endpoint_url: where clients send requests; default $SKYOPS_AWS_ENDPOINT_URL, else AWS itself.
    """

    def __init__(self, profile: str = DEFAULT_AWS_PROFILE, region: str | None = None, *, endpoint_url: str | None = None) -> None:
        self.profile = profile
        self.region = region
        self.endpoint_url = endpoint_url if endpoint_url is not None else (os.environ.get(ENDPOINT_ENV) or None)
        self._opened: tuple[Session, GuardReport] | None = None
        self._lock = threading.Lock()  # one check and one session even when threads ask at once

    @classmethod
    def from_settings(cls, settings: Settings, region: str | None = None) -> AwsGuard:
        return cls(settings.aws_profile, region)

    def check(self) -> GuardReport:
        """Run the checks (once per guard) and say what was found.

        Raises:
            AwsGuardError: listing every problem, each with its fix; no request was sent.
        """
        return self._open()[1]

    def session(self) -> Session:
        """The checked boto3 session of the profile (the same one on every call)."""
        return self._open()[0]

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client of `service` ('s3', 'sagemaker', ...) from the checked session, at `endpoint_url`."""
        from botocore.config import Config  # heavy: loaded only when AWS is used

        config = Config(user_agent_extra=f"skyops/{skyops.__version__}")
        if "config" in kwargs:
            config = config.merge(kwargs.pop("config"))
        if self.endpoint_url:
            kwargs.setdefault("endpoint_url", self.endpoint_url)
        return self.session().client(service, config=config, **kwargs)

    def _open(self) -> tuple[Session, GuardReport]:
        with self._lock:
            if self._opened is None:
                self._opened = _open_session(self.profile, self.region, self.endpoint_url)
            return self._opened


def guarded_session(profile: str = DEFAULT_AWS_PROFILE, region: str | None = None) -> Session:
    """A checked boto3 session of `profile` (see AwsGuard); raises AwsGuardError before any request."""
    return AwsGuard(profile, region).session()


@contextmanager
def aws_request(what: str, *, hint: str = "") -> Iterator[None]:
    """Turn botocore's errors inside the block into AwsRequestError saying what was asked and AWS's answer.

    Args:
        what: the request in words, e.g. "describe model package arn:aws:sagemaker:...".
        hint: how to fix it, when the caller knows better than the generic hint.
    """
    from botocore.exceptions import BotoCoreError, ClientError  # heavy: loaded only when AWS is used

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsRequestError(
            f"{what} failed: {error.get('Code', 'error')}: {error.get('Message', exc)}",
            hint=hint or "check the name or ARN, and that the profile's role may do this (IAM)",
        ) from exc
    except BotoCoreError as exc:  # no connection, bad parameters, credentials that cannot refresh
        raise AwsRequestError(f"{what} failed: {exc}", hint=hint or "check the network and `aws configure list`") from exc


def _open_session(profile: str, region: str | None, endpoint_url: str | None) -> tuple[Session, GuardReport]:
    """Run checks 1-6 and return the session; AwsGuardError with every problem found otherwise."""
    import boto3  # heavy: loaded only when AWS is used
    import botocore.session
    from botocore.exceptions import BotoCoreError

    problems = _environment_problems(profile)
    reader = botocore.session.Session()  # reads the files only; never sends a request
    files = (_expand(reader.get_config_variable("config_file")), _expand(reader.get_config_variable("credentials_file")))
    where = f"{files[0]} and {files[1]}"
    try:
        profiles: dict[str, dict[str, Any]] = reader.full_config.get("profiles", {})
    except BotoCoreError as exc:
        raise _refusal(profile, [*problems, f"the AWS config files cannot be read ({where}): {exc}; fix: correct the file"]) from exc

    settings = profiles.get(profile)
    resolved: tuple[str, str] | None = None
    if settings is None:
        problems.append(
            f"profile {profile!r} is not defined in {where} (profiles found: {', '.join(sorted(profiles)) or 'none'}); "
            f"fix: `aws configure --profile {profile}`, or add [profile {profile}] to {files[0]}"
        )
    else:
        resolved = _resolve_region(region, settings, profile)
        if resolved is None:
            problems.append(
                f"no region for profile {profile!r}: none given, $AWS_REGION and $AWS_DEFAULT_REGION are unset, and the profile "
                f"has no `region` in {where}; fix: add `region = <your region>` under [profile {profile}] in {files[0]}"
            )
        if not any(key in settings for key in CREDENTIAL_KEYS):
            problems.append(
                f"profile {profile!r} has no credentials (none of {', '.join(CREDENTIAL_KEYS)} in {where}); "
                f"fix: `aws configure --profile {profile}` for keys, or `aws configure sso --profile {profile}`"
            )
    if problems or resolved is None:
        raise _refusal(profile, problems)

    session = boto3.Session(profile_name=profile, region_name=resolved[0])
    try:
        credentials = session.get_credentials()
    except BotoCoreError as exc:
        raise _refusal(
            profile, [f"the credentials of profile {profile!r} cannot be loaded: {exc}; fix: correct the profile in {where}"]
        ) from exc
    if credentials is None or credentials.method not in PROFILE_METHODS:
        found = "none were found" if credentials is None else f"botocore found some in {credentials.method} instead"
        raise _refusal(profile, [f"profile {profile!r} gives no credentials: {found}; fix: complete the profile in {where}"])
    if _expired(credentials):
        raise _refusal(
            profile,
            [
                f"the credentials of profile {profile!r} (from {credentials.method}) have expired; "
                f"fix: renew them (`aws sso login --profile {profile}`, or fix the profile's credential process)"
            ],
        )
    report = GuardReport(
        profile=profile,
        region=resolved[0],
        region_source=resolved[1],
        credentials=credentials.method,
        files=files,
        endpoint_url=endpoint_url,
    )
    return session, report


def _environment_problems(profile: str) -> list[str]:
    problems = [
        f"${name}={value} names another profile than {profile!r}, the only one skyops uses; "
        f"fix: unset {name} (or set it to {profile}), or set SKYOPS_AWS_PROFILE={value} if skyops should use that profile"
        for name in PROFILE_ENVS
        if (value := os.environ.get(name)) and value != profile
    ]
    in_env = [name for name in CREDENTIAL_ENVS if os.environ.get(name)]
    if in_env:
        problems.append(
            f"{', '.join('$' + name for name in in_env)} set in the environment: such keys take precedence over profile {profile!r} "
            f"for the AWS CLI, child processes and any session that names no profile, so who acts would depend on the tool; "
            f"fix: unset {' '.join(in_env)} and keep the keys in profile {profile!r}"
        )
    return problems


def _resolve_region(explicit: str | None, settings: dict[str, Any], profile: str) -> tuple[str, str] | None:
    """(region, where it came from), in botocore's order of precedence; None when nothing names one."""
    if explicit:
        return explicit, "explicit"
    for name in REGION_ENVS:
        if value := os.environ.get(name):
            return value, f"${name}"
    if region := settings.get("region"):
        return str(region), f"profile {profile}"
    return None


def _expired(credentials: Any) -> bool:
    """True for refreshable credentials whose expiry is past; checking never triggers a refresh."""
    from botocore.credentials import DeferredRefreshableCredentials, RefreshableCredentials

    if isinstance(credentials, DeferredRefreshableCredentials):
        return False  # fetched on the first request: nothing to check yet
    return isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed(refresh_in=0)


def _expand(path: str) -> Path:
    return Path(os.path.expanduser(path))


def _refusal(profile: str, problems: list[str]) -> SkyopsError:
    return problems_error(
        AwsGuardError,
        f"the AWS guard for profile {profile!r} (refused before any request)",
        problems,
        hint=f"skyops sends AWS requests with profile {profile!r} only; `aws configure list --profile {profile}` shows what it resolves to",
    )
