"""How an environment is served on this machine: the `local:` section of deploy/environments/<env>.yaml.

    local:
      port: 8081                        # the environment's stable address: http://127.0.0.1:8081
      canary: deploy/canary/staging     # the canary set (skyops.serving.canary); default: the package's own
      backend: onnx                     # what `skyops serve` runs the version with
      ready_seconds: 120                # how long a new server may take to answer /ping
      drain_seconds: 30                 # how long requests in flight on the old server may take after the switch

Every key is optional. Production defaults to port 8080 (SageMaker's own port: a client written for
an endpoint's container talks to it unchanged) and staging to 8081; any other environment names its
port, which `skyops deploy apply` asks for only when it has a version to serve. The address is always
127.0.0.1: the local deployment serves this machine (a shared one is a SageMaker endpoint). Ports
below 1024 need root and are refused. The canary path is relative to the project and stays inside it.

`parse_local` checks the section (every problem at once, with its key path), like the rest of the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from skyops.serving.model import BackendName

HOST = "127.0.0.1"
DEFAULT_PORTS = {"production": 8080, "staging": 8081}
KEYS = ("port", "canary", "backend", "ready_seconds", "drain_seconds")


@dataclass(frozen=True, kw_only=True)
class LocalTarget:
    """The `local:` section, defaults filled in. `port` is None for an environment without a default that names none."""

    port: int | None
    canary: str | None = None  # a folder relative to the project; None: the package's canary/ folder
    backend: BackendName = BackendName.ONNX
    ready_seconds: float = 120.0
    drain_seconds: float = 30.0

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.port}" if self.port is not None else "no address (no local.port)"


def parse_local(value: Any, environment: str, problems: list[str]) -> LocalTarget:
    """The `local:` section (None when the file has none) as a LocalTarget; a line per problem appended to `problems`."""
    default = LocalTarget(port=DEFAULT_PORTS.get(environment))
    if value is None:
        return default
    if not isinstance(value, dict):
        problems.append(f"local: expected a mapping with keys {', '.join(KEYS)}, found {_kind(value)}")
        return default
    before = len(problems)
    problems += [f"local: unknown key {key!r}; expected {', '.join(KEYS)}" for key in value if key not in KEYS]
    port = value.get("port", default.port)
    if "port" in value and not (isinstance(port, int) and not isinstance(port, bool) and 1024 <= port <= 65535):
        problems.append(f"local.port: {port!r} is not a port from 1024 to 65535")
    canary = value.get("canary")
    if "canary" in value and (why := _relative_problem(canary)):
        problems.append(f"local.canary: {canary!r} {why}")
    backend = value.get("backend", default.backend.value)
    if backend not in tuple(BackendName):
        problems.append(f"local.backend: {backend!r} is not one of {', '.join(BackendName)}")
    seconds = {}
    for key, low, high in (("ready_seconds", 1.0, 3600.0), ("drain_seconds", 0.0, 3600.0)):
        given = value.get(key, getattr(default, key))
        if not (_is_number(given) and low <= given <= high):
            problems.append(f"local.{key}: {given!r} is not a number of seconds from {low:g} to {high:g}")
        seconds[key] = given
    if len(problems) > before:
        return default
    return LocalTarget(
        port=port,
        canary=canary,
        backend=BackendName(backend),
        ready_seconds=float(seconds["ready_seconds"]),
        drain_seconds=float(seconds["drain_seconds"]),
    )


def _relative_problem(path: Any) -> str:
    """Why `path` is not a folder inside the project ('' when it is one)."""
    if not isinstance(path, str) or not path.strip():
        return "is not a folder path"
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "\\" in path:
        return "is not a folder inside the project; expected a relative path such as deploy/canary/staging"
    return ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # nan is not a number of seconds


def _kind(value: Any) -> str:
    return type(value).__name__
