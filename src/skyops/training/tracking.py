"""MLflow tracking of training runs, on an embedded sqlite store by default.

    store = TrackingStore.local(state_dir)          # sqlite:///<state_dir>/mlflow.db
    with store.tracker("drone-detection", tags=run_tags(...)) as tracker:
        tracker.log_config(config)
        result = train(..., on_epoch=tracker.log_epoch)
        tracker.log_training(result)                # artifacts, final metrics, epochs not yet logged
    # the run ends FINISHED; FAILED when the block raised; KILLED when it was stopped
    # (KeyboardInterrupt, or `Terminated` from skyops.training.signals on SIGTERM)

A process killed outright (SIGKILL, a lost machine) cannot end its run. So every run is tagged with
its process (`skyops.pid`, `skyops.host`, `skyops.process_started`), and a tracker starting in the
same experiment marks the runs still RUNNING whose process is gone from this host KILLED, with the
tag `skyops.killed_reason` saying so. Runs of other hosts are left alone: their processes cannot be
seen from here.

Cost, measured on the 2-core dev machine: importing mlflow takes ~1.2 s; creating a new sqlite
store runs MLflow's schema migrations, ~1.5 s more (4-6 s when the cores are busy); opening an
existing one ~0.7 s (sqlalchemy and alembic imports). So the store lives in the state dir and is
created once, its creation is serialised with a file lock (concurrent migrations corrupt it), and
each process opens one MlflowClient per URI. Artifacts of a sqlite store go to `mlartifacts/`
beside the db.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import platform
import re
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import skyops
from skyops.pipeline.config import StepConfig, config_to_dict, to_argument
from skyops.training.signals import Terminated
from skyops.training.threads import openmp_spin
from skyops.training.train import EpochMetrics, TrainResult
from skyops.training.uris import local_tracking_uri as local_tracking_uri  # re-exported: callers import it from here
from skyops.training.uris import sqlite_path as sqlite_path
from skyops.training.uris import store_uri

MLFLOW_ENV = {
    "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true",  # no pip inspection when logging
    "MLFLOW_DISABLE_TELEMETRY": "true",  # MLflow 3 reports usage over the network otherwise
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}
TRACKED_LIBRARIES = ("ultralytics", "torch", "mlflow")
TAG = "skyops."  # prefix of every tag skyops sets
PID, HOST, PROCESS_STARTED, KILLED_REASON = (f"{TAG}{name}" for name in ("pid", "host", "process_started", "killed_reason"))
START_TOLERANCE = 1.0  # seconds: a live pid whose process started at another time is a reused pid
_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")  # MLflow metric names allow these only


def metric_key(name: str) -> str:
    """An Ultralytics metric name as MLflow accepts it: 'metrics/mAP50(B)' -> 'metrics/mAP50B'."""
    return _BAD_KEY_CHARS.sub("", name)


def code_version(source_hash: str = "", repo_dir: Path | None = None) -> str:
    """The git commit of the code (with '+dirty' for uncommitted changes), else 'skyops-<version>+<source_hash>'.

    Args:
        source_hash: the caller's hash of the step's source, used where there is no git checkout.
        repo_dir: a folder inside the checkout; default: the installed skyops package.
    """
    folder = repo_dir or Path(skyops.__file__).resolve().parent
    try:
        commit = _git(folder, "rev-parse", "HEAD")
        dirty = _git(folder, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return f"skyops-{skyops.__version__}" + (f"+{source_hash}" if source_hash else "")
    return commit + ("+dirty" if dirty else "")


def run_tags(
    *, dataset_fingerprint: str, pipeline_run_id: str, step_name: str, source_hash: str = "", repo_dir: Path | None = None
) -> dict[str, str]:
    """The tags of a training run: data, code, library versions, and where in a pipeline it ran."""
    tags = {
        f"{TAG}dataset_fingerprint": dataset_fingerprint,
        f"{TAG}code_version": code_version(source_hash, repo_dir),
        f"{TAG}pipeline_run_id": pipeline_run_id,
        f"{TAG}step": step_name,
        f"{TAG}version.python": platform.python_version(),
        f"{TAG}version.skyops": skyops.__version__,
    }
    for library in TRACKED_LIBRARIES:
        try:
            tags[f"{TAG}version.{library}"] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            tags[f"{TAG}version.{library}"] = "not installed"
    return tags


@dataclass(frozen=True)
class RunSummary:
    """One tracked run, as `find_runs` lists it. metrics: the latest value of each."""

    run_id: str
    name: str
    status: str  # FINISHED, FAILED, RUNNING, KILLED
    start_time: int  # ms since the epoch
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


class TrackingStore:
    """An MLflow tracking store (any URI MLflow accepts), opened lazily and once per process."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    @classmethod
    def local(cls, state_dir: Path, uri: str = "") -> TrackingStore:
        """`uri` when configured, else the embedded sqlite store of `state_dir`."""
        return cls(store_uri(state_dir, uri))

    @property
    def client(self) -> Any:
        return _client(self.uri)

    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created on first use."""
        from mlflow.exceptions import MlflowException  # heavy; mlflow is loaded by `client` anyway

        client = self.client
        found = client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(name, artifact_location=self._artifact_location()))
        except MlflowException:  # another process created it in between
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def tracker(self, experiment: str, *, tags: Mapping[str, str], run_name: str | None = None) -> Tracker:
        return Tracker(self, experiment=experiment, tags=tags, run_name=run_name)

    def find_runs(
        self,
        experiment: str,
        *,
        filter_string: str = "",
        order_by: tuple[str, ...] = ("attributes.start_time DESC",),
        max_results: int = 100,
    ) -> list[RunSummary]:
        """Runs of `experiment` (none when it does not exist), newest first by default.

        Args:
            filter_string: MLflow search syntax, e.g. "tags.`skyops.step` = 'train'".
        """
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            return []
        runs = self.client.search_runs([found.experiment_id], filter_string=filter_string, order_by=list(order_by), max_results=max_results)
        return [
            RunSummary(
                run_id=run.info.run_id,
                name=run.info.run_name or "",
                status=run.info.status,
                start_time=run.info.start_time,
                params=dict(run.data.params),
                metrics=dict(run.data.metrics),
                tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
            )
            for run in runs
        ]

    def close_orphaned_runs(self, experiment: str) -> list[str]:
        """Mark KILLED the runs of `experiment` still RUNNING whose process is gone from this host; returns their ids.

        A run is orphaned when the process that tagged it (pid and start time, on this host) no longer
        exists: it was killed outright or crashed before its tracker could end the run.
        """
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            return []
        host = socket.gethostname()
        running = self.client.search_runs(
            [found.experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST}` = '{host}'", max_results=1000
        )
        closed = []
        for run in running:
            tags = run.data.tags
            try:
                pid, started = int(tags.get(PID, "")), float(tags.get(PROCESS_STARTED, ""))
            except ValueError:
                continue  # not tagged by skyops (or edited): nothing says which process owns it
            if process_alive(pid, started):
                continue
            when = datetime.now(UTC).isoformat(timespec="seconds")
            reason = f"process {pid} on {host} ended without ending this run (killed or crashed); marked KILLED by process {os.getpid()} at {when}"
            self.client.set_tag(run.info.run_id, KILLED_REASON, reason)
            self.client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
        return closed

    def run_metrics_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of metric `key` (an Ultralytics or MLflow name) in `run_id`, by step."""
        history = self.client.get_metric_history(run_id, metric_key(key))
        return sorted((m.step, m.value) for m in history)

    def _artifact_location(self) -> str | None:
        # MLflow's default for a sqlite store is ./mlruns under the current folder; keep them beside the db.
        database = sqlite_path(self.uri)
        return None if database is None else (database.parent / "mlartifacts").as_uri()  # None: the server decides


@functools.cache
def _client(uri: str) -> Any:
    for name, value in MLFLOW_ENV.items():
        os.environ[name] = value
    from mlflow import MlflowClient  # heavy: about 1 s

    # MLflow announces its schema migrations at INFO on stderr: noise in a CLI, and in step logs.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    database = sqlite_path(uri)
    if database is None:
        return MlflowClient(tracking_uri=uri)
    # Opening a sqlite store creates or migrates its schema; two processes doing that at once break
    # the migration ("expected to match one row ... in 'alembic_version'"), so one at a time.
    from filelock import FileLock

    database.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{database}.lock"):
        return MlflowClient(tracking_uri=uri)


def process_started(pid: int | None = None) -> float:
    """When process `pid` (default: this one) started, in seconds since the epoch (psutil's create_time)."""
    import psutil  # a dependency of ultralytics too; only needed when a run starts

    return float(psutil.Process(pid).create_time())


def process_alive(pid: int, started: float) -> bool:
    """Whether the process that was `pid` at time `started` still runs on this host (a reused pid is not it)."""
    import psutil

    try:
        process = psutil.Process(pid)
        return abs(process.create_time() - started) < START_TOLERANCE and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process with that pid and start: assume it is the owner
        return True


class Tracker:
    """One MLflow run: started on `with`, ended FINISHED; FAILED when the block raises, KILLED when it is stopped.

    Starting also closes the experiment's orphaned runs (`TrackingStore.close_orphaned_runs`); their
    ids are in `closed_orphans`.
    """

    def __init__(self, store: TrackingStore, *, experiment: str, tags: Mapping[str, str], run_name: str | None = None) -> None:
        self.store = store
        self.experiment = experiment
        self.tags = dict(tags)
        self.run_name = run_name
        self.run_id = ""
        self.closed_orphans: list[str] = []
        self._logged_epochs: set[int] = set()

    def __enter__(self) -> Tracker:
        experiment_id = self.store.experiment_id(self.experiment)
        self.closed_orphans = self.store.close_orphaned_runs(self.experiment)
        owner = {PID: str(os.getpid()), HOST: socket.gethostname(), PROCESS_STARTED: f"{process_started():.3f}"}
        run = self.store.client.create_run(experiment_id, run_name=self.run_name, tags={**self.tags, **owner})
        self.run_id = run.info.run_id
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        client = self.store.client
        if exc is None:
            client.set_terminated(self.run_id, "FINISHED")
        elif isinstance(exc, Terminated | KeyboardInterrupt):  # stopped from outside: not the code's failure
            client.set_tag(self.run_id, KILLED_REASON, str(exc) if isinstance(exc, Terminated) else "stopped by SIGINT (KeyboardInterrupt)")
            client.set_terminated(self.run_id, "KILLED")
        else:
            client.set_tag(self.run_id, f"{TAG}error", f"{type(exc).__name__}: {exc}"[:5000])
            client.set_terminated(self.run_id, "FAILED")

    def log_config(self, config: StepConfig) -> None:
        """Every config field as a param (values as on the command line)."""
        from mlflow.entities import Param

        params = [Param(name, to_argument(value)) for name, value in sorted(config_to_dict(config).items())]
        self.store.client.log_batch(self.run_id, params=params)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(metric_key(k), float(v), now, step) for k, v in sorted(metrics.items())]
        self.store.client.log_batch(self.run_id, metrics=batch)

    def log_epoch(self, epoch: EpochMetrics) -> None:
        """One epoch's metrics at step = epoch (1-based). Usable as `train(..., on_epoch=tracker.log_epoch)`."""
        self.log_metrics(epoch.metrics, step=epoch.epoch)
        self._logged_epochs.add(epoch.epoch)

    def log_training(self, result: TrainResult) -> None:
        """Epochs not logged live (those before a resume), final metrics, weights, plots and results.csv."""
        for epoch in result.epochs:
            if epoch.epoch not in self._logged_epochs:
                self.log_epoch(epoch)
        if result.final_metrics:
            self.log_metrics({f"final/{k}": v for k, v in result.final_metrics.items()}, step=result.epochs_completed)
        client = self.store.client
        # The config's `threads` (0 = every core) is a param already; this is the count it meant here.
        client.log_param(self.run_id, "threads_used", str(result.threads))
        client.log_param(self.run_id, "openmp_spin", openmp_spin())  # how its OpenMP threads waited (threads.py)
        for key, value in {
            "device": result.device,
            "memory_format": result.memory_format,
            "epochs_completed": str(result.epochs_completed),
            "resumed_from_epoch": str(result.resumed_from_epoch or ""),
            "train_seconds": f"{result.seconds:.1f}",
        }.items():
            client.set_tag(self.run_id, f"{TAG}{key}", value)
        client.log_artifact(self.run_id, str(result.best_weights), "weights")
        client.log_artifact(self.run_id, str(result.last_weights), "weights")
        client.log_artifact(self.run_id, str(result.results_csv))
        for plot in result.plots:
            client.log_artifact(self.run_id, str(plot), "plots")


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True, timeout=10)
    return done.stdout.strip()
