"""The loop end to end on 127.0.0.1, every part a real process: `skyops serve` captures normal and drifted traffic ->
`skyops monitor run` (the monitor pipeline: baseline of a training split -> window of the captures -> drift) finds the
drift -> `monitor alert` puts its drift.json in the log and at a webhook as a drift.detected event -> the retraining
policy starts a run, then refuses a second alert (cooldown) -> `label export` picks the drifted images by the drift
check's own per-request contributions -> a labeller returns a Ground Truth output manifest -> `label import` makes a
new dataset version with a new fingerprint -> a retraining run ingests exactly that version.

The model package is a small one made for this module (6 scenes of 128 px, one epoch; about 20 s of CPU);
SKYOPS_TEST_PACKAGE=/path reuses one built earlier with `python -m tests.serving.make_package /path --images 6 --imgsz 128`.
The drift check needs a window of at least 30 images (the drift step's min_images) and a training split to build its
baseline from: 30 more scenes of the same generator are sent darkened, and a split of 40 is the baseline's.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from skyops.data.layout import Manifest
from skyops.data.split import split_dataset
from skyops.data.synth import generate_scenes
from skyops.monitoring.drift import DriftResult
from skyops.pipeline.lineage import list_records
from skyops.serving.capture import read_captures
from tests.serving.conftest import PACKAGE_ENV, launch, shut

from .conftest import TINY_PIPELINE, Webhook, groundtruth_line, python_env, with_yaml, write_manifest

ROOT = Path(__file__).resolve().parents[2]
DRIFTED_REQUESTS = 30  # the drift step's min_images: a smaller window is refused


@pytest.fixture(scope="module")
def small_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get(PACKAGE_ENV)
    if given:
        return Path(given)
    out = tmp_path_factory.mktemp("small-package")
    done = subprocess.run(
        [sys.executable, "-m", "tests.serving.make_package", str(out), "--images", "6", "--imgsz", "128"],
        env=python_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture
def loop_env(tmp_path: Path, webhook: Webhook) -> Iterator[dict[str, str]]:
    project = tmp_path / "project"
    (project / "pipelines").mkdir(parents=True)
    shutil.copy(ROOT / "pipelines" / "monitor.yaml", project / "pipelines")  # the project ships the monitor pipeline
    yield python_env(
        SKYOPS_PROJECT_DIR=str(project),
        SKYOPS_STATE_DIR=str(project / ".skyops"),
        SKYOPS_EVENT_WEBHOOK=webhook.url,
        SKYOPS_EVENT_WEBHOOK_RETRIES="1",
    )


def skyops(env: dict[str, str], *args: str) -> str:
    """`python -m skyops ARGS` as a real process; its stdout (the test fails with its stderr when it exits non-zero)."""
    done = subprocess.run(
        [sys.executable, "-m", "skyops", *args], env=env, cwd=env["SKYOPS_PROJECT_DIR"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"skyops {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def drifted(path: Path) -> bytes:
    """The scene at night and out of focus: darkened and blurred."""
    image = cv2.imread(str(path))
    assert image is not None, path
    dark = cv2.GaussianBlur((image * 0.25).astype(np.uint8), (9, 9), 0)
    return bytes(cv2.imencode(".jpg", dark)[1].tobytes())


def test_serve_capture_alert_retrain_label_and_grow_the_dataset(
    small_package: Path, tmp_path: Path, webhook: Webhook, loop_env: dict[str, str]
) -> None:
    images = sorted((small_package / "scenes" / "images").glob("*.jpg"))
    scenes = with_yaml(
        Path(shutil.copytree(small_package / "scenes", tmp_path / "training-data", copy_function=os.link))
    )  # the training data
    generate_scenes(tmp_path / "monitor-data", count=40, size=128, seed=1, workers=1)
    splits = tmp_path / "splits"
    split_dataset(tmp_path / "monitor-data", splits, ratios=(0.8, 0.1, 0.1), seed=0)  # the baseline's training split
    generate_scenes(tmp_path / "night", count=DRIFTED_REQUESTS, size=128, seed=2, workers=1)
    night = sorted((tmp_path / "night" / "images").glob("*.jpg"))
    captures = tmp_path / "captures"

    # 1. A real server captures normal traffic, then drifted traffic and a JSON batch.
    server = launch(
        small_package / "model", "--capture-dir", str(captures), cwd=tmp_path, env={"SKYOPS_STATE_DIR": loop_env["SKYOPS_STATE_DIR"]}
    )
    normal: list[str] = []
    shifted: list[str] = []
    traffic = [(p.read_bytes(), normal) for p in images] + [(drifted(p), shifted) for p in night]
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for n, (body, ids) in enumerate(traffic):
                answer = client.post(
                    "/invocations?conf=0.01", content=body, headers={"Content-Type": "image/jpeg", "X-Amzn-RequestId": f"r{n}"}
                )
                assert answer.status_code == 200, answer.text
                ids.append(answer.json()["request_id"])
            batch = {"images": [base64.b64encode(drifted(p)).decode() for p in night[:2]]}
            answer = client.post("/invocations?conf=0.01", json=batch)  # the same drifted pictures again: counted once
            assert answer.status_code == 200
    finally:
        assert shut(server) == 0
    records = list(read_captures(captures))
    assert len(records) == len(traffic) + 1

    # 2. The drift check on the captured window: drifted, and the darkened requests carry the drift.
    out = skyops(loop_env, "monitor", "run", "--captures", str(captures), "--splits", str(splits), "--model", str(small_package / "model"))
    drift_file = Path(next(line for line in out.splitlines() if line.startswith("result ")).split()[1])
    result = DriftResult.from_json(drift_file)
    assert result.drifted and f"DRIFTED over {len(records)} requests" in out
    assert result.window["source"] == str(captures) and result.baseline["images"] == 32  # 80% of 40
    # Named: the score features differ on any traffic here (the requests ask conf=0.01, the baseline uses the package's 0.25).
    assert {"brightness", "sharpness"} <= {f.name for f in result.features if f.drifted}
    contribution = {r["inference_id"]: r["drift_contribution"] for r in result.requests}
    assert max(contribution[i] for i in normal) < min(contribution[i] for i in shifted)

    # 3. The alert: an event in the log and at the webhook; the policy starts a run on the training data...
    policy = ["--pipeline", str(TINY_PIPELINE), "--min-new-labels", "0", "--wait"]
    out = skyops(loop_env, "monitor", "alert", str(drift_file), "--retrain", "--dataset", str(scenes), *policy)
    assert "retraining: start: policy allows it" in out and "exit code 0" in out
    # ... and refuses a second alert within the cooldown.
    out = skyops(loop_env, "monitor", "alert", str(drift_file), "--retrain", "--dataset", str(scenes), *policy)
    assert "retraining: refused (cooldown): the last run started " in out

    # 4. The images most worth labelling: the drifted ones first.
    job = tmp_path / "job"
    out = skyops(
        loop_env,
        "monitor",
        "label",
        "export",
        str(captures),
        "--out",
        str(job),
        "--drift",
        str(drift_file),
        "--count",
        "4",
        "--base",
        str(scenes),
    )
    assert f"4 of {len(traffic)} captured images picked" in out and "skipped 2: same image as an earlier request" in out
    selection = json.loads((job / "selection.json").read_text())
    assert {item["inference_id"] for item in selection["items"]} <= set(shifted)
    manifest_lines = [json.loads(line) for line in (job / "groundtruth-input.manifest").read_text().splitlines()]
    assert [line["source-ref"] for line in manifest_lines] == [item["source_ref"] for item in selection["items"]]

    # 5. A labeller returns a Ground Truth output manifest: one car per image.
    labelled = [groundtruth_line(item["source_ref"], item["width"], item["height"], [(0, 10, 12, 30, 20)]) for item in selection["items"]]
    output = write_manifest(tmp_path / "labels" / "output.manifest", labelled)
    out = skyops(loop_env, "monitor", "label", "import", str(output), "--job", str(job), "--base", str(scenes))
    version = Path(loop_env["SKYOPS_STATE_DIR"]) / "datasets" / "drone-detection" / "v0001"
    base = Manifest.read(scenes)
    grown = Manifest.read(version)
    assert len(grown.images) == len(base.images) + 4 and grown.fingerprint != base.fingerprint
    assert f"fingerprint {grown.fingerprint} (was {base.fingerprint}" in out

    # 6. Enough new labels, the cooldown over: the next run trains on the grown dataset, exactly as recorded.
    out = skyops(
        loop_env,
        "monitor",
        "retrain",
        "--dataset",
        "latest",
        "--cooldown-hours",
        "0",
        "--min-new-labels",
        "4",
        "--pipeline",
        str(TINY_PIPELINE),
        "--wait",
    )
    assert "retraining: start: policy allows it: training" in out and "on v0001" in out
    runs = [r for r in list_records(Path(loop_env["SKYOPS_STATE_DIR"]) / "runs") if r.parameters.get("dataset") == str(version)]
    [run] = runs
    ingested = json.loads((Path(run.steps["ingest"].outputs["raw"]["path"]) / "ingest.json").read_text())
    assert ingested["fingerprint"] == grown.fingerprint

    # Every event, in order, in the log and at the webhook.
    log = Path(loop_env["SKYOPS_STATE_DIR"]) / "events" / "events.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()]
    said: list[tuple[str, Any]] = [(e["type"], e["detail"].get("rule")) for e in events]
    assert said == [
        ("drift.detected", None),
        ("retrain.decided", "start"),
        ("drift.detected", None),
        ("retrain.decided", "cooldown"),
        ("retrain.decided", "start"),
    ]
    assert [r.json() for r in webhook.received] == events
    assert events[1]["detail"]["trigger"]["event_id"] == events[0]["id"]
