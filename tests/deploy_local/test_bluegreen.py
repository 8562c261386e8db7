"""Acceptance: `skyops deploy apply` makes a version live behind the environment's address, blue/green, on real processes.

A first apply starts the router and the version's server; a second version switches with zero failed
requests while a load generator runs through the switch; a broken version fails its canary, is
rolled back, and the old one keeps answering; `version: null` stops everything. Each transition is
in the audit log, and `skyops deploy status` shows what runs where.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import cv2
import httpx
import pytest

from skyops.registry.audit import AuditLog

from .conftest import Load, Packages, World, free_port


def large_jpeg(packages: Packages) -> bytes:
    """A scene enlarged to 2048 px: decoding and letterboxing it keeps a request in the server for tens of ms."""
    image = cv2.resize(cv2.imread(str(packages.images[1])), (2048, 2048), interpolation=cv2.INTER_CUBIC)
    return bytes(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())


def deploys(world: World) -> list[dict[str, object]]:
    """The deploy records of the audit log (intent and outcome), as dicts."""
    return [r.to_dict() for r in AuditLog(world.state / "audit.log").records() if r.action == "deploy"]


def test_first_apply_serves_the_version_behind_the_address(world: World, packages: Packages) -> None:
    version = world.register(packages.v1)
    world.desire(version)
    code, out, err = world.apply()
    assert (code, err) == (0, ""), err
    assert out.splitlines() == [
        f"applied: staging: deploy {world.model} v1 (now none)",
        "applied: @staging: none -> v1",
        f"applied: staging: start the router on {world.address}",
        f"applied: staging: start {world.model} v1 on {world.address} (after its canary)",
    ]
    answer = httpx.post(f"{world.address}/invocations", content=packages.images[0].read_bytes(), headers={"Content-Type": "image/jpeg"})
    assert answer.status_code == 200 and answer.headers["x-skyops-upstream"] == f"{world.model} v1"
    assert answer.json()["model"]["version"] == 1  # the package's own metadata: the server of v1's package answered
    assert httpx.get(f"{world.address}/ping").status_code == 200
    assert sorted(p.role for p in world.processes()) == ["router", "server"]

    intent, outcome = deploys(world)
    assert (intent["outcome"], outcome["outcome"], outcome["actor"]) == ("intent", "succeeded", "alice")
    details = outcome["details"]
    assert isinstance(details, dict)
    _, pid = world.live()
    assert details["serving"] == {"address": world.address, "version": 1, "pid": pid, "port": details["serving"]["port"]}  # type: ignore[index]
    assert details["canary"]["passed"] is True and details["canary"]["recall"] == 1.0  # type: ignore[index]

    code, out, err = world.run("deploy", "status", "--env", "staging")
    assert code == 0, err
    lines = out.splitlines()
    assert re.fullmatch(
        rf"staging     {re.escape(world.address)}  {world.model} v1  healthy  since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC", lines[0]
    )
    assert re.fullmatch(rf"  server    pid {pid} on 127\.0\.0\.1:\d+, log .*-v1\.log", lines[1])
    assert re.fullmatch(r"  router    pid \d+", lines[2])
    assert re.fullmatch(r"  last      started v1 by alice, .* UTC", lines[3])
    assert len(lines) == 4

    code, out, _ = world.apply()
    assert (code, out) == (0, f"staging: nothing to do, already {world.model} v1 @staging\n")
    assert len(deploys(world)) == 2  # nothing done, nothing audited


def test_a_new_version_switches_with_zero_failed_requests_under_load(world: World, packages: Packages) -> None:
    one, two = world.register(packages.v1), world.register(packages.v2)
    world.desire(one)
    assert world.apply()[0] == 0
    _, old_pid = world.live()
    world.desire(two)
    with Load(world.address, large_jpeg(packages)) as load:  # slow enough to be in flight at the switch
        load.wait_for(f"{world.model} v1", 10)
        code, out, err = world.apply()
        load.wait_for(f"{world.model} v2", 10)
    assert (code, err) == (0, ""), err
    assert (
        f"applied: staging: {world.model} v1 -> {world.model} v2 on {world.address}: start beside it, canary, switch, drain {world.model} v1"
        in out
    )
    assert load.failures == {} and load.errors == []
    assert load.counts[(200, f"{world.model} v1")] >= 10 and load.counts[(200, f"{world.model} v2")] >= 10
    assert world.live()[0] == 2
    assert [p.role for p in world.processes()].count("server") == 1  # the old one was stopped
    assert old_pid not in [p.pid for p in world.processes()]
    outcome = deploys(world)[-1]
    assert outcome["outcome"] == "succeeded" and outcome["details"]["drained"]["server"] == f"{world.model} v1"  # type: ignore[index]
    code, out, _ = world.run("deploy", "status", "--env", "staging")
    assert re.search(r"^  last      switched to v2 from v1 by alice, ", out, re.MULTILINE), out


@pytest.mark.parametrize("breakage", ["silent", pytest.param("misplaced", marks=pytest.mark.slow)])
def test_a_broken_version_fails_its_canary_and_the_old_one_keeps_answering(world: World, packages: Packages, breakage: str) -> None:
    good = world.register(packages.v1)
    bad = world.register(packages.silent if breakage == "silent" else packages.misplaced)
    world.desire(good)
    assert world.apply()[0] == 0
    _, good_pid = world.live()
    world.desire(bad)
    with Load(world.address, packages.images[2].read_bytes(), threads=2) as load:
        load.wait_for(f"{world.model} v1", 5)
        code, out, err = world.apply()
        answers_during = load.counts[(200, f"{world.model} v1")]
        load.wait_for(f"{world.model} v1", answers_during + 5)  # still answering after the rollback
    assert code == 1 and out == ""
    recall = r"recall 0\.00 < 0\.80" if breakage == "silent" else r"recall 0\.\d\d < 0\.80"
    first, hint = err.splitlines()
    assert re.fullmatch(
        rf"error: staging: {world.model} v2 was not deployed \(rolled back\): {world.model} v2 failed its canary: {recall} "
        rf"\(\d+ of \d+ expected detections found\), precision .* on 4 images; {world.model} v1 keeps serving {re.escape(world.address)}",
        first,
    ), first
    assert hint.startswith("hint: its server's log: ")
    assert load.failures == {} and load.errors == []
    assert world.live() == (1, good_pid)
    assert [p.role for p in world.processes()].count("server") == 1

    outcome = deploys(world)[-1]
    assert outcome["outcome"] == "failed" and "RolloutFailed" in str(outcome["details"]["error"])  # type: ignore[index]
    assert outcome["details"]["rolled_back"]["kept"] == 1 and outcome["details"]["canary"]["passed"] is False  # type: ignore[index]
    deployed = json.loads((world.state / "deployments" / "staging.json").read_text())
    assert deployed["version"] == 1  # the deployed record, and the alias, stay where they were
    code, out, _ = world.run("deploy", "status", "--env", "staging")
    assert "  last      rolled back v2 (v1 kept) by alice, " in out
    assert f"  desired   {world.model} v2, not live yet: skyops deploy apply --env staging" in out


def test_version_null_stops_the_server_and_the_router(world: World, packages: Packages) -> None:
    world.desire(world.register(packages.v1))
    assert world.apply()[0] == 0
    world.desire(None)
    code, out, err = world.apply()
    assert code == 0, err
    assert f"applied: staging: stop {world.model} v1 serving {world.address}" in out
    assert world.processes() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{world.address}/ping")
    (world.project / "deploy" / "environments" / "archive.yaml").write_text(
        f"environment: archive\nmodel: {world.model}\nalias: champion\nversion: null\n"
    )
    code, out, _ = world.run("deploy", "status")  # every environment
    lines = out.splitlines()
    assert lines[:2] == [
        f"archive     not served on this machine ({world.project / 'deploy' / 'environments' / 'archive.yaml'} has no local: section)",
        f"staging     {world.address}  nothing deployed",
    ]
    assert re.fullmatch(r"  last      stopped v1 by alice, .* UTC", lines[2]) and len(lines) == 3


def test_a_server_that_cannot_start_is_rolled_back_with_its_own_error(world: World, packages: Packages, tmp_path: Path) -> None:
    good = world.register(packages.v1)
    torn = shutil.copytree(packages.v2, tmp_path / "torn")
    with open(torn / "model.onnx", "r+b") as onnx:  # a torn copy: the server refuses it before it listens
        onnx.truncate(1000)
    world.desire(good)
    assert world.apply()[0] == 0
    world.desire(world.register(torn))
    code, _, err = world.apply()
    assert code == 1
    assert err.splitlines()[0] == (
        f"error: staging: {world.model} v2 was not deployed (rolled back): {world.model} v2's server did not start: "
        f"{torn / 'model.onnx'} does not match its sha256 in {torn / 'metadata.json'} "
        f"({hashlib.sha256((torn / 'model.onnx').read_bytes()).hexdigest()[:12]}... against "
        f"{json.loads((torn / 'metadata.json').read_text())['artifacts']['onnx']['sha256'][:12]}...); "
        f"{world.model} v1 keeps serving {world.address}"
    )
    assert httpx.get(f"{world.address}/ping").headers["x-skyops-upstream"] == f"{world.model} v1"
    assert [p.role for p in world.processes()].count("server") == 1


def test_a_new_port_moves_the_environment_without_a_new_server(world: World, packages: Packages) -> None:
    world.desire(world.register(packages.v1))
    assert world.apply()[0] == 0
    _, pid = world.live()
    old_address, world.port = world.address, free_port()
    world.desire(1)
    code, out, err = world.apply()
    assert (code, err) == (0, ""), err
    assert out == f"applied: staging: move from {old_address} to {world.address}\n"
    assert world.live() == (1, pid)
    assert httpx.get(f"{world.address}/ping").headers["x-skyops-upstream"] == f"{world.model} v1"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{old_address}/ping")
    assert sorted(p.role for p in world.processes()) == ["router", "server"]
