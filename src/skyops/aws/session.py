"""The one factory of AWS sessions and clients in skyops, guarded by the configured profile.

    guard = AwsGuard()                       # profile 'ab' (settings.aws_profile), region from the profile
    sagemaker = guard.client("sagemaker")    # AwsGuardError before any request unless the checks pass

The guard decides first, from configuration only, and sends nothing of any kind before it has
decided (`decision.py`, rules 1-6): the profile and its region, one complete credential source named
by the profile, no keys in the environment, no endpoint override unless a test allows it
(`endpoints.py`). A refused profile gets no session at all, so nothing can reach the instance
metadata service, a container credentials endpoint, SSO, STS, a credential process or an overriding
endpoint. Why so strict: botocore's default chain falls through to the machine's credentials
(instance metadata, containers) when a profile gives none, a credential process is a program run
with the user's rights, and an endpoint override hands signed requests to whatever listens there.

An accepted profile gets a session whose credential chain holds only the provider the profile names
(never the environment, instance metadata or container providers; a role's source credentials only
from its source_profile chain), and a handler that refuses any request bound for an endpoint that is
not allowed (the code's `endpoint_url=` included). The credentials are then loaded from that one
provider (this runs a profile's credential process) and refused when already expired; credentials
fetched on the first request (SSO, assume-role) are checked by botocore then.

In tests, clients reach a moto server on 127.0.0.1 through botocore's own override with the explicit
allow: `AWS_ENDPOINT_URL=http://127.0.0.1:PORT SKYOPS_ALLOW_ENDPOINT_URL=http://127.0.0.1:PORT`.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import skyops
from skyops.aws.decision import CredentialSource, Decision, decide, refusal
from skyops.aws.endpoints import endpoint_refusal, refuse_other_endpoints
from skyops.errors import SkyopsError
from skyops.settings import DEFAULT_AWS_PROFILE, Settings

if TYPE_CHECKING:
    from boto3 import Session
    from botocore.credentials import CredentialResolver
    from botocore.session import Session as CoreSession


class AwsRequestError(SkyopsError):
    """An AWS request was sent (through the guard) and AWS, or the network, refused it."""

    exit_code = 1


@dataclass(frozen=True)
class GuardReport:
    """What the guard checked: `skyops aws whoami`-style facts, no secrets.

    Args:
        credentials: botocore's credential method, e.g. 'shared-credentials-file', 'sso', 'custom-process'.
        files: the config and credentials files read (they may not exist).
        endpoint_url: the allowed loopback endpoint configured overrides send requests to (a test server), else None.
        allowed_endpoint: $SKYOPS_ALLOW_ENDPOINT_URL, the one endpoint besides AWS any client may use, else None.
    """

    profile: str
    region: str
    region_source: str
    credentials: str
    files: tuple[Path, Path]
    endpoint_url: str | None
    allowed_endpoint: str | None


class AwsGuard:
    """Hands out boto3 sessions and clients for one profile only, after checking it (see the module docstring).

    Args:
        profile: the only profile skyops may use (default 'ab').
        region: overrides the environment's and the profile's region.
    """

    def __init__(self, profile: str = DEFAULT_AWS_PROFILE, region: str | None = None) -> None:
        self.profile = profile
        self.region = region
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
        """A boto3 client of `service` ('s3', 'sagemaker', ...) from the checked session.

        An `endpoint_url=` is refused unless it is the allowed test endpoint (see the module docstring).
        """
        from botocore.config import Config  # heavy: loaded only when AWS is used

        session, report = self._open()
        if (url := kwargs.get("endpoint_url")) is not None and str(url).rstrip("/") != report.allowed_endpoint:
            raise endpoint_refusal(self.profile, f"endpoint_url={url} for a {service} client", str(url))
        config = Config(user_agent_extra=f"skyops/{skyops.__version__}")
        if "config" in kwargs:
            config = config.merge(kwargs.pop("config"))
        return session.client(service, config=config, **kwargs)

    def assume_role(self, role_arn: str, session_name: str) -> AssumedRole:
        """Clients acting as `role_arn`: its temporary credentials come from this guard's STS client (the profile
        is checked first), and its clients keep the guard's endpoint rule. Used to try a persona's permissions.

        Raises:
            AwsRequestError: STS refused (the role's trust policy does not name this profile's principal, ...).
        """
        import boto3  # heavy: loaded only when AWS is used
        import botocore.session

        _, report = self._open()
        with aws_request(f"assume role {role_arn}", hint="the role's trust policy must allow this profile's principal to assume it"):
            credentials = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=900)
        core = botocore.session.Session(profile=self.profile)  # the profile's settings; the credentials are set below
        given = credentials["Credentials"]
        core.set_credentials(given["AccessKeyId"], given["SecretAccessKey"], given["SessionToken"])
        core.register("before-endpoint-resolution", refuse_other_endpoints(self.profile, report.allowed_endpoint))
        return AssumedRole(role_arn, boto3.Session(botocore_session=core, region_name=report.region))

    def _open(self) -> tuple[Session, GuardReport]:
        with self._lock:
            if self._opened is None:
                self._opened = _open_session(self.profile, self.region)
            return self._opened


@dataclass(frozen=True)
class AssumedRole:
    """A role assumed through an AwsGuard (`AwsGuard.assume_role`): clients with its temporary credentials."""

    role_arn: str
    session: Session
    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def client(self, service: str) -> Any:
        """The role's client of `service`, made on first use (one per service)."""
        from botocore.config import Config  # heavy: loaded only when AWS is used

        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=Config(user_agent_extra=f"skyops/{skyops.__version__}"))
        return self._clients[service]


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


def _open_session(profile: str, region: str | None) -> tuple[Session, GuardReport]:
    """Decide from configuration (AwsGuardError), then build the session the decision allows and load its credentials."""
    import boto3  # heavy: loaded only when AWS is used
    import botocore.session
    from botocore.exceptions import BotoCoreError

    core = botocore.session.Session(profile=profile)  # reads files when asked; sends nothing by itself
    files = (_expand(core.get_config_variable("config_file")), _expand(core.get_config_variable("credentials_file")))
    try:
        full_config = core.full_config
    except BotoCoreError as exc:
        raise refusal(profile, [f"the AWS config files cannot be read ({files[0]} and {files[1]}): {exc}; fix: correct the file"]) from exc
    decision = decide(full_config, files, profile, region, os.environ)  # refuses here: no provider or client exists yet

    core.register("before-endpoint-resolution", refuse_other_endpoints(profile, decision.allowed_endpoint))
    core.register_component("credential_provider", _resolver(core, decision))
    session = boto3.Session(botocore_session=core, region_name=decision.region)
    where = f"{files[0]} and {files[1]}"
    try:
        credentials = session.get_credentials()  # only the provider the profile names: may run its credential process
    except BotoCoreError as exc:
        raise refusal(
            profile, [f"the credentials of profile {profile!r} cannot be loaded: {exc}; fix: correct the profile in {where}"]
        ) from exc
    if credentials is None:
        raise refusal(
            profile, [f"profile {profile!r} gives no credentials from its {decision.source.value}; fix: complete the profile in {where}"]
        )
    if _expired(credentials):
        raise refusal(
            profile,
            [
                f"the credentials of profile {profile!r} (from {credentials.method}) have expired; "
                f"fix: renew them (`aws sso login --profile {profile}`, or fix the profile's credential process)"
            ],
        )
    report = GuardReport(
        profile=profile,
        region=decision.region,
        region_source=decision.region_source,
        credentials=credentials.method,
        files=files,
        endpoint_url=decision.endpoint_url,
        allowed_endpoint=decision.allowed_endpoint,
    )
    return session, report


def _resolver(core: CoreSession, decision: Decision) -> CredentialResolver:
    """A credential chain of the one provider the accepted profile names; no environment, metadata or container provider."""
    from botocore.credentials import AssumeRoleProvider, CredentialResolver, ProfileProviderBuilder
    from botocore.utils import JSONFileCache, create_nested_client

    cache: dict[str, Any] = {}
    token_cache = JSONFileCache(str(decision.sso_token_dir), dumps_func=_sso_dumps)  # the cache the decision read
    builder = ProfileProviderBuilder(core, cache=cache, region_name=decision.region, sso_token_cache=token_cache)
    if decision.source is CredentialSource.ASSUME_ROLE:
        # No credential sourcer: a role's source credentials come from its source_profile chain only.
        role = AssumeRoleProvider(
            load_config=lambda: core.full_config,
            client_creator=functools.partial(create_nested_client, core, region_name=decision.region),
            cache=cache,
            profile_name=decision.profile,
            credential_sourcer=None,
            profile_provider_builder=builder,
        )
        return CredentialResolver(providers=[role])
    named = [p for p in builder.providers(profile_name=decision.profile, disable_env_vars=True) if decision.source.value == p.METHOD]
    return CredentialResolver(providers=named)


def _sso_dumps(token: Any) -> str:
    """JSON of an SSO token as the AWS CLI writes it (a refreshed token's expiry is a datetime)."""
    return json.dumps(token, default=lambda value: value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime) else str(value))


def _expired(credentials: Any) -> bool:
    """True for refreshable credentials whose expiry is past; checking never triggers a refresh."""
    from botocore.credentials import DeferredRefreshableCredentials, RefreshableCredentials

    if isinstance(credentials, DeferredRefreshableCredentials):
        return False  # fetched on the first request: nothing to check yet
    return isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed(refresh_in=0)


def _expand(path: str) -> Path:
    return Path(os.path.expanduser(path))
