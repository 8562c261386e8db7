"""Local blue/green: make an environment's desired version live behind its stable address.

    local = LocalDeploy(state_dir, project_dir, locate=registered_package)
    with local.lock(desired, actor, wait=0):
        serving = local.plan(desired)                      # reads only: serving.changes
        governed.deploy(actor, desired, state_dir, changes=..., serve=functools.partial(local.apply, serving, actor))

`apply` runs inside `GovernedRegistry.deploy`, after the role and the status rules (only an ML
Engineer, only an Approved version) and before the alias moves, so nothing starts for an action that
is refused, and a rollback leaves the alias and the deployed record where they were. In order:

1. Check what is needed before touching anything: the environment's port, the version's package
   (`locate`), its canary set (skyops.serving.canary).
2. Clean up: stop every leftover process of the environment (observe.py says which), e.g. the new
   server of a deploy that was killed before its switch.
3. The router (skyops.serving.router): start it when it does not run (pointed at the live server, if
   one still runs, before anything else), or move it when the environment's port changed.
4. Blue/green, when the desired version does not run (or its server does not answer): start it
   beside the old one on a free port; wait for its /ping; run its canary against it directly; switch
   the router (atomic, see the router); drain: wait until no request is in flight on the old one;
   stop the old one (SIGTERM: it finishes what it has, then exits).
5. A server that does not start, or fails its canary: stop it; the old one was never out of service;
   record the rollback (state file, and the audit record of the failed deploy) and raise RolloutFailed.

Every step is written to the state file first (state.py), so a deploy killed at any point leaves a
record the next `status` explains and the next `apply` repairs. SIGTERM or Ctrl-C while it runs
stops it the same way as a failed check: the new server is stopped, the old one keeps serving.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from skyops.deploy_local import control, procs
from skyops.deploy_local.lock import environment_lock
from skyops.deploy_local.observe import ServingPlan, needs_server, observe, plan_serving
from skyops.deploy_local.state import Deploying, Event, RouterProc, Server, folder, write
from skyops.errors import ConfigError, SkyopsError
from skyops.pipeline.lineage import process_started
from skyops.registry.gitops import DesiredState
from skyops.serving.canary import CanarySet, load_canary, run_canary
from skyops.serving.local_target import HOST, LocalTarget
from skyops.serving.router import PRIVATE_PREFIX

Locate = Callable[[str, int], Path]  # (model, version) -> the version's model folder
ROUTER_START_S = 30.0
KEEP_LOGS = 20  # log files kept per environment


class RolloutFailed(SkyopsError):
    """The new version did not go live (it did not start, or failed its canary); the old one keeps serving."""

    exit_code = 1


class LocalDeploy:
    """The local target of `skyops deploy apply`: servers and a router on this machine (see the module docstring).

    Args:
        state_dir: where the state, locks and logs go (`serving/<env>/`).
        project_dir: the project (a `local.canary` folder is relative to it; processes start in it).
        locate: the model folder of a registered version (the CLI gives `serve_cmd.registered_package`).
    """

    def __init__(self, state_dir: Path, project_dir: Path, *, locate: Locate) -> None:
        self.state_dir = state_dir
        self.project_dir = project_dir
        self.locate = locate

    def lock(self, desired: DesiredState, actor: str, *, wait: float = 0.0) -> contextlib.AbstractContextManager[None]:
        return environment_lock(self.state_dir, desired.environment, actor=actor, version=desired.version, wait=wait)

    def plan(self, desired: DesiredState) -> ServingPlan:
        """What an apply would change in what runs; an environment without a `local:` section is not served here."""
        target = desired.local
        observed = observe(self.state_dir, desired.environment, target.address if target is not None else "")
        return plan_serving(desired, target, observed)

    def apply(self, plan: ServingPlan, actor: str, details: MutableMapping[str, Any]) -> None:
        """Make `plan` so (module docstring); what it did goes into `details`, the audit record's.

        Raises:
            RolloutFailed: the new version did not start or failed its canary (rolled back), or the deploy was stopped.
            ConfigError: no port, no package or no canary set for the version; a port the router cannot listen on.
        """
        from skyops.training.signals import Terminated, signals_raise

        if not plan.changes:
            return
        try:
            with signals_raise(signal.SIGTERM, signal.SIGINT):
                _Rollout(self, plan, actor, details).run()
        except Terminated as stop:
            error = RolloutFailed(
                f"{plan.desired.environment}: the deploy was stopped by {signal.Signals(stop.signum).name}; what served before serves on",
                hint=f"skyops deploy status --env {plan.desired.environment}",
            )
            error.exit_code = 128 + stop.signum
            raise error from None


class _Rollout:
    """One apply's steps, sharing the state as it is written."""

    def __init__(self, owner: LocalDeploy, plan: ServingPlan, actor: str, details: MutableMapping[str, Any]) -> None:
        self.owner, self.plan, self.actor, self.details = owner, plan, actor, details
        self.desired, self.observed = plan.desired, plan.observed
        self.target = plan.target or LocalTarget(port=None)  # not served here: only its timings are used, to stop what runs
        self.env = self.desired.environment
        self.state = self.observed.state.but(address=self.target.address) if plan.target else self.observed.state
        self.folder = folder(owner.state_dir, self.env)
        self.router_started = False
        self.deployer = procs.Proc(pid=os.getpid(), started=process_started(os.getpid()), log="")

    def run(self) -> None:
        model_dir, canary = self._prerequisites()
        self._save(deploying=Deploying(actor=self.actor, version=self.desired.version, step="cleanup", deployer=self.deployer))
        self._clean_up()
        if model_dir is None or canary is None:  # no version, or not served here
            self._stop_all()
            return
        self._ensure_router()
        if needs_server(self.plan):
            self._blue_green(model_dir, canary)
        else:
            live = self.observed.live
            assert live is not None  # needs_server says so
            control.switch(self._router().control, live.proc.port, live.label)
            self._save(deploying=None, last=Event(event="repaired", version=live.version, actor=self.actor))
        self.details["serving"] = {"address": self.target.address, **self._live_view()}

    def _prerequisites(self) -> tuple[Path | None, CanarySet | None]:
        desired = self.desired
        if desired.version is None or self.plan.target is None:
            return None, None
        if self.target.port is None:
            raise ConfigError(
                f"environment {self.env} has no local port to serve {desired.model} v{desired.version} on",
                hint=f"set one in {desired.source}, e.g. `local: {{port: 8082}}` (production defaults to 8080, staging to 8081)",
            )
        model_dir = self.owner.locate(desired.model, desired.version)
        where = self.owner.project_dir / self.target.canary if self.target.canary else model_dir / "canary"
        try:
            canary = load_canary(where)
        except ConfigError as e:
            named = (
                f"local.canary in {desired.source}"
                if self.target.canary
                else f"the package's canary/ (or local.canary in {desired.source})"
            )
            raise ConfigError(
                f"{desired.model} v{desired.version} cannot be checked before it takes traffic: {e.message}", hint=named
            ) from None
        return model_dir, canary

    def _clean_up(self) -> None:
        stopped = []
        for left in self.observed.leftovers:
            if procs.stop_pid(left.pid, self.target.drain_seconds + 5):
                stopped.append({"pid": left.pid, "role": left.role, "version": left.version})
        if self.state.router is not None and not self.observed.router_up:
            _remove_control_dir(self.state.router.control)
        self.details["cleaned_up"] = stopped
        router = self.state.router if self.observed.router_up else None
        self._save(router=router, live=self.observed.live, retiring=())

    def _stop_all(self) -> None:
        live, router = self.observed.live, self._router() if self.observed.router_up else None
        if router is not None and live is not None:
            control.switch(router.control, None, "")
            control.drain(router.control, live.proc.port, self.target.drain_seconds)
        if live is not None:
            procs.stop(live.proc, self.target.drain_seconds + 5)
        if router is not None:
            procs.stop(router.proc, self.target.drain_seconds + 5)
            _remove_control_dir(router.control)
        previous = None if live is None else live.version
        self._save(router=None, live=None, deploying=None, last=Event(event="stopped", version=None, previous=previous, actor=self.actor))
        self.details["serving"] = {"address": self.state.address, "stopped": previous}

    def _ensure_router(self) -> None:
        """A router on the environment's port, pointed at the live server if one answers; a moved port's old router
        stops only once the new one listens (so a port that cannot be had leaves the old address serving)."""
        moving = self.observed.router_moves(self.target.port)
        if self.observed.router_up and not moving:
            return
        old = self._router() if moving else None
        port = self.target.port
        assert port is not None  # _prerequisites
        socket_dir = tempfile.mkdtemp(prefix=PRIVATE_PREFIX)  # short (a socket path has ~100 bytes) and private (0700)
        socket_path = str(Path(socket_dir) / "control.sock")
        argv = ["-m", "skyops.serving.router", "--name", self.env, "--port", str(port), "--control", socket_path]
        argv += ["--drain-seconds", f"{self.target.drain_seconds:g}"]
        marks = procs.marks(self.owner.state_dir, self.env, procs.ROUTER)
        proc = procs.spawn(argv, log=self._log("router"), marks=marks, cwd=self.owner.project_dir)
        self._save(router=RouterProc(proc=proc, control=socket_path))
        try:
            proc = procs.wait_listening(proc, ROUTER_START_S)
        except procs.StartFailed as e:
            procs.stop(proc, 5)
            _remove_control_dir(socket_path)
            self._save(router=old)
            raise ConfigError(
                f"the router of {self.env} could not start on {self.target.address}: {e.reason()}",
                hint=f"set another local.port in {self.desired.source}, or stop what listens on {port}; the router's log: {proc.log}",
            ) from None
        self.router_started = True
        self._save(router=RouterProc(proc=proc, control=socket_path))
        live = self.observed.live
        if live is not None and self.observed.live_healthy:  # what served before serves on while the new one starts
            control.switch(socket_path, live.proc.port, live.label)
        if old is not None:  # the port changed: the old address goes away, its requests in flight finished first
            procs.stop(old.proc, self.target.drain_seconds + 5)
            _remove_control_dir(old.control)

    def _blue_green(self, model_dir: Path, canary: CanarySet) -> None:
        version = self.desired.version
        assert version is not None
        old, router = self.observed.live, self._router()
        switched = False
        try:  # until the switch, whatever stops the deploy (a failed check, SIGTERM, a bug) stops the new server too
            new = self._wait_started(self._spawn_server(model_dir, version))
            self._step("canary", new)
            result = run_canary(f"http://{HOST}:{new.proc.port}", canary)
            self.details["canary"] = {"folder": str(canary.folder), **result.record()}
            if not result.passed:
                self._roll_back(new, f"{new.label} failed its canary: {result.summary()}")
            self._step("switching", new)
            control.switch(router.control, new.proc.port, new.label)
            switched = True
        except BaseException:
            if not switched:
                self._stop_new_servers(keep=old)
                self._save(deploying=None)
            raise
        new = Server(model=new.model, version=new.version, model_dir=new.model_dir, proc=new.proc)  # live since now
        self._save(live=new, retiring=(old,) if old else (), deploying=self._deploying("draining", new))
        if old is not None:
            drained = control.drain(router.control, old.proc.port, self.target.drain_seconds)
            procs.stop(old.proc, self.target.drain_seconds + 5)
            self.details["drained"] = {"server": old.label, "pid": old.proc.pid, "in_flight_left": drained.get("inflight", 0)}
        event = Event(event="switched" if old else "started", version=version, previous=old.version if old else None, actor=self.actor)
        self._save(retiring=(), deploying=None, last=event)

    def _stop_new_servers(self, keep: Server | None) -> None:
        """Every server of the environment but `keep`: the new one, even one stopped before it was written down."""
        for found in procs.marked(self.owner.state_dir, self.env):
            if found.role == procs.SERVER and (keep is None or found.pid != keep.proc.pid):
                procs.stop_pid(found.pid, 10)

    def _spawn_server(self, model_dir: Path, version: int) -> Server:
        """The new version's `skyops serve`, started and recorded (the deploy's step: starting)."""
        argv = ["-m", "skyops", "serve", str(model_dir), "--host", HOST, "--port", "0", "--backend", self.target.backend.value]
        argv += ["--drain-seconds", f"{self.target.drain_seconds:g}"]
        marks = procs.marks(self.owner.state_dir, self.env, procs.SERVER, str(version))
        self._step("starting", None)
        proc = procs.spawn(argv, log=self._log(f"v{version}"), marks=marks, cwd=self.owner.project_dir)
        server = Server(model=self.desired.model, version=version, model_dir=str(model_dir), proc=proc)
        self._step("starting", server)
        return server

    def _wait_started(self, server: Server) -> Server:
        """`server` once it listens (its port known) and its /ping answers 200; rolled back when it does not in time."""
        try:
            proc = procs.wait_listening(server.proc, self.target.ready_seconds)
            server = Server(model=server.model, version=server.version, model_dir=server.model_dir, proc=proc)
            self._step("starting", server)
            wait_ready(proc, self.target.ready_seconds)
        except procs.StartFailed as e:
            self._roll_back(server, f"{server.label}'s server did not start: {e.reason()}")
        return server

    def _roll_back(self, new: Server, reason: str) -> None:
        procs.stop(new.proc, 10)
        old = self.observed.live if self.observed.live_healthy else None
        if self.router_started and old is None:  # nothing served before: the router goes too
            router = self._router()
            procs.stop(router.proc, 10)
            _remove_control_dir(router.control)
            self._save(router=None, live=None)
        kept = old.label if old is not None else "nothing"
        event = Event(event="rolled-back", version=new.version, previous=old.version if old else None, actor=self.actor, reason=reason)
        self._save(deploying=None, last=event)
        self.details["rolled_back"] = {"version": new.version, "kept": None if old is None else old.version, "reason": reason}
        raise RolloutFailed(
            f"{self.env}: {new.label} was not deployed (rolled back): {reason}; {kept} {'keeps' if old else 'is'} serving {self.target.address}",
            hint=f"its server's log: {new.proc.log}; the audit log keeps the rollback (skyops audit verify)",
        )

    def _router(self) -> RouterProc:
        router = self.state.router
        assert router is not None, "no router is running"
        return router

    def _live_view(self) -> dict[str, Any]:
        live = self.state.live
        return {} if live is None else {"version": live.version, "pid": live.proc.pid, "port": live.proc.port}

    def _step(self, step: str, server: Server | None) -> None:
        self._save(deploying=self._deploying(step, server))

    def _deploying(self, step: str, server: Server | None) -> Deploying:
        return Deploying(actor=self.actor, version=self.desired.version, step=step, deployer=self.deployer, server=server)

    def _save(self, **changes: Any) -> None:
        self.state = self.state.but(**changes)
        write(self.owner.state_dir, self.state)

    def _log(self, what: str) -> Path:
        logs = self.folder / "logs"
        if logs.is_dir():
            for old in sorted(logs.glob("*.log"))[:-KEEP_LOGS]:
                old.unlink(missing_ok=True)
        return logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1_000_000:06d}-{what}.log"


def wait_ready(proc: procs.Proc, timeout: float) -> None:
    """Until the server answers GET /ping with 200 (loaded and warm).

    Raises:
        procs.StartFailed: it ended first, or `timeout` passed.
    """
    from skyops.deploy_local.observe import answers_ping

    deadline = time.monotonic() + timeout
    while not answers_ping(proc.port):
        if not procs.alive(proc):
            raise procs.StartFailed(f"process {proc.pid} ended while its model loaded", procs.tail(proc))
        if time.monotonic() > deadline:
            raise procs.StartFailed(f"its /ping did not answer 200 within {timeout:g} s", procs.tail(proc))
        time.sleep(0.1)


def _remove_control_dir(socket_path: str) -> None:
    """The private folder of a router's control socket (ours only: under the temp folder, with our prefix)."""
    parent = Path(socket_path).parent
    if parent.parent == Path(tempfile.gettempdir()) and parent.name.startswith(PRIVATE_PREFIX):
        shutil.rmtree(parent, ignore_errors=True)
