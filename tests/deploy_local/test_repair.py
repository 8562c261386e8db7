"""A deployment's processes killed or its state damaged: `skyops deploy status` says so, the next apply repairs.

A killed router (the server it fronted runs on): status says the address is down; apply starts a router
again in front of the same server, with no new server and no canary. A deploy killed while its new
server loads: status names the deploy, its step and the leftover server; the address still serves the
old version; the next apply stops the leftover and deploys. A damaged state file: apply starts over.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from skyops.deploy_local.state import path, read

from .conftest import ROOT, Packages, World


def test_a_killed_router_is_reported_then_started_again_in_front_of_the_same_server(world: World, packages: Packages) -> None:
    world.desire(world.register(packages.v1))
    assert world.apply()[0] == 0
    state = read(world.state, "staging", world.address)
    assert state.router is not None and state.live is not None
    os.kill(state.router.proc.pid, signal.SIGKILL)
    while any(p.role == "router" for p in world.processes()):
        time.sleep(0.05)

    code, out, _ = world.run("deploy", "status", "--env", "staging")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"staging     {world.address}  down: its router is not running ({world.model} v1's server still runs)"
    assert f"  down      its router (pid {state.router.proc.pid}) is gone: skyops deploy apply --env staging starts it again" in lines
    code, out, _ = world.run("deploy", "plan", "--env", "staging")
    assert out == f"~ staging: start the router on {world.address}\n"

    code, out, err = world.apply()
    assert (code, err) == (0, ""), err
    assert out == f"applied: staging: start the router on {world.address}\n"
    assert world.live() == (1, state.live.proc.pid)  # the same server, not a new one
    answer = httpx.get(f"{world.address}/ping")
    assert answer.status_code == 200 and answer.headers["x-skyops-upstream"] == f"{world.model} v1"
    assert read(world.state, "staging", world.address).last.event == "repaired"  # type: ignore[union-attr]


def deploy_until_its_server_starts(world: World) -> tuple[subprocess.Popen[str], int]:
    """`skyops deploy apply` in a process of its own, caught once its new server is recorded (starting: not yet
    checked or switched to); the process and that server's pid."""
    env = {**os.environ, "SKYOPS_USER": "alice"}
    command = [sys.executable, "-m", "skyops", "deploy", "apply", "--env", "staging"]
    deployer = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        assert deployer.poll() is None, f"the deploy ended before it could be stopped: {deployer.communicate()}"
        state = read(world.state, "staging", world.address) if path(world.state, "staging").exists() else None
        if state is not None and state.deploying is not None and state.deploying.server is not None:
            return deployer, state.deploying.server.proc.pid
        time.sleep(0.01)


@pytest.mark.slow  # a `skyops deploy apply` process killed part way, then three servers: ~15 s
def test_a_deploy_killed_while_its_server_loads_is_explained_then_finished(world: World, packages: Packages) -> None:
    world.desire(world.register(packages.v1))
    two = world.register(packages.v2)
    assert world.apply()[0] == 0
    _, old_pid = world.live()
    world.desire(two)
    deployer, leftover = deploy_until_its_server_starts(world)
    deployer.kill()
    deployer.communicate(timeout=60)

    code, out, _ = world.run("deploy", "status", "--env", "staging")
    assert out.splitlines()[0].startswith(f"staging     {world.address}  {world.model} v1  healthy")
    assert (
        f"  killed    alice's deploy of v2 stopped at starting (pid {deployer.pid} is gone): skyops deploy apply --env staging finishes it"
        in out
    )
    assert f"  leftover  server of v2 (pid {leftover}): skyops deploy apply --env staging stops it" in out
    assert httpx.get(f"{world.address}/ping").headers["x-skyops-upstream"] == f"{world.model} v1"  # the old one serves on

    code, out, err = world.apply()
    assert (code, err) == (0, ""), err
    assert f"applied: staging: stop the leftover server of v2 (pid {leftover})" in out
    assert world.live()[0] == 2
    assert {p.pid for p in world.processes()}.isdisjoint({leftover, old_pid})
    assert [p.role for p in world.processes()].count("server") == 1


@pytest.mark.slow  # two servers one after the other: ~14 s
def test_a_damaged_state_file_is_reported_and_apply_starts_over(world: World, packages: Packages) -> None:
    world.desire(world.register(packages.v1))
    assert world.apply()[0] == 0
    _, old_pid = world.live()
    path(world.state, "staging").write_text("{ cut short")

    code, out, _ = world.run("deploy", "status", "--env", "staging")
    assert code == 0
    assert f"staging     {world.address}  down: nothing runs" == out.splitlines()[0]
    assert "  damaged   serving state of environment 'staging' " in out
    assert f"  leftover  server of v1 (pid {old_pid}): skyops deploy apply --env staging stops it" in out

    code, out, err = world.apply()
    assert (code, err) == (0, ""), err
    assert out.splitlines()[0].startswith("applied: staging: stop what runs and start over: serving state of environment 'staging' ")
    version, pid = world.live()
    assert version == 1 and pid != old_pid
    assert sorted(p.role for p in world.processes()) == ["router", "server"]
    assert httpx.get(f"{world.address}/ping").status_code == 200


@pytest.mark.slow  # a `skyops deploy apply` process stopped part way: ~15 s
def test_sigterm_stops_a_deploy_its_new_server_with_it_and_the_old_one_serves_on(world: World, packages: Packages) -> None:
    world.desire(world.register(packages.v1))
    two = world.register(packages.v2)
    assert world.apply()[0] == 0
    _, old_pid = world.live()
    world.desire(two)
    deployer, _ = deploy_until_its_server_starts(world)
    deployer.send_signal(signal.SIGTERM)
    out, err = deployer.communicate(timeout=120)
    assert (deployer.returncode, out) == (128 + signal.SIGTERM, "")
    assert err.splitlines() == [
        "error: staging: the deploy was stopped by SIGTERM; what served before serves on",
        "hint: skyops deploy status --env staging",
    ]
    assert [p.pid for p in world.processes() if p.role == "server"] == [old_pid]  # the new one was stopped with it
    state = read(world.state, "staging", world.address)
    assert state.deploying is None and state.live is not None and state.live.version == 1
    assert httpx.get(f"{world.address}/ping").headers["x-skyops-upstream"] == f"{world.model} v1"
    _, out, _ = world.run("deploy", "plan", "--env", "staging")
    assert (
        f"~ staging: {world.model} v1 -> {world.model} v2 on {world.address}: start beside it, canary, switch, drain {world.model} v1"
        in out
    )
