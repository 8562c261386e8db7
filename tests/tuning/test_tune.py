"""`skyops tune` end to end on tiny data: trials under one MLflow parent, pruning, the best parameters file
accepted by `skyops run -P`, a killed study resumed; bad space files refused in one line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from skyops.training.tracking import TrackingStore
from skyops.training.tune import storage_url
from tests.clirun import cli
from tests.tuning.conftest import ROOT, TINY, env_for, skyops, space_file

# 48 scenes: epochs long enough that the test sees epoch 1 end before epoch 2 does, on a busy machine too
WIDER = ("-p", "images=48", "-p", "image_size=64")
GUARD = 600  # seconds a wait for the tuner may take before the test gives up (a hang, not a speed check)


def trials_of(state: Path, study: str) -> list:
    """The study's trials; none while the tuner has not created it yet."""
    import optuna

    names = [s.study_name for s in optuna.get_all_study_summaries(storage_url(state))]
    return optuna.load_study(study_name=study, storage=storage_url(state)).get_trials(deepcopy=False) if study in names else []


def test_trials_worse_than_the_studys_best_at_an_epoch_are_pruned_under_one_parent(state: Path, tmp_path: Path) -> None:
    import optuna

    # The study already holds a trial (added with Optuna's API, as a user importing an earlier study would)
    # that reached mAP50 1.0 at epochs 1 and 2. A 64 px model trained from scratch is far below that at
    # epoch 1, so the median pruner stops every new trial there: deterministic pruning on real training.
    space = space_file(
        tmp_path,
        """
        objective: {metric: map50, direction: maximize}
        parameters:
          epochs: {type: categorical, choices: [2]}
          batch: {type: categorical, choices: [4, 8]}
        pruning: {warmup_epochs: 0}
        """,
    )
    (state / "tuning").mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name="pruning", storage=storage_url(state), direction="maximize")
    reference = {"epochs": optuna.distributions.CategoricalDistribution([2]), "batch": optuna.distributions.CategoricalDistribution([4, 8])}
    study.add_trial(
        optuna.trial.create_trial(
            params={"epochs": 2, "batch": 8}, distributions=reference, value=1.0, intermediate_values={1: 1.0, 2: 1.0}
        )
    )

    done = skyops(state, "tune", "drone-detection", "--space", str(space), "--study", "pruning", "--trials", "4", *TINY)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "study pruning: 3 trial(s) to run of 4; maximize map50"
    trial_lines = [line for line in lines if line.startswith("trial ")]
    assert [line.split(":")[0] for line in trial_lines] == [f"trial {n} pruned" for n in (1, 2, 3)], (
        done.stdout
    )  # "trial 1 pruned: batch=4, epochs=2: pruned at epoch 1 (..."
    # Pruned after their first epoch; a trial that drew the same values as an earlier one resumes that one's
    # checkpoint (same cache key) and is pruned at the first epoch it trains, epoch 2.
    assert all(re.search(r": pruned at epoch [12] \(", line) for line in trial_lines), trial_lines
    assert "ran 3 trial(s): 0 complete, 3 pruned, 0 failed" in done.stdout

    trials = trials_of(state, "pruning")
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "PRUNED", "PRUNED"]
    assert all(len(t.intermediate_values) == 1 for t in trials[1:])  # stopped at the first epoch that could be pruned
    # Each pruned pipeline run is recorded stopped (killed), not failed, and its training was not cached.
    for trial in trials[1:]:
        record = json.loads((state / "runs" / trial.user_attrs["pipeline_run_id"] / "run.json").read_text())
        assert record["status"] == "killed"
        assert record["steps"]["train"]["status"] != "done"
        assert set(record["steps"]) == {"ingest", "validate", "split", "train"}  # only train and its upstream: no evaluate, no register

    store = TrackingStore.local(state)
    parent = store.find_runs("drone-detection", filter_string="tags.`skyops.tune.study` = 'pruning'")
    assert len(parent) == 1 and parent[0].status == "FINISHED"
    children = store.client.search_runs(
        [store.client.get_experiment_by_name("drone-detection").experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent[0].run_id}'",
    )
    assert sorted(c.data.tags["skyops.tune.trial"] for c in children) == ["1", "2", "3"]
    assert {c.info.status for c in children} == {"KILLED"} and {c.data.tags["skyops.tune.state"] for c in children} == {"PRUNED"}
    artifacts = {a.path for folder in ("plots", "search-space", "best") for a in store.client.list_artifacts(parent[0].run_id, folder)}
    assert {"plots/optimization-history.png", "search-space/space.tune.yaml", "best/best-params.json"} <= artifacts
    # The best trial is still the reference: its values, with the fixed -p values, are the parameters file.
    best = json.loads((state / "tuning" / "pruning" / "best-params.json").read_text())
    assert best == {"images": 12, "image_size": 64, "epochs": 2, "batch": 8}


def test_a_study_killed_mid_trial_resumes_and_its_best_parameters_run(state: Path, tmp_path: Path) -> None:
    from skyops.pipeline.lineage import load_record

    # Pruning off (warm-up = every epoch): each trial trains its 2 epochs.
    space = space_file(
        tmp_path,
        """
        objective: {metric: map50, direction: maximize}
        parameters:
          epochs: {type: categorical, choices: [2]}
          batch: {type: categorical, choices: [4, 8]}
        pruning: {warmup_epochs: 2}
        """,
    )
    args = ["-m", "skyops", "tune", "drone-detection", "--space", str(space), "--study", "resume", "--trials", "3", *WIDER]
    child = subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env_for(state), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.time() + GUARD
        killed = None  # (trial number, pipeline run id) of the trial killed between its training's epochs 1 and 2
        while killed is None:
            assert child.poll() is None and time.time() < deadline, "the tuner ended before a training reported epoch 1 of 2"
            running = (
                [t for t in trials_of(state, "resume") if t.state.name == "RUNNING"] if (state / "tuning" / "optuna.db").is_file() else []
            )
            run_id = running[0].user_attrs.get("pipeline_run_id") if running else None
            progress = state / "runs" / str(run_id) / "logs" / "train.progress.jsonl"
            while run_id and child.poll() is None and not progress.is_file():
                time.sleep(0.05)  # this trial's first epoch is under way
            if run_id and progress.is_file() and len(progress.read_text().splitlines()) == 1:  # else too late: the next trial
                killed = (running[0].number, run_id)
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()

    done = skyops(state, "tune", "drone-detection", "--space", str(space), "--study", "resume", "--trials", "3", *WIDER)
    assert done.returncode == 0, done.stdout + done.stderr
    number = killed[0]
    assert done.stdout.splitlines()[:2] == [
        f"trial {number} was interrupted (its process was killed): marked failed, its parameters queued again",
        f"study resume: {3 - number} trial(s) to run of 3; maximize map50",
    ]
    trials = trials_of(state, "resume")
    assert trials[number].state.name == "FAIL" and trials[number].user_attrs["interrupted"] is True
    retried = trials[number + 1]
    assert retried.params == trials[number].params and retried.user_attrs["retry_of"] == number  # the interrupted point, first
    assert [t.state.name for t in trials if t.number != number] == ["COMPLETE", "COMPLETE", "COMPLETE"]
    # The retried point's training resumed from the checkpoint the killed one left after epoch 1.
    retry = load_record(state / "runs", retried.user_attrs["pipeline_run_id"])
    training = json.loads((Path(retry.steps["train"].outputs["model"]["path"]) / "training.json").read_text())
    assert training["resumed_from_epoch"] == 2
    params_file = state / "tuning" / "resume" / "best-params.json"
    assert json.loads(params_file.read_text())["epochs"] == 2

    # `skyops run -P`: the best parameters reach the run (its training is the trial's, from the cache).
    ran = skyops(state, "run", "drone-detection", "-P", str(params_file), "-p", "min_map50=1")
    record = load_record(state / "runs", "latest")
    assert ran.returncode == 1 and "stopped at gate 'quality'" in ran.stderr, ran.stdout + ran.stderr  # min_map50=1: no export
    best = json.loads(params_file.read_text())
    assert {k: record.parameters[k] for k in best} == best and record.parameters["min_map50"] == 1.0  # -p overrides the file
    assert record.steps["train"].status.value == "cached"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "objective: {metric: map50, direction: up}\nparameters: {epochs: {type: int, low: 1, high: 3}}\n",
            "objective.direction: expected",
        ),
        (
            "objective: {metric: map50}\nparameters: {lr9: {type: float, low: 0.1, high: 1}}\n",
            "parameter 'lr9': pipeline 'drone-detection'",
        ),
        ("objective: {metric: map50}\nparameters: {epochs: {type: float, low: 1, high: 3}}\n", "parameter 'epochs': a float range on an"),
    ],
)
def test_a_bad_space_file_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, expected: str) -> None:
    space = tmp_path / "bad.tune.yaml"
    space.write_text(text)
    code, out, err = cli(capsys, "tune", str(ROOT / "pipelines" / "drone-detection.yaml"), "--space", str(space))
    assert code == 2 and out == ""
    error, hint = err.splitlines()
    assert error.startswith(f"error: search space {space}: {expected}") and hint.startswith("hint: fix the file")


def test_a_value_both_tuned_and_fixed_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "tune", str(ROOT / "pipelines" / "drone-detection.yaml"), "-p", "epochs=3")
    assert code == 2
    assert err.splitlines()[0].startswith("error: -p epochs: tuned by ") and err.splitlines()[0].endswith("so not fixed as well")
