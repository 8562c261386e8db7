"""What an environment runs now, from the processes themselves, and what an apply would change (reads only).

`observe` reads the state file, asks the recorded router where it forwards, and finds every process
of the environment by its marks (procs.marked). The router's answer decides which server is live;
when the router is gone, the state file's `live` (or, for a deploy killed after its switch, the server
it switched to). Every other process of the environment is a leftover: a killed deploy's new server,
an old server it was draining, a router nobody recorded. A damaged state file is read as empty, and
every process of the environment becomes a leftover: the apply starts over.

`plan_serving` turns the difference between that and the desired version into one line per change,
printed by `skyops deploy plan` and kept in the apply's audit record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skyops.deploy_local import control, procs
from skyops.deploy_local.state import Deploying, LiveState, Server, read
from skyops.errors import StateFileError
from skyops.registry.gitops import DesiredState
from skyops.serving.local_target import HOST, LocalTarget

PING_TIMEOUT_S = 2.0


@dataclass(frozen=True, kw_only=True)
class Observed:
    state: LiveState  # as recorded (empty when damaged)
    damaged: str = ""  # why the state file was ignored
    router_up: bool = False  # the recorded router runs and answers on its control socket
    upstream: int | None = None  # the port the router forwards to (None: nowhere, or no router)
    live: Server | None = None  # the running server that takes (or, router down, took) the traffic
    leftovers: tuple[procs.Marked, ...] = ()  # every other running process of the environment
    interrupted: Deploying | None = None  # a deployment whose deployer is gone
    live_healthy: bool = False  # the live server answers GET /ping with 200

    def router_moves(self, port: int | None) -> bool:
        """Whether the running router listens elsewhere than on `port` (the environment's port was changed)."""
        return self.router_up and self.state.router is not None and self.state.router.proc.port != port


@dataclass(frozen=True, kw_only=True)
class ServingPlan:
    desired: DesiredState
    target: LocalTarget | None  # None: the environment is not served on this machine (its file has no `local:`)
    observed: Observed
    changes: list[str] = field(default_factory=list)


def observe(state_dir: Path, environment: str, address: str) -> Observed:
    try:
        state, damaged = read(state_dir, environment, address), ""
    except StateFileError as e:
        state, damaged = LiveState(environment=environment, address=address), e.message
    router_up, upstream = False, None
    if state.router is not None and procs.alive(state.router.proc):
        try:
            answer = control.status(state.router.control)
            router_up = True
            upstream = None if answer.get("upstream") is None else int(answer["upstream"]["port"])
        except control.ControlError:
            router_up = False
    interrupted = state.deploying if state.deploying is not None and not procs.alive(state.deploying.deployer) else None
    known = [s for s in (state.live, state.deploying.server if state.deploying else None, *state.retiring) if s is not None]
    running = [s for s in known if procs.alive(s.proc)]
    if router_up:
        live = next((s for s in running if s.proc.port == upstream), None)
    else:
        switched = interrupted is not None and interrupted.step == "draining" and interrupted.server is not None
        candidate = interrupted.server if switched and interrupted is not None else state.live
        live = candidate if candidate is not None and candidate in running else None
    keep = {p.proc.pid for p in ([state.router] if router_up and state.router else [])} | ({live.proc.pid} if live else set())
    if state.deploying is not None and interrupted is None and state.deploying.server is not None:
        keep.add(state.deploying.server.proc.pid)  # a deployment in progress: its new server is not a leftover
    leftovers = tuple(m for m in procs.marked(state_dir, environment) if m.pid not in keep)
    return Observed(
        state=state,
        damaged=damaged,
        router_up=router_up,
        upstream=upstream,
        live=live,
        leftovers=leftovers,
        interrupted=interrupted,
        live_healthy=live is not None and answers_ping(live.proc.port),
    )


def answers_ping(port: int, timeout: float = PING_TIMEOUT_S) -> bool:
    """Whether the server on 127.0.0.1:`port` answers GET /ping with 200 (ready to serve)."""
    import httpx

    try:
        return httpx.get(f"http://{HOST}:{port}/ping", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def plan_serving(desired: DesiredState, target: LocalTarget | None, observed: Observed) -> ServingPlan:
    """What an apply of `desired` would change in what runs (see the module docstring); no change: in sync."""
    env, live = desired.environment, observed.live
    address = target.address if target is not None else observed.state.address
    changes = []
    if observed.damaged:
        changes.append(f"{env}: stop what runs and start over: {observed.damaged}")
    if observed.interrupted is not None:
        who = observed.interrupted
        version = "no version" if who.version is None else f"v{who.version}"
        changes.append(f"{env}: finish after {who.actor}'s deploy of {version}, stopped at {who.step} (pid {who.deployer.pid} is gone)")
    for left in observed.leftovers:
        version = f" of v{left.version}" if left.version else ""
        changes.append(f"{env}: stop the leftover {left.role}{version} (pid {left.pid})")
    if desired.version is None or target is None:
        why = "" if target is not None else f" ({env} is not served here any more: {desired.source} has no local: section)"
        if live is not None:
            changes.append(f"{env}: stop {live.label} serving {address}{why}")
        if observed.router_up:
            changes.append(f"{env}: stop the router of {observed.state.address}{why if live is None else ''}")
        return ServingPlan(desired=desired, target=target, observed=observed, changes=changes)
    want = f"{desired.model} v{desired.version}"
    if observed.router_moves(target.port):
        changes.append(f"{env}: move from {observed.state.address} to {address}")
    elif not observed.router_up:
        changes.append(f"{env}: start the router on {address}")
    if live is None:
        changes.append(f"{env}: start {want} on {address} (after its canary)")
    elif live.label != want:
        changes.append(f"{env}: {live.label} -> {want} on {address}: start beside it, canary, switch, drain {live.label}")
    elif not observed.live_healthy:
        changes.append(f"{env}: replace {want}'s server (pid {live.proc.pid}): it does not answer /ping")
    elif observed.router_up and observed.upstream != live.proc.port:
        changes.append(f"{env}: point the router at {want} again")
    return ServingPlan(desired=desired, target=target, observed=observed, changes=changes)


def needs_server(plan: ServingPlan) -> bool:
    """Whether the apply starts a new server: none runs, another version runs, or the one running does not answer."""
    live, desired = plan.observed.live, plan.desired
    return live is None or live.label != f"{desired.model} v{desired.version}" or not plan.observed.live_healthy
