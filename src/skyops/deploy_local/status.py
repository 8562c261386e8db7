"""`skyops deploy status`: what runs where, for one environment, in a few plain lines (reads only).

    staging     http://127.0.0.1:8081  drone-detector v2  healthy  since 2026-12-01 15:16:40 UTC
      server    pid 1880 on 127.0.0.1:40827, log .skyops/serving/staging/logs/20261201-151640-123456-v2.log
      router    pid 1881
      last      switched to v2 from v1 by alice, 2026-12-01 15:16:40 UTC

Then, when there is one, a line for each thing that is not as it should be, each saying what fixes
it: a desired version not live yet, a router that is gone, a deploy in progress or one that was killed,
leftover processes, a damaged state file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from skyops.deploy_local.lock import locked
from skyops.deploy_local.observe import Observed, observe
from skyops.deploy_local.state import Event
from skyops.registry.gitops import DesiredState

PING_TIMEOUT_S = 2.0


@dataclass(frozen=True, kw_only=True)
class EnvironmentStatus:
    environment: str
    address: str
    served: str  # why the environment is not served on this machine; '' when it is
    desired: str  # 'drone-detector v2' or 'no version'
    observed: Observed
    health: str  # healthy, or why not ('/ping answered 502')
    busy: str | None  # who holds the deploy lock now

    @property
    def healthy(self) -> bool:
        return self.health == "healthy"


def environment_status(state_dir: Path, desired: DesiredState) -> EnvironmentStatus:
    target = desired.local
    observed = observe(state_dir, desired.environment, target.address if target is not None else "")
    address = observed.state.address if observed.router_up and observed.state.address else target.address if target else ""
    return EnvironmentStatus(
        environment=desired.environment,
        address=address,
        served=f"{desired.source} has no local: section" if target is None else "",
        desired="no version" if desired.version is None else f"{desired.model} v{desired.version}",
        observed=observed,
        health=_health(address) if observed.router_up else "down",
        busy=locked(state_dir, desired.environment),
    )


def lines(status: EnvironmentStatus) -> list[str]:
    """The status of one environment as the command prints it (see the module docstring)."""
    o, env = status.observed, status.environment
    fix = f"skyops deploy apply --env {env}"
    live, router = o.live, o.state.router
    if live is not None and o.router_up:
        out = [f"{env:<10}  {status.address}  {live.label}  {status.health}  since {_when(live.since)}"]
    elif o.router_up:
        out = [f"{env:<10}  {status.address}  no version  {status.health}"]
    elif live is not None:
        out = [f"{env:<10}  {status.address}  down: its router is not running ({live.label}'s server still runs)"]
    elif o.state.router is not None or o.damaged:
        out = [f"{env:<10}  {status.address}  down: nothing runs"]
    elif status.served:
        out = [f"{env:<10}  not served on this machine ({status.served})"]
    else:
        out = [f"{env:<10}  {status.address}  nothing deployed"]
    if live is not None:
        out.append(f"  server    pid {live.proc.pid} on 127.0.0.1:{live.proc.port}, log {live.proc.log}")
    if o.router_up and router is not None:
        out.append(f"  router    pid {router.proc.pid}")
    if o.state.last is not None:
        out.append(f"  last      {_event(o.state.last)}")
    now = live.label if live is not None and o.router_up else "no version"
    if status.busy is not None:
        step = o.state.deploying.step if o.state.deploying is not None else "starting"
        out.append(f"  deploying {status.busy}: {step}")
    elif now != status.desired and not status.served:
        out.append(f"  desired   {status.desired}, not live yet: {fix}")
    elif o.router_up and not status.healthy:
        out.append(f"  unhealthy {fix} replaces a server that does not answer")
    if status.served and (live is not None or o.router_up):
        out.append(f"  retired   {status.served} any more: {fix} stops what runs")
    if o.damaged:
        out.append(f"  damaged   {o.damaged}: {fix} starts over")
    if o.interrupted is not None:
        who = o.interrupted
        version = "no version" if who.version is None else f"v{who.version}"
        out.append(
            f"  killed    {who.actor}'s deploy of {version} stopped at {who.step} (pid {who.deployer.pid} is gone): {fix} finishes it"
        )
    if not o.router_up and (live is not None or router is not None) and status.busy is None:
        gone = f"its router (pid {router.proc.pid}) is gone" if router is not None else "it has no router"
        out.append(f"  down      {gone}: {fix} starts it again")
    for left in o.leftovers:
        if status.busy is None:
            version = f" of v{left.version}" if left.version else ""
            out.append(f"  leftover  {left.role}{version} (pid {left.pid}): {fix} stops it")
    return out


def _health(address: str) -> str:
    import httpx

    try:
        answer = httpx.get(f"{address}/ping", timeout=PING_TIMEOUT_S)
    except httpx.HTTPError as e:
        return f"unhealthy (/ping: {type(e).__name__})"
    return "healthy" if answer.status_code == 200 else f"unhealthy (/ping answered {answer.status_code})"


def _event(event: Event) -> str:
    version = "no version" if event.version is None else f"v{event.version}"
    previous = "nothing" if event.previous is None else f"v{event.previous}"
    by = f" by {event.actor}" if event.actor else ""
    when = _when(event.at)
    if event.event == "switched":
        return f"switched to {version} from {previous}{by}, {when}"
    if event.event == "rolled-back":
        return f"rolled back {version} ({previous} kept){by}, {when}: {event.reason}"
    if event.event == "stopped":
        return f"stopped {previous}{by}, {when}"
    return f"{event.event} {version}{by}, {when}"


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
