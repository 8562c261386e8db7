"""`skyops monitor alert`: a drift result (the monitoring contract's drift.json) becomes a drift.detected event in the
log and at the webhook; no drift, no event; the drift.json of the latest monitor run is found from its run record."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skyops.pipeline.lineage import RunStatus, StepStatus, new_record, new_run_id, save_record
from skyops.settings import Settings

from .conftest import Webhook, cli, drift_document, logged_events


def test_a_drifted_window_is_one_event_in_the_log_and_at_the_webhook(
    project: Settings, write_drift: Callable[..., Path], webhook: Webhook, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKYOPS_EVENT_WEBHOOK", webhook.url)
    drift = write_drift(requests={"req1": 0.2, "req2": 0.9})
    code, out, err = cli(capsys, "monitor", "alert", str(drift))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        "drift in the window 2026-01-31T13:00:00Z .. 2026-01-31T14:00:00Z (2 requests from captures): "
        "2 feature(s) drifted and the embedding drifted; top: brightness, boxes_per_image, sharpness"
    )
    [event] = logged_events(project)
    assert lines[1] == f"alert drift.detected {event['id']}: logged in {project.state_dir / 'events' / 'events.jsonl'}"
    assert lines[2].startswith("  webhook http://127.0.0.1:") and lines[2].endswith("/…: delivered")
    assert event["type"] == "drift.detected"
    assert event["detail"] == {
        "drift_file": str(drift),
        "window": drift_document()["window"] | {"requests": 2},
        "baseline": {"dataset_fingerprint": "f" * 64, "images": 800},
        "top": ["brightness", "boxes_per_image", "sharpness"],
        "drifted_features": ["brightness", "boxes_per_image"],
        "drifted_feature_count": 2,
        "embedding": {"test": "mmd", "statistic": 0.12, "p_value": 0.001, "drifted": True},
        "requests": 2,
    }
    assert [r.json() for r in webhook.received] == [event]


def test_no_drift_no_event(project: Settings, write_drift: Callable[..., Path], capsys: Any) -> None:
    code, out, _ = cli(capsys, "monitor", "alert", str(write_drift(drifted=False)), "--retrain")
    assert code == 0 and out.startswith("no drift in the window 2026-01-31T13:00:00Z")
    assert logged_events(project) == []
    assert not (project.state_dir / "retrain").exists()  # nothing to decide


def test_the_latest_monitor_run_gives_its_drift_json(project: Settings, write_drift: Callable[..., Path], capsys: Any) -> None:
    code, _, err = cli(capsys, "monitor", "alert", "--from-run", "latest")
    assert code == 2
    assert err.splitlines() == [
        f"error: no succeeded run of the 'monitor' pipeline under {project.state_dir / 'runs'}",
        "hint: run the drift check first: skyops monitor run (or give DRIFT_JSON)",
    ]
    for drifted, status in ((False, RunStatus.SUCCEEDED), (True, RunStatus.SUCCEEDED), (False, RunStatus.FAILED)):
        record = new_record(new_run_id() + f"-{drifted}", "monitor", {}, {"check": "monitor"}, "monitor.yaml")
        folder = project.state_dir / "cache" / record.run_id / "outputs" / "result"
        folder.mkdir(parents=True)
        shutil.copy(write_drift(drifted=drifted), folder / "drift.json")
        record.steps["check"].status = StepStatus.DONE
        record.steps["check"].outputs = {"result": {"path": str(folder), "digest": "x"}}
        record.status = status
        record.started += {True: 2.0, False: 1.0}[drifted] + (5.0 if status is RunStatus.FAILED else 0.0)
        save_record(project.state_dir / "runs", record)
    code, out, _ = cli(capsys, "monitor", "alert", "--from-run", "latest")  # the newest that succeeded (drifted), not the failed one
    assert code == 0 and out.startswith("drift in the window")
    [event] = logged_events(project)
    assert event["detail"]["drift_file"].endswith("-True/outputs/result/drift.json")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"format": 1}, r"has the wrong shape: 'drifted' is missing; 'window' is missing"),
        ({**drift_document(), "drifted": "yes"}, r"'drifted' is a string, not true or false"),
        ({**drift_document(), "format": 2}, r"'format' is a number, not 1"),
    ],
)
def test_a_drift_result_of_another_shape_is_one_clear_error(
    project: Settings, tmp_path: Path, document: dict[str, Any], message: str, capsys: Any
) -> None:
    path = tmp_path / "drift.json"
    path.write_text(json.dumps(document))
    code, _, err = cli(capsys, "monitor", "alert", str(path))
    assert code == 2 and len(err.splitlines()) == 2
    assert err.startswith(f"error: drift result {path} ")
    assert re.search(message, err), err


def test_arguments_and_sink_settings_are_checked_before_anything_is_published(
    project: Settings, write_drift: Callable[..., Path], capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    drift = write_drift()
    code, _, err = cli(capsys, "monitor", "alert")
    assert (code, err.splitlines()[0]) == (2, "error: give either DRIFT_JSON or --from-run")
    code, _, err = cli(capsys, "monitor", "alert", str(drift), "--from-run", "latest")
    assert (code, err.splitlines()[0]) == (2, "error: give either DRIFT_JSON or --from-run")
    monkeypatch.setenv("SKYOPS_EVENT_WEBHOOK", "hooks.example.com/T000/secret")
    code, _, err = cli(capsys, "monitor", "alert", str(drift))
    assert code == 2 and err.startswith("error: SKYOPS_EVENT_WEBHOOK is not an http(s) URL") and "secret" not in err
    assert logged_events(project) == []


def test_an_alert_with_retrain_and_no_dataset_is_a_logged_refusal(project: Settings, write_drift: Callable[..., Path], capsys: Any) -> None:
    drift = write_drift()
    code, out, _ = cli(capsys, "monitor", "alert", str(drift), "--retrain")
    assert code == 0
    assert "retraining: refused (no-dataset): there is no dataset to train on" in out
    assert [e["type"] for e in logged_events(project)] == ["drift.detected", "retrain.decided"]
    alerted, decided = logged_events(project)
    assert decided["detail"]["trigger"] == {"kind": "drift.detected", "event_id": alerted["id"], "drift_file": str(drift)}
    assert (decided["detail"]["decision"], decided["detail"]["rule"]) == ("refused", "no-dataset")
