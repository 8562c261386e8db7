"""Runs at once on one state folder: one execution per cache key, checkpoints owned by it."""

import json
import os
import re
import signal
import threading
from pathlib import Path

from skyops.pipeline.engine import StateDir

from .conftest import finish, records, start_run, statuses, toy, training_folders, wait_for


def test_same_key_runs_once_and_the_other_run_waits_then_reuses_it(training: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_run(training, state)
    folder = wait_for(lambda: training_folders(state).get("a"), "the first run's training")
    second = start_run(training, state, "--explain-cache")
    wait_for(lambda: any(r.steps["trainer"].status == "waiting" for r in records(state)), "the second run waiting for the lock")
    (folder / "release").touch()
    finish(first)
    second_out = finish(second)
    assert "trainer: waiting" in second_out  # printed as it happens (the live table on a terminal)
    assert re.search(r" hit [0-9a-f]{12} after waiting [\d.]+ m?s for another run$", second_out, re.M), second_out  # --explain-cache
    by_status = {str(r.steps["trainer"].status): r.steps["trainer"] for r in records(state)}
    assert sorted(by_status) == ["cached", "done"]
    waiter = by_status["cached"]
    assert waiter.waited > 0 and waiter.cache_reason.startswith("cache hit: another run executed this step while this one waited")
    weights = Path(waiter.outputs["model"]["path"], "weights.txt").read_text()
    assert weights == "a epoch 1\na epoch 2\n"  # trained once
    assert not folder.exists(), "a published execution's checkpoints are deleted"


def test_different_settings_train_at_once_in_separate_checkpoint_folders(training: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    runs = [start_run(training, state, "--param", "tag=a"), start_run(training, state, "--param", "tag=b")]
    folders = wait_for(lambda: len(training_folders(state)) == 2 and training_folders(state), "both runs training at once")
    assert isinstance(folders, dict)
    for folder in folders.values():
        (folder / "release").touch()
    for proc in runs:
        finish(proc)
    done = {r.parameters["tag"]: r.steps["trainer"] for r in records(state)}
    assert {tag: str(step.status) for tag, step in done.items()} == {"a": "done", "b": "done"}
    for tag, step in done.items():  # each model saw only its own training
        assert Path(step.outputs["model"]["path"], "weights.txt").read_text() == f"{tag} epoch 1\n{tag} epoch 2\n"
    assert done["a"].cache_key != done["b"].cache_key
    assert sorted(p.name for p in (state / "checkpoints").iterdir()) == []


def test_killed_training_keeps_its_checkpoints_and_the_next_run_resumes(make_engine, state: StateDir) -> None:
    pipeline = toy([{"step": "trainer", "config": {"tag": "r", "epochs": 3, "hold": True}}])
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("record", make_engine().run(pipeline)))
    runner.start()
    folder = wait_for(lambda: training_folders(state.root).get("r"), "training")
    assert isinstance(folder, Path)
    wait_for(lambda: (folder / "epoch").is_file() and (folder / "epoch").read_text() == "3", "three epochs")
    os.kill(int((folder / "pid").read_text()), signal.SIGKILL)
    runner.join(60)
    record = result["record"]
    assert statuses(record) == {"trainer": "failed"}
    assert folder == state.checkpoints(record.steps["trainer"].cache_key) and (folder / "log.txt").is_file(), "kept for a resume"
    (folder / "release").touch()
    record = make_engine().run(pipeline)
    model = Path(record.steps["trainer"].outputs["model"]["path"])
    assert statuses(record) == {"trainer": "done"}
    assert (model / "resumed.txt").read_text() == "resumed after epoch 3\n"
    assert (model / "weights.txt").read_text() == "r epoch 1\nr epoch 2\nr epoch 3\n"
    assert not folder.exists()


def test_lock_files_live_under_the_state_folder(make_engine, state: StateDir) -> None:
    record = make_engine().run(toy([{"step": "emit"}]))
    key = record.steps["emit"].cache_key
    assert state.lock(key).is_file() and state.lock(key).parent == state.root / "locks"
    assert json.loads((state.root / "cache" / key / "entry.json").read_text())["parts"]["step"] == "emit"
