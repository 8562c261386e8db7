"""`skyops demo gitops`: the modernisation story in one command, on a throwaway project, every part real.

A Data Scientist trains v1; an ML Engineer approves and promotes it and serves it by committing its number to
deploy/environments/production.yaml and applying. New data arrives (a dusk batch whose labelling vendor left
`person` out, scenes.py); v2 is trained on it, passes its registration gate on its own test split, is approved
and promoted through a git commit + apply. Daylight traffic comes in: the monitor finds it drifted and raises
the alert; the golden set (v1's daylight test split) shows v2 losing a slice (whatever the evaluation finds is
what is printed). `git revert` of the promote commit + apply puts v1 back; a request proves it; the audit log
verifies. Each step prints the command a person would type, then its outcome; a failed step stops the story
with one line naming it, and every server the demo started is stopped however it ends.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyops.demo.project import DATA_SCIENTIST, ML_ENGINEER, MODEL, free_port, git, make_project, set_version
from skyops.demo.stage import DemoFailed, Stage, timed

MAX_SLICE_REGRESSION = 0.05  # the pipeline's default registration gate on the worst slice
TRAFFIC_IMAGES = 40  # the drift step needs at least 30 requests in a window
REQUEST_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 300.0

# (step, what it shows): the story, in order (`skyops demo gitops --help` and docs/demo-gitops.md list it).
STEPS: tuple[tuple[str, str], ...] = (
    ("train-v1", "the Data Scientist trains and registers v1 (skyops run)"),
    ("approve-v1", "the ML Engineer approves v1"),
    ("promote-v1", "the ML Engineer makes v1 the @champion"),
    ("serve-v1", "production.yaml names v1: git commit, deploy apply; a request answers from v1"),
    ("new-data", "a new batch arrives: dusk scenes, `person` left unlabelled by the new vendor"),
    ("retrain-v2", "the Data Scientist trains v2 on it; its registration gate decides"),
    ("approve-v2", "the ML Engineer approves v2"),
    ("promote-v2", "production.yaml names v2: git commit, deploy apply; a request answers from v2"),
    ("traffic", "daylight traffic reaches production, mirrored to a capturing server"),
    ("monitor", "skyops monitor run: the captured window against v2's training baseline"),
    ("alert", "skyops monitor alert: the drift.detected event"),
    ("slices", "v2 against v1 on the golden set, slice by slice (the max_slice_regression rule)"),
    ("revert", "git revert of the promote commit"),
    ("rollback", "deploy apply: v1 serves again; a request proves it"),
    ("audit", "skyops audit verify: the hash-chained log holds"),
)


@dataclass(frozen=True, kw_only=True)
class Options:
    images: int = 400  # synthetic scenes per training dataset: half the default pipeline's
    epochs: int = 7  # the default pipeline's first recipe (docs/training.md), as the story was measured (docs/demo-gitops.md)
    image_size: int = 256  # pixels; at 128 the people are 3-6 px and v1 finds none of them (docs/demo-gitops.md)


def play(stage: Stage, options: Options) -> None:
    """Play every step of STEPS in the stage's project; DemoFailed names the first step that did not hold."""
    port = free_port()
    step, command = "project", f"git init {stage.project.name}   # pipelines/, deploy/environments/, skyops-roles.yaml"
    stage.announce(step, command)
    with timed() as took:
        make_project(stage.project, port)
    stage.record(step, command, f"a git repository at {stage.project}; production serves on http://127.0.0.1:{port}", took[0])
    production = f"http://127.0.0.1:{port}"
    common = ["-p", f"images={options.images}", "-p", f"image_size={options.image_size}", "-p", f"epochs={options.epochs}"]
    # Batch 8 with one optimizer step per batch (nbs 8): half the default pipeline's scenes, as many optimizer steps
    # as its recipe makes; the learning rate and warm-up the story was measured with (docs/demo-gitops.md), the
    # default's before the study of docs/training.md. min_map50: minutes of CPU training reach a demo's bar, not 0.5.
    common += ["-p", "batch=8", "-p", "nbs=8", "-p", "lr0=0.002", "-p", "warmup_epochs=1", "-p", "min_map50=0.05"]

    v1_run = train(stage, "train-v1", [*common, "-p", "seed=0"], expect=1)
    governed(stage, "approve-v1", ["models", "approve", "1", "--reason", "reviewed the v1 evaluation report"])
    governed(stage, "promote-v1", ["models", "promote", "1", "--reason", "first model"])
    deploy(stage, "serve-v1", version=1, address=production)

    batch = stage.project / "data" / "batch-2"
    step, command = "new-data", "cp -r /incoming/batch-2 data/batch-2   # the demo draws it: scenes.new_batch"
    stage.announce(step, command)
    with timed() as took:
        from skyops.demo.scenes import DUSK, UNLABELLED, new_batch

        counts = new_batch(batch, options.images, options.image_size, seed=11)
    stage.record(
        step,
        command,
        f"{counts['images']} dusk scenes (brightness x{DUSK}), {counts['boxes']} boxes; "
        f"{counts['unlabelled_persons']} {UNLABELLED} boxes left unlabelled by the new vendor's guideline",
        took[0],
    )
    v2_run = train(stage, "retrain-v2", [*common, "-p", "dataset=data/batch-2", "-p", "format=yolo", "-p", "seed=1"], expect=2)
    governed(stage, "approve-v2", ["models", "approve", "2", "--reason", "gate passed on the new data"])
    deploy(stage, "promote-v2", version=2, address=production)

    captures = send_traffic(stage, production, options)
    drift_file = monitor(stage, captures, v2_run)
    drifted = alert(stage, drift_file)
    regressed = slices(stage, candidate=v2_run, reference=v1_run, options=options)
    why = [w for w, found in (("v2 regresses on a slice", regressed), ("the drift alert", drifted)) if found]

    step = "revert"
    promote_commit = git(stage.project, "log", "-1", "--format=%h %s").strip()
    with timed() as took:
        stage.git(step, ["revert", "--no-edit", "HEAD"])
    now = git(stage.project, "log", "-1", "--format=%h %s").strip()
    stage.record(
        step,
        "git revert --no-edit HEAD",
        f"{now} (reverts {promote_commit}): production.yaml names v1 again\n"
        + (f"why: {' and '.join(why)}" if why else "why: neither a slice regression nor drift was found; the story rolls back to show how"),
        took[0],
    )
    apply(stage, "rollback", version=1, address=production)

    with timed() as took:
        out = stage.skyops("audit", ["audit", "verify"], user=ML_ENGINEER)
    stage.record("audit", "skyops audit verify", _tail(out, 2), took[0])


def train(stage: Stage, step: str, params: list[str], *, expect: int) -> dict[str, Any]:
    """`skyops run drone-detection` as the Data Scientist; the run record, which must have registered v`expect`."""
    from skyops.pipeline.lineage import load_record

    args = ["run", "drone-detection", *params]
    with timed() as took:
        stage.skyops(step, args, user=DATA_SCIENTIST, shown=f"SKYOPS_USER={DATA_SCIENTIST} skyops {shlex.join(args)}")
    record = load_record(stage.state_dir / "runs", "latest")
    evaluation = _json(record.steps["evaluate"].outputs["evaluation"]["path"], "evaluation.json")
    registration = _json(record.steps["register"].outputs["registration"]["path"], "registration.json")
    gate = registration.get("gate") or {}
    if registration.get("version") != expect or not gate.get("passed"):  # a failed gate registers the version Rejected
        found = f"v{registration.get('version')} {registration.get('status')}" if registration.get("version") else "nothing"
        reasons = gate.get("reasons", [])
        failing = [r for r in reasons if "beyond" in r or " < " in r] or reasons or ["no gate verdict recorded"]
        raise DemoFailed(
            f"step {step}: run {record.run_id} registered {found}, not v{expect} pending approval: {'; '.join(failing)}",
            hint=stage.log_hint(),
        )
    lines = [
        f"run {record.run_id}: test mAP50 {evaluation['metrics']['map50']:.3f}, mAP50-95 {evaluation['metrics']['map50_95']:.3f}; "
        f"registered {MODEL} v{expect} ({registration['status']})",
        *(f"gate: {reason}" for reason in gate.get("reasons", [])[2:]),
    ]
    stage.record(step, shlex.join(args), "\n".join(lines), took[0])
    return {
        "run_id": record.run_id,
        "model": str(record.steps["train"].outputs["model"]["path"]),
        "splits": str(record.steps["split"].outputs["splits"]["path"]),
    }


def governed(stage: Stage, step: str, args: list[str]) -> None:
    """A governed action as the ML Engineer (--as), its outcome line recorded."""
    shown = [*args, "--as", ML_ENGINEER]
    with timed() as took:
        out = stage.skyops(step, shown, user=ML_ENGINEER)
    stage.record(step, f"skyops {shlex.join(shown)}", _tail(out, 1), took[0])


def deploy(stage: Stage, step: str, *, version: int, address: str) -> None:
    """Name `version` in production.yaml, commit it, apply it, and check a request answers from it."""
    with timed() as took:
        set_version(stage.project, "production", version)
        message = f"deploy v{version} to production"
        stage.git(step, ["commit", "-q", "-am", message])
    stage.record(step, f'git commit -am "{message}"', git(stage.project, "log", "-1", "--format=%h %s").strip(), took[0])
    apply(stage, step, version=version, address=address)


def apply(stage: Stage, step: str, *, version: int, address: str) -> None:
    """`skyops deploy apply --env production` as the ML Engineer, then a real request: its answer must come from v`version`."""
    args = ["deploy", "apply", "--env", "production", "--as", ML_ENGINEER]
    with timed() as took:
        out = stage.skyops(step, args, user=ML_ENGINEER)
        upstream = serving_version(stage, step, address)
    if upstream != f"{MODEL} v{version}":
        raise DemoFailed(f"step {step}: {address} answers from {upstream or 'no model'}, not {MODEL} v{version}")
    stage.record(step, f"skyops {shlex.join(args)}", f"{_tail(out, 1)}\nPOST {address}/invocations answered by {upstream}", took[0])


def serving_version(stage: Stage, step: str, address: str) -> str:
    """Which version answers a real request at `address` (the router's X-Skyops-Upstream header)."""
    import httpx

    # One of the export step's held-back canary images (JPEG or PNG), which a served version has answered before.
    image = next(
        (p for p in sorted(stage.state_dir.glob("cache/*/outputs/package/model/canary/images/*")) if p.suffix in (".jpg", ".png")), None
    )
    if image is None:
        raise DemoFailed(f"step {step}: no canary image in {stage.state_dir / 'cache'} to send to {address}")
    try:
        answer = httpx.post(
            f"{address}/invocations",
            content=image.read_bytes(),
            headers={"Content-Type": "image/png" if image.suffix == ".png" else "image/jpeg"},
            timeout=REQUEST_TIMEOUT_S,
        )
    except httpx.HTTPError as e:
        raise DemoFailed(f"step {step}: POST {address}/invocations failed: {e}") from None
    if answer.status_code != 200:
        raise DemoFailed(f"step {step}: POST {address}/invocations answered {answer.status_code}: {answer.text[:200]}")
    return answer.headers.get("x-skyops-upstream", "")


def send_traffic(stage: Stage, production: str, options: Options) -> Path:
    """Daylight scenes to production, each mirrored to a `skyops serve` with data capture on; the capture folder."""
    import httpx

    from skyops.demo.scenes import traffic

    step, captures, port = "traffic", stage.project / "captures", free_port()
    args = ["serve", f"{MODEL}@champion", "--port", str(port), "--capture-dir", "captures", "--workers", "1"]
    stage.announce(step, f"skyops {shlex.join(args)} &   # a mirror of production with data capture on")
    with timed() as took:
        images = traffic(stage.project / "data" / "traffic", TRAFFIC_IMAGES, options.image_size, seed=23)
        mirror = f"http://127.0.0.1:{port}"
        server = stage.spawn([sys.executable, "-m", "skyops", *args], user=ML_ENGINEER, log=stage.project / "data" / "mirror.log")
        _wait_ping(step, mirror, server)
        answered: dict[str, int] = {}
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            for image in images:
                body = image.read_bytes()
                for url in (production, mirror):
                    answer = client.post(f"{url}/invocations", content=body, headers={"Content-Type": "image/jpeg"})
                    if answer.status_code != 200:
                        raise DemoFailed(f"step {step}: POST {url}/invocations answered {answer.status_code}: {answer.text[:200]}")
                    label = answer.headers.get("x-skyops-upstream", "mirror")
                    answered[label] = answered.get(label, 0) + 1
        code = stage.stop(server)  # a capture file is published (renamed, readable) when the server stops
    if code != 0:
        raise DemoFailed(f"step {step}: the mirror server exited {code} when stopped (see data/mirror.log)")
    served = ", ".join(f"{n} by {label}" for label, n in sorted(answered.items()))
    stage.record(
        step, f"skyops {shlex.join(args)} &", f"{len(images)} daylight scenes sent to {production} and the mirror: {served}", took[0]
    )
    return captures


def monitor(stage: Stage, captures: Path, v2_run: dict[str, Any]) -> Path:
    """`skyops monitor run` on the captured window against v2's training baseline; the drift.json."""
    args = ["monitor", "run", "--captures", captures.name, "--from-run", v2_run["run_id"]]
    with timed() as took:
        out = stage.skyops("monitor", args, user=ML_ENGINEER)
    verdict = next((line for line in out.splitlines() if "DRIFTED" in line or "no drift" in line), "no verdict printed")
    result = next((line.split()[1] for line in out.splitlines() if line.startswith("result ")), "")
    stage.record("monitor", f"skyops {shlex.join(args)}", verdict.strip(), took[0])
    return Path(result)


def alert(stage: Stage, drift_file: Path) -> bool:
    """`skyops monitor alert`: the drift.detected event, when the window drifted; whether it did."""
    args = ["monitor", "alert", "--from-run", "latest"]
    with timed() as took:
        out = stage.skyops("alert", args, user=ML_ENGINEER)
    drifted = json.loads(drift_file.read_text())["drifted"] if drift_file.is_file() else False
    result = _tail(out, 2) if drifted else f"{_tail(out, 1)}\nno alert: the window did not drift"
    stage.record("alert", f"skyops {shlex.join(args)}", result, took[0])
    return bool(drifted)


def slices(stage: Stage, *, candidate: dict[str, Any], reference: dict[str, Any], options: Options) -> bool:
    """v2 against v1 on v1's test split (daylight, every class labelled), read by the register step's slice rule;
    whether v2 is worse than v1 on some slice by more than the rule allows."""
    from skyops.pipeline.lineage import load_record
    from skyops.registry.gate import GatePolicy, champion_comparison, decide

    project = stage.project
    args = ["run", "slice-check", "-p", f"candidate={_relative(candidate['model'], project)}"]
    args += ["-p", f"reference={_relative(reference['model'], project)}", "-p", f"splits={_relative(reference['splits'], project)}"]
    args += ["-p", f"image_size={options.image_size}"]
    with timed() as took:
        stage.skyops("slices", args, user=ML_ENGINEER)
    record = load_record(stage.state_dir / "runs", "latest")
    evaluation = _json(record.steps["evaluate"].outputs["evaluation"]["path"], "evaluation.json")
    comparison = champion_comparison(evaluation)
    worst = ((comparison or {}).get("slices") or {}).get("worst")
    verdict = decide(evaluation, comparison, GatePolicy(max_slice_regression=MAX_SLICE_REGRESSION))
    overall = f"v2 vs v1 on the golden set: mAP50-95 {comparison['delta']['map50_95']:+.3f}" if comparison else "no comparison made"
    regressed = worst is not None and worst["delta"] < -MAX_SLICE_REGRESSION
    if worst is not None and regressed:
        found = f"v2 regresses on slice {worst['family']}={worst['name']}: {verdict['reasons'][-1]}"
    else:
        found = f"no slice regression found beyond {MAX_SLICE_REGRESSION}: {verdict['reasons'][-1]}"
    stage.record("slices", f"skyops {shlex.join(args)}", f"{found}\n{overall}", took[0])
    return regressed


def _json(folder: str | Path, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((Path(folder) / name).read_text())
    return loaded


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def _wait_ping(step: str, url: str, server: Any) -> None:
    import time

    import httpx

    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise DemoFailed(f"step {step}: the mirror server exited {server.returncode} before answering /ping (see data/mirror.log)")
        try:
            if httpx.get(f"{url}/ping", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)  # not listening yet
            continue
        time.sleep(0.5)
    raise DemoFailed(f"step {step}: the mirror server did not answer /ping within {READY_TIMEOUT_S:g} s (see data/mirror.log)")
