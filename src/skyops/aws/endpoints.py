"""Endpoint overrides: where signed requests would go instead of AWS, and the one way a test may allow it.

botocore sends a client's requests to another endpoint when any of these is set (its own order):
$AWS_ENDPOINT_URL_<SERVICE>, $AWS_ENDPOINT_URL, the profile's `services` section and the profile's
`endpoint_url` (all ignored when $AWS_IGNORE_CONFIGURED_ENDPOINT_URLS / `ignore_configured_endpoint_urls`
is true), or the code's `endpoint_url=`. Each one silently hands signed requests, and the credentials'
proof, to whatever listens there. The guard refuses every one of them unless $SKYOPS_ALLOW_ENDPOINT_URL
names the very same URL and that URL is a loopback address (a moto server on 127.0.0.1 in tests): an
override is a test's tool, never a way to send skyops' requests to another machine.

Two places apply the rule: `endpoint_problems` reads the configuration before anything is sent, and
`refuse_other_endpoints` is a botocore handler on the guarded session that checks every request's
endpoint (the code's `endpoint_url=` included) before it is resolved, let alone sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from skyops.errors import AwsGuardError

ALLOW_ENV = "SKYOPS_ALLOW_ENDPOINT_URL"
GLOBAL_ENV = "AWS_ENDPOINT_URL"
IGNORE_ENV = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
SDK_ENDPOINT = "SDK::Endpoint"  # the endpoint-ruleset builtin botocore fills from every kind of override


def allowed_endpoint(environ: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """($SKYOPS_ALLOW_ENDPOINT_URL normalised, or None; a problem if it names no loopback http(s) URL)."""
    value = environ.get(ALLOW_ENV)
    if not value:
        return None, []
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and _is_loopback(parts.hostname) and parts.path in ("", "/"):
        return _normal(value), []
    return None, [
        f"${ALLOW_ENV}={value} is not a loopback URL: it only lets tests reach a local server "
        f"(http://127.0.0.1:PORT, no path), never another machine; fix: unset {ALLOW_ENV}, or set it to the local server's URL"
    ]


def endpoint_problems(
    profile: str, settings: Mapping[str, Any], services: Mapping[str, Any], files: tuple[Path, Path], environ: Mapping[str, str]
) -> tuple[str | None, bool, list[str]]:
    """(the allowed endpoint, or None; whether a configured override sends requests there; a problem per override not allowed).

    Args:
        settings: the profile's merged settings (config and credentials file), as botocore reads them.
        services: the config file's `[services NAME]` sections.
        files: the config and the credentials file, for the messages.
    """
    allowed, problems = allowed_endpoint(environ)
    overrides = _overrides(profile, settings, services, files, environ, problems)
    for where, undo, url in overrides:
        if allowed is None or _normal(url) != allowed:
            allow = (
                f", or, for the test server on this machine, set {ALLOW_ENV}={url}"
                if _is_loopback(urlsplit(url).hostname)
                else f" (only a test server on a loopback address can be allowed, with ${ALLOW_ENV})"
            )
            problems.append(f"{where} sends signed requests to {url} instead of AWS; fix: {undo}{allow}")
    return allowed, bool(overrides), problems


def refuse_other_endpoints(profile: str, allowed: str | None) -> Callable[..., None]:
    """A `before-endpoint-resolution` handler: AwsGuardError for a request bound to an endpoint that is not allowed."""

    def check(builtins: dict[str, Any], **_: Any) -> None:
        given = builtins.get(SDK_ENDPOINT)
        if given and _normal(str(given)) != allowed:
            raise endpoint_refusal(profile, f"a client's endpoint {given}", str(given))

    return check


def endpoint_refusal(profile: str, what: str, url: str) -> AwsGuardError:
    return AwsGuardError(
        f"the AWS guard for profile {profile!r} refused {what}: only AWS itself, or the loopback URL in ${ALLOW_ENV}, "
        f"may receive skyops' signed requests (refused before the request)",
        hint=f"drop endpoint_url=, or for a test server on this machine set {ALLOW_ENV}={url}",
    )


def _overrides(
    profile: str,
    settings: Mapping[str, Any],
    services: Mapping[str, Any],
    files: tuple[Path, Path],
    environ: Mapping[str, str],
    problems: list[str],
) -> list[tuple[str, str, str]]:
    """Every configured override in force, as (where it is set, how to undo it, URL)."""
    from botocore.utils import ensure_boolean  # heavy: loaded only when AWS is used

    config_file, where = files[0], f"{files[0]} and {files[1]}"
    ignore = environ.get(IGNORE_ENV, settings.get("ignore_configured_endpoint_urls", False))
    if ensure_boolean(ignore):
        return []  # botocore reads none of them
    found = [
        (f"${name}", f"unset {name}", value)
        for name, value in sorted(environ.items())
        if (name == GLOBAL_ENV or name.startswith(GLOBAL_ENV + "_")) and value
    ]
    section = settings.get("services")
    if section is not None:
        entries = services.get(section)
        if not isinstance(entries, Mapping):
            problems.append(
                f"profile {profile!r} names services section {section!r}, which is not defined in {config_file}; "
                f"fix: add [services {section}] or remove `services` from the profile"
            )
        else:
            found += [
                (
                    f"endpoint_url of {service} in [services {section}] of {config_file}",
                    f"remove it (or `services` from profile {profile!r})",
                    str(entry["endpoint_url"]),
                )
                for service, entry in sorted(entries.items())
                if isinstance(entry, Mapping) and entry.get("endpoint_url")
            ]
    if url := settings.get("endpoint_url"):
        found.append((f"endpoint_url in profile {profile!r} ({where})", "remove it from the profile", str(url)))
    return found


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it could resolve anywhere
        return False


def _normal(url: str) -> str:
    return url.rstrip("/")
