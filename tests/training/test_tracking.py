"""MLflow tracking against a real sqlite store (one per session): runs, params, metrics, artifacts, tags."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

import skyops
from skyops.training.signals import Terminated, signals_raise
from skyops.training.tracking import TrackingStore, code_version, local_tracking_uri, metric_key, run_tags
from skyops.training.train import EpochMetrics, TrainConfig, TrainResult

MLFLOW_NAME = re.compile(r"^[/\w.\- :]*$")  # mlflow.utils.validation, non-Windows


@pytest.fixture
def finished_training(tmp_path: Path) -> TrainResult:
    """A TrainResult whose files exist (as `train` leaves them), without training."""
    out = tmp_path / "out"
    (out / "plots").mkdir(parents=True)
    for name in ("best.pt", "last.pt"):
        (out / name).write_bytes(b"weights " + name.encode())
    (out / "results.csv").write_text("epoch,metrics/mAP50(B)\n1,0.1\n2,0.2\n3,0.3\n")
    (out / "plots" / "results.png").write_bytes(b"png")
    epochs = tuple(EpochMetrics(epoch=i, metrics={"metrics/mAP50(B)": i / 10, "train/box_loss": 1 / i}) for i in (1, 2, 3))
    return TrainResult(
        best_weights=out / "best.pt",
        last_weights=out / "last.pt",
        results_csv=out / "results.csv",
        plots=(out / "plots" / "results.png",),
        epochs=epochs,
        final_metrics={"metrics/mAP50(B)": 0.35},
        epochs_completed=3,
        resumed_from_epoch=2,
        device="cpu",
        threads=2,
        seconds=12.5,
    )


def test_a_tracked_run_holds_params_metrics_tags_and_artifacts(tracking_store: TrackingStore, finished_training: TrainResult) -> None:
    tags = run_tags(dataset_fingerprint="abc123", pipeline_run_id="run-7", step_name="train", source_hash="f00d")
    with tracking_store.tracker("complete", tags=tags, run_name="train-run-7") as tracker:
        tracker.log_config(TrainConfig(epochs=3, imgsz=64))
        tracker.log_epoch(finished_training.epochs[1])  # epoch 2 live, as after a resume: 1 and 3 come from the result
        tracker.log_training(finished_training)

    (run,) = tracking_store.find_runs("complete")
    assert (run.run_id, run.name, run.status) == (tracker.run_id, "train-run-7", "FINISHED")
    assert run.params["epochs"] == "3" and run.params["imgsz"] == "64" and run.params["weights"] == ""
    assert (run.params["threads"], run.params["threads_used"]) == ("0", "2")  # the setting, and the count it meant
    assert run.params["openmp_spin"] == "300000"  # skyops.training was imported before torch (threads.prepare_openmp)
    assert run.metrics["metrics/mAP50B"] == pytest.approx(0.3) and run.metrics["final/metrics/mAP50B"] == pytest.approx(0.35)
    assert tracking_store.run_metrics_history(run.run_id, "metrics/mAP50(B)") == [(1, 0.1), (2, 0.2), (3, pytest.approx(0.3))]
    assert run.tags["skyops.dataset_fingerprint"] == "abc123"
    assert run.tags["skyops.pipeline_run_id"] == "run-7" and run.tags["skyops.step"] == "train"
    assert run.tags["skyops.resumed_from_epoch"] == "2" and run.tags["skyops.device"] == "cpu"
    assert {"skyops.version.ultralytics", "skyops.version.torch", "skyops.version.mlflow", "skyops.version.python"} <= set(run.tags)
    artifacts = {a.path for a in tracking_store.client.list_artifacts(run.run_id)}
    assert artifacts == {"weights", "plots", "results.csv"}
    assert {a.path for a in tracking_store.client.list_artifacts(run.run_id, "weights")} == {"weights/best.pt", "weights/last.pt"}


def test_artifacts_of_a_sqlite_store_live_beside_the_db(tracking_store: TrackingStore, finished_training: TrainResult) -> None:
    with tracking_store.tracker("beside", tags={}) as tracker:
        tracker.log_training(finished_training)
    database = Path(tracking_store.uri.removeprefix("sqlite:///"))
    assert (database.parent / "mlartifacts").is_dir()
    assert list((database.parent / "mlartifacts").rglob(f"{tracker.run_id}/artifacts/weights/best.pt"))


def test_a_run_that_raises_ends_failed_with_the_error(tracking_store: TrackingStore) -> None:
    with pytest.raises(ValueError, match="bad batch"), tracking_store.tracker("failing", tags={}) as tracker:
        tracker.log_epoch(EpochMetrics(epoch=1, metrics={"train/box_loss": 1.0}))
        raise ValueError("bad batch")
    (run,) = tracking_store.find_runs("failing")
    assert run.run_id == tracker.run_id
    assert run.status == "FAILED"
    assert run.tags["skyops.error"] == "ValueError: bad batch"
    assert tracking_store.run_metrics_history(run.run_id, "train/box_loss") == [(1, 1.0)]


def test_find_runs_filters_by_tag_newest_first(tracking_store: TrackingStore) -> None:
    for step in ("train", "evaluate", "train"):
        with tracking_store.tracker("filtering", tags={"skyops.step": step}):
            pass
    runs = tracking_store.find_runs("filtering", filter_string="tags.`skyops.step` = 'train'")
    assert len(runs) == 2
    assert runs[0].start_time >= runs[1].start_time
    assert tracking_store.find_runs("no-such-experiment") == []


def test_the_client_is_opened_once_per_uri(tracking_store: TrackingStore) -> None:
    assert TrackingStore(tracking_store.uri).client is tracking_store.client


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Unguarded, concurrent schema creation fails in alembic ('expected to match one row')."""
    code = f"from skyops.training.tracking import TrackingStore; print(len(TrackingStore.local({str(tmp_path)!r}).client.search_experiments()))"
    children = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err[-1500:] for _, err in outcomes]
    assert [out.strip() for out, _ in outcomes] == ["1", "1"]  # the Default experiment


def test_local_store_defaults_to_sqlite_in_the_state_dir(tmp_path: Path) -> None:
    assert TrackingStore.local(tmp_path).uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db" == local_tracking_uri(tmp_path)
    assert TrackingStore.local(tmp_path, "http://127.0.0.1:5000").uri == "http://127.0.0.1:5000"
    assert TrackingStore("http://127.0.0.1:5000")._artifact_location() is None


@given(st.text(max_size=40))
def test_metric_keys_are_always_valid_mlflow_names(name: str) -> None:
    key = metric_key(name)
    assert MLFLOW_NAME.match(key)
    assert metric_key(key) == key


def test_metric_key_keeps_ultralytics_names_readable() -> None:
    assert metric_key("metrics/mAP50-95(B)") == "metrics/mAP50-95B"
    assert metric_key("lr/pg0") == "lr/pg0"


def git(folder: Path, *args: str) -> str:
    identity = ("-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false")
    return subprocess.run(["git", *identity, "-C", str(folder), *args], check=True, capture_output=True, text=True).stdout.strip()


def test_code_version_is_the_git_commit_marked_dirty(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "step.py").write_text("x = 1\n")
    git(tmp_path, "add", "step.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    commit = git(tmp_path, "rev-parse", "HEAD")
    assert code_version("ignored", repo_dir=tmp_path) == commit
    (tmp_path / "step.py").write_text("x = 2\n")
    assert code_version("ignored", repo_dir=tmp_path) == f"{commit}+dirty"


def test_code_version_without_git_is_the_version_and_source_hash(tmp_path: Path) -> None:
    assert code_version("f00d", repo_dir=tmp_path) == f"skyops-{skyops.__version__}+f00d"
    assert code_version(repo_dir=tmp_path) == f"skyops-{skyops.__version__}"


# --- runs are never left RUNNING: a stopped process ends KILLED, a killed one is closed by the next ---


def start_holder(uri: str, experiment: str, *, handle_sigterm: bool = False) -> tuple[subprocess.Popen[str], str]:
    """A process that starts a tracked run and waits inside it; returns (process, run id)."""
    code = textwrap.dedent(f"""
        import contextlib, time
        from skyops.training.signals import Terminated, signals_raise
        from skyops.training.tracking import TrackingStore
        guard = signals_raise() if {handle_sigterm!r} else contextlib.nullcontext()
        try:
            with guard, TrackingStore({uri!r}).tracker({experiment!r}, tags={{}}) as tracker:
                print(tracker.run_id, flush=True)
                time.sleep(600)
        except Terminated as stop:
            stop.die()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    assert run_id, proc.stderr.read() if proc.stderr else ""
    return proc, run_id


def statuses(store: TrackingStore, experiment: str) -> dict[str, str]:
    return {run.run_id: run.status for run in store.find_runs(experiment)}


def test_a_run_is_tagged_with_the_process_that_owns_it(tracking_store: TrackingStore) -> None:
    with tracking_store.tracker("owned", tags={}) as tracker:
        pass
    (run,) = tracking_store.find_runs("owned")
    assert run.run_id == tracker.run_id
    assert run.tags["skyops.pid"] == str(os.getpid()) and run.tags["skyops.host"] == socket.gethostname()
    assert abs(float(run.tags["skyops.process_started"]) - psutil.Process().create_time()) < 0.01


def test_a_killed_process_leaves_a_run_that_the_next_tracker_marks_killed(tracking_store: TrackingStore) -> None:
    killed, killed_run = start_holder(tracking_store.uri, "orphans")
    alive, alive_run = start_holder(tracking_store.uri, "orphans")
    try:
        killed.kill()  # SIGKILL: no handler runs, the run stays RUNNING
        killed.wait(30)
        assert statuses(tracking_store, "orphans") == {killed_run: "RUNNING", alive_run: "RUNNING"}
        with tracking_store.tracker("orphans", tags={}) as tracker:
            assert tracker.closed_orphans == [killed_run]
        assert statuses(tracking_store, "orphans") == {killed_run: "KILLED", alive_run: "RUNNING", tracker.run_id: "FINISHED"}
        (orphan,) = [r for r in tracking_store.find_runs("orphans") if r.run_id == killed_run]
        assert re.fullmatch(
            rf"process {killed.pid} on {re.escape(socket.gethostname())} ended without ending this run \(killed or crashed\); "
            rf"marked KILLED by process {os.getpid()} at \S+",
            orphan.tags["skyops.killed_reason"],
        )
    finally:
        alive.kill()
        alive.wait(30)


def test_a_reused_pid_does_not_keep_an_orphan_alive(tracking_store: TrackingStore) -> None:
    """Our own pid, but recorded with another start time: the process that owned the run is gone."""
    client = tracking_store.client
    experiment_id = tracking_store.experiment_id("reused-pid")
    tags = {"skyops.pid": str(os.getpid()), "skyops.host": socket.gethostname(), "skyops.process_started": "1000.000"}
    run = client.create_run(experiment_id, tags=tags)
    assert tracking_store.close_orphaned_runs("reused-pid") == [run.info.run_id]
    assert statuses(tracking_store, "reused-pid") == {run.info.run_id: "KILLED"}


def test_runs_of_other_hosts_and_untagged_runs_are_left_alone(tracking_store: TrackingStore) -> None:
    client = tracking_store.client
    experiment_id = tracking_store.experiment_id("elsewhere")
    other = client.create_run(experiment_id, tags={"skyops.pid": "1", "skyops.host": "another-host", "skyops.process_started": "1.0"})
    untagged = client.create_run(experiment_id)
    assert tracking_store.close_orphaned_runs("elsewhere") == []
    assert statuses(tracking_store, "elsewhere") == {other.info.run_id: "RUNNING", untagged.info.run_id: "RUNNING"}


def test_sigterm_ends_the_run_killed_and_the_process_dies_of_the_signal(tracking_store: TrackingStore) -> None:
    proc, run_id = start_holder(tracking_store.uri, "terminated", handle_sigterm=True)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == -signal.SIGTERM
    (run,) = tracking_store.find_runs("terminated")
    assert (run.run_id, run.status, run.tags["skyops.killed_reason"]) == (run_id, "KILLED", "stopped by SIGTERM")
    assert "skyops.error" not in run.tags


def test_signals_raise_restores_the_previous_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated, match="stopped by SIGTERM"), signals_raise(signal.SIGTERM):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) is before
