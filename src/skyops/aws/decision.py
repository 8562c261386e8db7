"""What the AWS guard decides from configuration alone, before any credential provider or client exists.

It reads the environment, the config and credentials files (botocore's own parser) and the SSO token
cache (local files), and nothing else: it runs no credential process, asks no instance metadata
service, container endpoint, SSO portal or STS, and creates no client. Only a profile it accepts gets
a session, and that session holds only the one credential provider the profile names (`session.py`).

Rules, all checked, every problem reported at once (one line each: what, where, how to fix):
1. $AWS_PROFILE / $AWS_DEFAULT_PROFILE, when set, name the guard's profile.
2. No keys in the environment ($AWS_ACCESS_KEY_ID, ...): they would act instead of the profile for the
   AWS CLI, child processes and any session that names no profile.
3. The profile is defined in the config or credentials file.
4. A region resolves: the explicit one, else $AWS_REGION, else $AWS_DEFAULT_REGION, else the profile's.
5. The profile names one credential source, complete, in botocore's order: a role (`role_arn` with a
   `source_profile` whose chain ends in a source below; never `credential_source`, which takes the
   machine's or the environment's credentials), web identity, SSO (its `sso-session` defined, its
   token cached and not expired beyond refresh), keys in the credentials file, `login_session`,
   `credential_process`, keys in the config file. A `sso_session` naming no section is refused
   whatever the source: botocore would fail on it when creating any client.
6. No endpoint override unless allowed for a test (`endpoints.py`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from skyops.aws.endpoints import endpoint_problems
from skyops.errors import AwsGuardError, SkyopsError, problems_error

PROFILE_ENVS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
CREDENTIAL_ENVS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
REGION_ENVS = ("AWS_REGION", "AWS_DEFAULT_REGION")
# The profile keys that make botocore build credentials; a profile with none of them has none.
CREDENTIAL_KEYS = (
    "aws_access_key_id",
    "role_arn",
    "sso_account_id",
    "sso_role_name",
    "credential_process",
    "web_identity_token_file",
    "login_session",
)
SSO_KEYS = ("sso_start_url", "sso_region", "sso_account_id", "sso_role_name")


class CredentialSource(StrEnum):
    """Where a profile's credentials come from: the value is botocore's `Credentials.method` of that provider."""

    ASSUME_ROLE = "assume-role"
    WEB_IDENTITY = "assume-role-with-web-identity"
    SSO = "sso"
    CREDENTIALS_FILE = "shared-credentials-file"
    LOGIN = "login"
    PROCESS = "custom-process"
    CONFIG_FILE = "config-file"


@dataclass(frozen=True)
class Decision:
    """An accepted profile: what its session may use, and nothing more.

    Args:
        endpoint_url: the allowed loopback endpoint configured overrides send requests to (a test server), else None.
        allowed_endpoint: $SKYOPS_ALLOW_ENDPOINT_URL, the one endpoint besides AWS any client may use, else None.
        sso_token_dir: the SSO token cache the decision read; the session's SSO provider reads the same.
    """

    profile: str
    region: str
    region_source: str
    source: CredentialSource
    endpoint_url: str | None
    allowed_endpoint: str | None
    files: tuple[Path, Path]
    sso_token_dir: Path


def decide(
    full_config: Mapping[str, Any], files: tuple[Path, Path], profile: str, region: str | None, environ: Mapping[str, str]
) -> Decision:
    """Accept `profile` or refuse it, from configuration only (rules 1-6 of the module docstring).

    Args:
        full_config: botocore's parsed config and credentials files (`botocore.session.Session.full_config`).
        files: the config and the credentials file that were read (they may not exist).

    Raises:
        AwsGuardError: listing every problem, each with its fix; nothing was run or sent.
    """
    problems = _environment_problems(profile, environ)
    where = f"{files[0]} and {files[1]}"
    config_sections, credentials_sections = _sections(files, profile, problems)
    profiles: dict[str, dict[str, Any]] = dict(full_config.get("profiles", {}))
    settings = profiles.get(profile)
    allowed_endpoint, overridden, endpoint_issues = endpoint_problems(
        profile, settings or {}, full_config.get("services", {}), files, environ
    )
    problems += endpoint_issues
    if settings is None:
        problems.append(
            f"profile {profile!r} is not defined in {where} (profiles found: {', '.join(sorted(profiles)) or 'none'}); "
            f"fix: `aws configure --profile {profile}`, or add [profile {profile}] to {files[0]}"
        )
        raise refusal(profile, problems)
    resolved = _resolve_region(region, settings, profile, environ)
    if resolved is None:
        problems.append(
            f"no region for profile {profile!r}: none given, $AWS_REGION and $AWS_DEFAULT_REGION are unset, and the profile "
            f"has no `region` in {where}; fix: add `region = <your region>` under [profile {profile}] in {files[0]}"
        )
    token_dir = Path.home() / ".aws" / "sso" / "cache"  # where `aws sso login` keeps tokens
    sources = _Sources(profiles, config_sections, credentials_sections, full_config.get("sso_sessions", {}), files, token_dir)
    source = sources.top(profile, problems)
    if problems or resolved is None or source is None:
        raise refusal(profile, problems)
    endpoint_url = allowed_endpoint if overridden else None
    return Decision(profile, resolved[0], resolved[1], source, endpoint_url, allowed_endpoint, files, token_dir)


def refusal(profile: str, problems: list[str]) -> SkyopsError:
    """The guard's one error: every problem, sorted, and how to see what the profile resolves to."""
    return problems_error(
        AwsGuardError,
        f"the AWS guard for profile {profile!r} (refused before any request)",
        problems,
        hint=f"skyops sends AWS requests with profile {profile!r} only; `aws configure list --profile {profile}` shows what it resolves to",
    )


class _Sources:
    """Rule 5: the credential source a profile names, in botocore's order; problems instead of guesses."""

    def __init__(
        self,
        profiles: Mapping[str, Mapping[str, Any]],
        config_sections: Mapping[str, Mapping[str, Any]],
        credentials_sections: Mapping[str, Mapping[str, Any]],
        sso_sessions: Mapping[str, Mapping[str, Any]],
        files: tuple[Path, Path],
        token_dir: Path,
    ) -> None:
        self.profiles, self.config, self.credentials = profiles, config_sections, credentials_sections
        self.sso_sessions, self.files, self.token_dir = sso_sessions, files, token_dir
        self.where = f"{files[0]} and {files[1]}"

    def top(self, name: str, problems: list[str]) -> CredentialSource | None:
        """The source of the guard's own profile (botocore tries a role first, then the profile's own sources)."""
        settings = self.profiles[name]
        if (session := settings.get("sso_session")) is not None and session not in self.sso_sessions:
            problems.append(self._missing_session(name, session))  # botocore's token provider would fail on any client
        if "role_arn" in settings and "web_identity_token_file" not in settings:
            self._role(name, [name], problems)
            return CredentialSource.ASSUME_ROLE
        return self._own(name, f"profile {name!r}", problems)

    def _role(self, name: str, chain: list[str], problems: list[str]) -> None:
        """A role's source credentials: a source_profile chain ending in a profile with its own source."""
        settings, label = self.profiles[name], f"profile {name!r}"
        source_profile, credential_source = settings.get("source_profile"), settings.get("credential_source")
        if credential_source is not None:
            problems.append(
                f"{label} takes its role's source credentials from credential_source = {credential_source} in {self.files[0]}: "
                f"the machine's (instance metadata, a container) or the environment's, so who acts would depend on where "
                f"skyops runs; fix: use source_profile = <a profile with keys or SSO> instead"
            )
        elif source_profile is None:
            problems.append(
                f"{label} has role_arn but no source_profile in {self.files[0]}; fix: add source_profile = <a profile with keys or SSO>"
            )
        elif source_profile not in self.profiles:
            problems.append(
                f"source_profile {source_profile!r} of {label} is not defined in {self.where}; fix: add [profile {source_profile}] "
                f"with credentials, or name an existing profile"
            )
        elif source_profile == name and self._has_keys(name):
            self._own(name, f"{label} (its own source_profile)", problems)
        elif source_profile in chain:
            problems.append(
                f"profiles {' -> '.join([*chain, source_profile])} name each other as source_profile in a loop ({self.where}); "
                f"fix: end the chain at a profile with keys or SSO"
            )
        else:
            source = self.profiles[source_profile]
            if "role_arn" in source and not self._has_keys(source_profile):
                self._role(source_profile, [*chain, source_profile], problems)
            else:
                self._own(source_profile, f"profile {source_profile!r} (source_profile of {name!r})", problems)

    def _own(self, name: str, label: str, problems: list[str]) -> CredentialSource | None:
        """A profile's own source, in botocore's order: web identity, SSO, credentials file, login, process, config file."""
        settings, in_credentials, in_config = self.profiles[name], self.credentials.get(name, {}), self.config.get(name, {})
        if (token_file := settings.get("web_identity_token_file")) is not None:
            if "role_arn" not in settings:
                problems.append(f"{label} has web_identity_token_file but no role_arn in {self.files[0]}; fix: add the role_arn to assume")
            if not Path(str(token_file)).is_file():
                problems.append(f"web_identity_token_file {token_file} of {label} does not exist; fix: point it at the token file")
            return CredentialSource.WEB_IDENTITY
        if "sso_account_id" in settings or "sso_role_name" in settings:
            self._sso(name, label, problems)
            return CredentialSource.SSO
        if "aws_access_key_id" in in_credentials:
            return self._keys(in_credentials, name, label, self.files[1], CredentialSource.CREDENTIALS_FILE, problems)
        if "login_session" in settings:
            return CredentialSource.LOGIN
        if "credential_process" in settings:
            return CredentialSource.PROCESS
        if "aws_access_key_id" in in_config:
            return self._keys(in_config, name, label, self.files[0], CredentialSource.CONFIG_FILE, problems)
        problems.append(
            f"{label} has no credentials (none of {', '.join(CREDENTIAL_KEYS)} in {self.where}); "
            f"fix: `aws configure --profile {name}` for keys, or `aws configure sso --profile {name}`"
        )
        return None

    @staticmethod
    def _keys(
        keys: Mapping[str, Any], name: str, label: str, file: Path, source: CredentialSource, problems: list[str]
    ) -> CredentialSource:
        if "aws_secret_access_key" not in keys:
            problems.append(
                f"{label} has aws_access_key_id but no aws_secret_access_key in {file}; fix: add the secret key beside it "
                f"(`aws configure --profile {name}`)"
            )
        return source

    def _missing_session(self, name: str, session: str) -> str:
        return (
            f"profile {name!r} names sso_session {session!r}, which is not defined in {self.files[0]} "
            f"(sso-sessions found: {', '.join(sorted(self.sso_sessions)) or 'none'}); fix: add [sso-session {session}] with "
            f"sso_start_url and sso_region to {self.files[0]}, or run `aws configure sso --profile {name}`"
        )

    def _sso(self, name: str, label: str, problems: list[str]) -> None:
        """SSO: every setting present and consistent, and a cached token that is valid or can be refreshed."""
        settings, session_name = dict(self.profiles[name]), self.profiles[name].get("sso_session")
        session = self.sso_sessions.get(session_name, {}) if session_name is not None else {}
        if session_name is not None and session_name not in self.sso_sessions:
            problems.append(self._missing_session(name, session_name))
            return
        for key, value in session.items():
            if settings.setdefault(key, value) != value:
                problems.append(
                    f"{label} and sso-session {session_name!r} give different {key} ({settings[key]} and {value}) in {self.files[0]}; "
                    f"fix: keep it in the sso-session only"
                )
        if missing := [key for key in SSO_KEYS if key not in settings]:
            problems.append(
                f"{label} uses SSO but has no {', '.join(missing)} in {self.files[0]}; fix: `aws configure sso --profile {name}`"
            )
            return
        problem = self._token_problem(label, name, str(settings["sso_start_url"]), session_name)
        if problem:
            problems.append(problem)

    def _token_problem(self, label: str, name: str, start_url: str, session_name: str | None) -> str | None:
        """None for a cached SSO token that is valid, or expired but refreshable (sso-session tokens only)."""
        key = hashlib.sha1((session_name or start_url).encode()).hexdigest()  # the AWS CLI's cache file name
        path, fix = self.token_dir / f"{key}.json", f"fix: `aws sso login --profile {name}`"
        try:
            token = json.loads(path.read_text())
            expires = _when(token["expiresAt"]) if "accessToken" in token else None
        except FileNotFoundError:
            return f"{label} has no SSO token (no {path}); {fix}"
        except (OSError, ValueError, KeyError, TypeError):
            expires = None
        if expires is None:
            return f"{label} has an unreadable SSO token in {path}; {fix}"
        now = datetime.now(UTC)
        if expires > now:
            return None
        refreshable = session_name is not None and all(k in token for k in ("refreshToken", "clientId", "clientSecret"))
        try:
            refreshable = refreshable and _when(token["registrationExpiresAt"]) > now
        except (KeyError, ValueError, TypeError):
            refreshable = False
        if refreshable:
            return None
        return f"the SSO token of {label} in {path} expired at {expires:%Y-%m-%d %H:%M:%S} UTC and cannot be refreshed; {fix}"

    def _has_keys(self, name: str) -> bool:
        settings = self.profiles[name]
        return "aws_access_key_id" in settings or "aws_secret_access_key" in settings


def _environment_problems(profile: str, environ: Mapping[str, str]) -> list[str]:
    problems = [
        f"${name}={value} names another profile than {profile!r}, the only one skyops uses; "
        f"fix: unset {name} (or set it to {profile}), or set SKYOPS_AWS_PROFILE={value} if skyops should use that profile"
        for name in PROFILE_ENVS
        if (value := environ.get(name)) and value != profile
    ]
    in_env = [name for name in CREDENTIAL_ENVS if environ.get(name)]
    if in_env:
        problems.append(
            f"{', '.join('$' + name for name in in_env)} set in the environment: such keys take precedence over profile {profile!r} "
            f"for the AWS CLI, child processes and any session that names no profile, so who acts would depend on the tool; "
            f"fix: unset {' '.join(in_env)} and keep the keys in profile {profile!r}"
        )
    return problems


def _sections(files: tuple[Path, Path], profile: str, problems: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config file's and the credentials file's own profile sections (botocore merges them; the order of sources does not)."""
    from botocore.configloader import load_config, raw_config_parse  # heavy: loaded only when AWS is used
    from botocore.exceptions import BotoCoreError, ConfigNotFound

    found: list[dict[str, Any]] = []
    for path, parse in ((files[0], lambda p: load_config(p)["profiles"]), (files[1], raw_config_parse)):
        try:
            found.append(dict(parse(str(path))))
        except ConfigNotFound:
            found.append({})
        except BotoCoreError as exc:
            raise refusal(profile, [*problems, f"{path} cannot be read: {exc}; fix: correct the file"]) from exc
    return found[0], found[1]


def _resolve_region(explicit: str | None, settings: Mapping[str, Any], profile: str, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(region, where it came from), in botocore's order of precedence; None when nothing names one."""
    if explicit:
        return explicit, "explicit"
    for name in REGION_ENVS:
        if value := environ.get(name):
            return value, f"${name}"
    if region := settings.get("region"):
        return str(region), f"profile {profile}"
    return None


def _when(value: Any) -> datetime:
    """An SSO cache timestamp ('2030-01-01T00:00:00Z', or with an offset) as an aware datetime."""
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
