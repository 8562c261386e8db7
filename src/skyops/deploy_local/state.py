"""What runs where for one environment: `<state>/serving/<env>/live.json`, written atomically at every step.

    {"format": 1, "environment": "staging", "address": "http://127.0.0.1:8081",
     "router":    {"pid", "started", "log", "port", "control"} | null,
     "live":      {"model", "version", "label", "model_dir", "since", "proc": {...}} | null,
     "deploying": {"actor", "version", "step", "at", "deployer": {...}, "server": {...} | null} | null,
     "retiring":  [{"model", "version", ..., "proc": {...}}, ...],
     "last":      {"event", "version", "from", "actor", "at", "reason"} | null}

`deploying` is written before a deployment starts a process and at each of its steps (starting,
canary, switching, draining), and cleared when it ends, either way: one left behind with its deployer
gone says which step a killed deploy reached. `last` is the last transition (started, switched,
rolled back, stopped, repaired), for `skyops deploy status`. The processes themselves are the truth
(procs.marked finds them all, the router says where it forwards); this file says what they are.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from skyops.deploy_local.procs import Proc
from skyops.pipeline.hashing import write_json_atomic
from skyops.statefile import is_object, read_json_state, shape_problems

FORMAT = 1
SHAPE = 'a JSON object {"format": 1, "environment", "router", "live", "deploying", "retiring", "last"}, as `skyops deploy apply` writes it'


@dataclass(frozen=True, kw_only=True)
class Server:
    """A `skyops serve` of one version."""

    model: str
    version: int
    model_dir: str
    proc: Proc
    since: float = field(default_factory=time.time)

    @property
    def label(self) -> str:
        return f"{self.model} v{self.version}"


@dataclass(frozen=True, kw_only=True)
class RouterProc:
    proc: Proc
    control: str  # its control socket


@dataclass(frozen=True, kw_only=True)
class Deploying:
    """A deployment in progress (or killed at `step`)."""

    actor: str
    version: int | None
    step: str
    deployer: Proc
    server: Server | None = None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, kw_only=True)
class Event:
    event: str  # started, switched, rolled-back, stopped, repaired
    version: int | None
    previous: int | None = None
    actor: str = ""
    reason: str = ""
    at: float = field(default_factory=time.time)


@dataclass(frozen=True, kw_only=True)
class LiveState:
    environment: str
    address: str
    router: RouterProc | None = None
    live: Server | None = None
    deploying: Deploying | None = None
    retiring: tuple[Server, ...] = ()
    last: Event | None = None

    def but(self, **changes: Any) -> LiveState:
        return replace(self, **changes)


def folder(state_dir: Path, environment: str) -> Path:
    return state_dir / "serving" / environment


def path(state_dir: Path, environment: str) -> Path:
    return folder(state_dir, environment) / "live.json"


def read(state_dir: Path, environment: str, address: str) -> LiveState:
    """The environment's state; an empty one when nothing was ever deployed here.

    Raises:
        StateFileError: the file is damaged (apply then starts over: it stops every process of the environment).
    """
    where = path(state_dir, environment)
    if not where.exists():
        return LiveState(environment=environment, address=address)
    data = read_json_state(
        where,
        what=f"serving state of environment {environment!r}",
        expected=SHAPE,
        hint=f"`skyops deploy apply --env {environment}` stops what the environment runs and starts its version again",
        problems=_problems,
    )
    try:
        return _state(data)
    except (KeyError, TypeError, ValueError) as e:
        from skyops.errors import StateFileError

        raise StateFileError(
            f"serving state of environment {environment!r} {where} has the wrong shape ({type(e).__name__}: {e}); expected {SHAPE}",
            hint=f"`skyops deploy apply --env {environment}` stops what the environment runs and starts its version again",
        ) from None


def write(state_dir: Path, state: LiveState) -> None:
    write_json_atomic(path(state_dir, state.environment), {"format": FORMAT, **asdict(state)})


def _problems(value: Any) -> list[str]:
    found = shape_problems(value, [("environment", lambda v: isinstance(v, str), "a name")])
    if not found and value.get("format") != FORMAT:
        found.append(f"'format' is not {FORMAT}")
    for key in ("router", "live", "deploying", "last"):
        if not found and value.get(key) is not None and not is_object(value[key]):
            found.append(f"{key!r} is not an object or null")
    return found


def _state(data: dict[str, Any]) -> LiveState:
    return LiveState(
        environment=data["environment"],
        address=str(data.get("address", "")),
        router=None
        if data.get("router") is None
        else RouterProc(proc=Proc.from_dict(data["router"]["proc"]), control=str(data["router"]["control"])),
        live=None if data.get("live") is None else _server(data["live"]),
        deploying=None if data.get("deploying") is None else _deploying(data["deploying"]),
        retiring=tuple(_server(s) for s in data.get("retiring") or ()),
        last=None if data.get("last") is None else Event(**data["last"]),
    )


def _server(data: dict[str, Any]) -> Server:
    return Server(
        model=str(data["model"]),
        version=int(data["version"]),
        model_dir=str(data["model_dir"]),
        proc=Proc.from_dict(data["proc"]),
        since=float(data["since"]),
    )


def _deploying(data: dict[str, Any]) -> Deploying:
    return Deploying(
        actor=str(data["actor"]),
        version=None if data.get("version") is None else int(data["version"]),
        step=str(data["step"]),
        deployer=Proc.from_dict(data["deployer"]),
        server=None if data.get("server") is None else _server(data["server"]),
        at=float(data["at"]),
    )
