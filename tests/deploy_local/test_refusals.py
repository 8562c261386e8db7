"""What `skyops deploy apply` refuses before anything starts: a version that is not Approved, a user without the
role, a second deploy to the same environment at once, a port the router cannot have, a version without a canary
set, an environment without a port. Each refusal is one error line and a hint; nothing is left running."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import httpx
import pytest

from skyops.deploy_local.lock import environment_lock
from skyops.registry.audit import AuditLog

from .conftest import ROOT, Packages, World


def outcomes(world: World) -> list[tuple[str, str, str]]:
    """(actor, action, outcome) of every audit record."""
    return [(r.actor, r.action, str(r.outcome)) for r in AuditLog(world.state / "audit.log").records()]


def test_a_version_that_is_not_approved_is_refused_and_nothing_starts(world: World, packages: Packages) -> None:
    version = world.register(packages.v1, approve=False)
    world.desire(version)
    code, out, err = world.apply()
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: {world.model} v1 is PendingManualApproval, not Approved: only an Approved version may be deployed",
        "hint: `skyops deploy plan` lists every problem; approve the version first, or put the registry back through skyops",
    ]
    assert world.processes() == []
    assert outcomes(world)[-2:] == [("alice", "deploy", "intent"), ("alice", "deploy", "failed")]


@pytest.mark.parametrize(
    ("who", "role"), [("bob", "role data-scientist"), ("mallory", "role none"), ("eve", "role data-scientist, default_role")]
)
def test_a_user_without_the_role_is_refused_and_audited(world: World, packages: Packages, who: str, role: str) -> None:
    world.desire(world.register(packages.v1))
    code, out, err = world.apply(who=who)
    assert (code, out) == (2, "")
    first = err.splitlines()[0]
    assert first.startswith(f"error: {who} ({role}") and first.endswith(
        f"may not deploy {world.model}:1@staging: deploy needs the role ml-engineer or admin"
    ), first
    assert world.processes() == [] and not (world.state / "serving" / "staging" / "live.json").exists()
    assert outcomes(world)[-1] == (who, "deploy", "denied")


def test_a_second_apply_while_one_holds_the_environment_is_refused_with_who_holds_it(world: World, packages: Packages) -> None:
    world.desire(world.register(packages.v1))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # a real flock on the environment's lock, as another apply's process takes it
        with environment_lock(world.state, "staging", actor="carol", version=1):
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        code, out, err = world.apply()
        assert (code, out) == (1, "")
        assert re.fullmatch(
            rf"error: another deployment to staging is in progress: carol's apply of v1 \(pid {os.getpid()}, since \d\d:\d\d:\d\d UTC\)\n"
            r"hint: wait for it to finish \(skyops deploy status shows it\), or run again with --wait SECONDS\n",
            err,
        ), err
        code, _, err = world.apply("staging", "--wait", "0.3")
        assert code == 1 and "in progress after waiting 0.3 s: carol's apply of v1" in err
        code, out, _ = world.run("deploy", "status", "--env", "staging")
        assert f"  deploying carol's apply of v1 (pid {os.getpid()}" in out
    finally:
        release.set()
        holder.join(30)
    assert world.processes() == []
    assert world.apply()[0] == 0  # once it is let go


@pytest.mark.slow  # two `skyops deploy apply` processes (each imports MLflow) and a server: ~25 s on two busy cores
def test_two_applies_at_once_leave_one_router_and_one_server(world: World, packages: Packages) -> None:
    """Two processes apply the same environment at the same moment: one deploys; the other is refused (it found
    the lock taken) or, if it came second, finds nothing to do. Never two routers, two servers, or two deploys."""
    world.desire(world.register(packages.v1))
    env = {**os.environ, "SKYOPS_USER": "alice"}
    command = [sys.executable, "-m", "skyops", "deploy", "apply", "--env", "staging"]
    runs = [subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(300), run.stdout.read(), run.stderr.read()) for run in runs if run.stdout and run.stderr]  # type: ignore[func-returns-value]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 1]), results
    for code, out, err in results:
        if code == 1:
            assert err.startswith("error: another deployment to staging is in progress: alice's apply of v1"), err
        elif "nothing to do" in out:
            assert out == f"staging: nothing to do, already {world.model} v1 @staging\n"
        else:
            assert out.startswith(f"applied: staging: deploy {world.model} v1"), out
    assert sorted(p.role for p in world.processes()) == ["router", "server"]
    assert [o for o in outcomes(world) if o[1] == "deploy"] == [("alice", "deploy", "intent"), ("alice", "deploy", "succeeded")]
    assert httpx.get(f"{world.address}/ping").status_code == 200


def test_a_port_in_use_is_one_clear_line_and_nothing_is_left(world: World, packages: Packages) -> None:
    path = world.desire(world.register(packages.v1))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", world.port))
        taken.listen()
        code, out, err = world.apply()
    assert (code, out) == (2, "")
    first, hint = err.splitlines()
    assert (
        first
        == f"error: the router of staging could not start on {world.address}: cannot listen on 127.0.0.1:{world.port}: the port is in use"
    )
    assert hint.startswith(f"hint: set another local.port in {path}, or stop what listens on {world.port}; the router's log: ")
    assert world.processes() == [] and _no_socket_of(world)
    assert outcomes(world)[-1] == ("alice", "deploy", "failed")


def _no_socket_of(world: World) -> bool:
    """No control folder recorded in the environment's state is left in /tmp."""
    state = (world.state / "serving" / "staging" / "live.json").read_text()
    return not any(str(folder) in state for folder in Path(tempfile.gettempdir()).glob("skyops-router-*"))


def test_a_version_without_a_canary_set_is_refused_before_anything_starts(world: World, packages: Packages, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(packages.v1, bare, ignore=shutil.ignore_patterns("canary"))
    path = world.desire(world.register(bare))
    code, out, err = world.apply()
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: {world.model} v1 cannot be checked before it takes traffic: no canary set at {bare / 'canary'}: canary.json does not exist",
        f"hint: the package's canary/ (or local.canary in {path})",
    ]
    assert world.processes() == []


def test_an_environment_without_a_port_says_where_to_set_one(world: World, packages: Packages) -> None:
    path = world.desire(world.register(packages.v1), env="qa", local="{}")
    code, out, err = world.apply("qa")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: environment qa has no local port to serve {world.model} v1 on",
        f"hint: set one in {path}, e.g. `local: {{port: 8082}}` (production defaults to 8080, staging to 8081)",
    ]
    assert world.processes("qa") == []
