"""The train step trains as the user who started the run, with that user's role: a user who may not train
is refused with one line before anything is loaded, and the refusal is audited."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from skyops.errors import PermissionDenied
from skyops.registry.audit import AuditLog
from skyops.registry.roles import ROLES_FILE
from skyops.steps.train.script import TrainStepConfig, main

ROOT = Path(__file__).resolve().parents[2]
ROLES = "default_role: data-scientist\nusers: {mallory: none}\n"
DENIED = "mallory (role none) may not train run {run} step train: train needs the role data-scientist or ml-engineer or admin"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with the drone-detection pipeline where mallory has the role none (anyone else: data scientist)."""
    folder = tmp_path / "project"
    (folder / "pipelines").mkdir(parents=True)
    shutil.copy(ROOT / "pipelines" / "drone-detection.yaml", folder / "pipelines")
    (folder / ROLES_FILE).write_text(ROLES)
    return folder


def test_the_train_step_refuses_a_user_without_the_train_permission(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(project))
    state = tmp_path / "state"
    env = {"SKYOPS_STATE_DIR": str(state), "SKYOPS_TRACKING_URI": "", "SKYOPS_RUN_ID": "run-7", "SKYOPS_STEP_NAME": "train"}
    outputs = {"model": tmp_path / "model", "checkpoints": tmp_path / "checkpoints"}
    with pytest.raises(PermissionDenied, match=f"^{re.escape(DENIED.format(run='run-7'))}$"):
        main({"splits": tmp_path / "no-splits"}, outputs, {**env, "SKYOPS_USER": "mallory"}, TrainStepConfig())
    assert not (state / "mlflow.db").exists()  # refused before the tracking store was opened
    (record,) = AuditLog(state / "audit.log").records()
    assert (record.actor, record.role, record.action, record.target, record.outcome) == (
        "mallory",
        "none",
        "train",
        "run run-7 step train",
        "denied",
    )


def test_a_run_by_a_user_with_the_role_none_stops_at_train(project: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state), "SKYOPS_USER": "mallory", "COLUMNS": "200"}
    env.pop("SKYOPS_PROJECT_DIR", None)  # the project is the folder the run starts in
    tiny = ["-p", "images=12", "-p", "image_size=64", "-p", "epochs=1"]
    done = subprocess.run(
        [sys.executable, "-m", "skyops", "run", "drone-detection", *tiny],
        env=env,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (record,) = [r for r in AuditLog(state / "audit.log").records() if r.action == "train"]
    assert (record.actor, record.role, record.outcome) == ("mallory", "none", "denied")
    run_id = record.target.split()[1]
    assert f"  | error: {DENIED.format(run=run_id)}\n" in done.stdout  # the step's one line, in the failure's log tail
    assert done.stderr.startswith(f"error: run {run_id} of 'drone-detection' failed at step 'train'\n")
    assert not (state / "mlflow.db").exists()  # nothing trained, nothing registered
