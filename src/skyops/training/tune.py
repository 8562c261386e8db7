"""Local hyperparameter search: Optuna trials, each a real pipeline run through the local engine.

A trial samples the search space (skyops.pipeline.search), runs the pipeline's steps up to the step
that reports the objective (`train`; its upstream data steps hit the cache) with those parameters,
and watches that step's progress file (the channel `skyops run`'s live view reads: one JSON line per
epoch from `report_progress`). Each epoch's objective value goes to `trial.report(value, epoch)`;
when Optuna's median pruner says prune, the tuner stops the run the way Ctrl-C does (SIGTERM to
itself): the engine stops the step, ends the run record `killed` and the MLflow run KILLED, and
publishes nothing, so a pruned training is never cached as finished. Its checkpoint stays, so the
same parameters sampled again resume it.

The study lives in `<state>/tuning/optuna.db` (Optuna's RDB storage on sqlite). One `skyops tune`
holds `<state>/tuning/<study>.lock` while it runs; so a trial found RUNNING by the next one was left by
a killed process: it is marked FAIL (user attr `interrupted`, not counted) and its parameters are
enqueued again, so the resumed study retries that point first (and its training resumes from its
checkpoint). `--trials N` is the study's total: a resumed study runs what is missing.

Metric names match ignoring case, a trailing `(B)` and `-` vs `_`: `map50` is Ultralytics' `mAP50(B)`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyops.errors import ConfigError, RunInterrupted
from skyops.pipeline.definition import Pipeline
from skyops.pipeline.lineage import RunRecord, RunStatus, StepStatus, new_run_id
from skyops.pipeline.search import Choice, FloatRange, IntRange, SearchSpace

if TYPE_CHECKING:
    import optuna

    from skyops.pipeline.engine import LocalEngine

INTERRUPTED = "interrupted"  # user attr of a trial whose process was killed (not counted; its params re-enqueued)
POLL_SECONDS = 0.2  # how often the progress file is read while a trial runs


@dataclass(frozen=True, kw_only=True)
class TuneRequest:
    """What to tune. `fixed` are `-p` values every trial shares; `step` reports the objective per epoch."""

    pipeline: Pipeline
    space: SearchSpace
    trials: int
    study: str
    fixed: Mapping[str, str] = field(default_factory=dict)
    step: str = "train"
    timeout: float | None = None  # seconds; no new trial starts after it
    seed: int = 0


@dataclass(frozen=True)
class TrialOutcome:
    number: int
    params: dict[str, Any]
    state: str  # COMPLETE, PRUNED or FAIL
    value: float | None
    seconds: float
    run_id: str
    detail: str = ""  # why it failed; at which epoch it was pruned


@dataclass(frozen=True)
class TuneSummary:
    study: str
    outcomes: list[TrialOutcome]  # the trials this call ran
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any]  # the trial's sampled values plus the fixed ones: a `skyops run -P` file
    retried: list[int]  # trials found interrupted and enqueued again


def storage_url(state_dir: Path) -> str:
    return f"sqlite:///{state_dir / 'tuning' / 'optuna.db'}"


def metric_name(name: str) -> str:
    """`mAP50(B)`, `metrics/mAP50(B)`, `map50` -> `map50`; `mAP50-95(B)` -> `map50_95`."""
    return re.sub(r"\(b\)$", "", name.rsplit("/", 1)[-1].strip().lower()).replace("-", "_")


def up_to(pipeline: Pipeline, step: str) -> Pipeline:
    """`pipeline` reduced to `step` and the steps upstream of it (a trial never evaluates, exports or registers)."""
    names = [s.name for s in pipeline.steps]
    if step not in names:
        raise ConfigError(f"pipeline {pipeline.name!r} has no step {step!r} to tune", hint=f"steps: {', '.join(names)}")
    keep, todo = set(), [step]
    while todo:
        current = todo.pop()
        if current not in keep:
            keep.add(current)
            todo += list(pipeline.upstream_of(current))
    gates = tuple(g for g in pipeline.gates if g.step in keep and set(g.guards) <= keep)
    return Pipeline(
        name=pipeline.name,
        steps=tuple(s for s in pipeline.steps if s.name in keep),
        parameters=pipeline.parameters,
        description=pipeline.description,
        env=pipeline.env,
        gates=gates,
        source=pipeline.source,
    )


@contextmanager
def study_lock(state_dir: Path, study: str) -> Iterator[None]:
    """One `skyops tune` per study at a time (the kernel drops the flock when its holder dies)."""
    path = state_dir / "tuning" / f"{study}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise ConfigError(
                f"study {study!r} is being tuned by {holder}", hint="wait for it to finish, or tune another study with --study NAME"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)


def open_study(request: TuneRequest, state_dir: Path) -> tuple[optuna.Study, list[int]]:
    """Create or load the study; fail interrupted trials and enqueue their parameters again."""
    import optuna  # heavy: ~0.5 s

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (state_dir / "tuning").mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(storage_url(state_dir))
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(storage)}
    seen = existing[request.study].n_trials if request.study in existing else 0
    study = optuna.create_study(
        study_name=request.study,
        storage=storage,
        direction=request.space.objective.direction,
        # Seeded, and shifted by the trials already made, so a resumed study does not repeat its first samples.
        sampler=optuna.samplers.TPESampler(seed=request.seed + seen),
        # Epochs 1..warmup are never pruned (steps are 1-based epochs); one finished trial is enough to compare with.
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=request.space.warmup_epochs + 1),
        load_if_exists=True,
    )
    wanted = (
        optuna.study.StudyDirection.MAXIMIZE if request.space.objective.direction == "maximize" else optuna.study.StudyDirection.MINIMIZE
    )
    if study.direction != wanted:
        raise ConfigError(
            f"study {request.study!r} {study.direction.name.lower()}s its objective; the search space says {request.space.objective.direction}",
            hint="name a new study with --study NAME",
        )
    retried = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        retried.append(trial.number)
    return study, retried


def counted(study: optuna.Study) -> int:
    """Trials that count toward `--trials`: finished ones, failures included, interrupted ones not."""
    from optuna.trial import TrialState

    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(1 for t in study.get_trials(deepcopy=False, states=done) if not t.user_attrs.get(INTERRUPTED))


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, dist in space.parameters.items():
        if isinstance(dist, FloatRange):
            params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, IntRange):
            params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log)
        elif isinstance(dist, Choice):
            params[name] = trial.suggest_categorical(name, list(dist.choices))
    return params


def as_param_text(value: Any) -> str:
    """A sampled value as `--param` text (`true`, `8`, `0.0123`)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class ProgressWatcher(threading.Thread):
    """Reads a step's progress file while its run goes on; reports each epoch's objective to the trial.

    When Optuna says prune (or the objective is not among the step's metrics), it sends SIGTERM to this
    process: the engine's clean stop (only the main thread's run can receive it).
    """

    def __init__(self, path: Path, metric: str, trial: optuna.Trial) -> None:
        super().__init__(name="tune-progress", daemon=True)
        self.path, self.metric, self.trial = path, metric_name(metric), trial
        self.done = threading.Event()
        self.values: dict[int, float] = {}  # epoch -> objective value
        self.pruned_at: int | None = None
        self.missing: list[str] = []  # the metrics the step reports, when the objective is not one of them
        self._offset = 0

    def run(self) -> None:
        while not self.done.wait(POLL_SECONDS):
            if self._read():
                os.kill(os.getpid(), signal.SIGTERM)
                return
        self._read()

    def _read(self) -> bool:
        """New complete lines; True when the run must stop."""
        if self.pruned_at is not None or self.missing or not self.path.is_file():
            return False
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode(errors="replace").splitlines():
            report = json.loads(line)
            metrics = {metric_name(k): float(v) for k, v in report.get("metrics", {}).items()}
            if self.metric not in metrics:
                self.missing = sorted(metrics)
                return True
            epoch = int(report["done"])
            self.values[epoch] = metrics[self.metric]
            self.trial.report(metrics[self.metric], epoch)
            if self.trial.should_prune():
                self.pruned_at = epoch
                return True
        return False


def run_trial(
    engine: LocalEngine, request: TuneRequest, trial: optuna.Trial, state_dir: Path, on_run: Callable[[str], None] | None = None
) -> TrialOutcome:
    """One trial: a pipeline run up to `request.step` with the sampled parameters, watched epoch by epoch."""
    from optuna.trial import TrialState

    started = time.monotonic()
    params = suggest(trial, request.space)
    overrides = {**request.fixed, **{k: as_param_text(v) for k, v in params.items()}}
    run_id = new_run_id()
    trial.set_user_attr("pipeline_run_id", run_id)
    if on_run:
        on_run(run_id)
    watcher = ProgressWatcher(
        state_dir / "runs" / run_id / "logs" / f"{request.step}.progress.jsonl", request.space.objective.metric, trial
    )
    previous = _late_stop_guard(watcher)
    watcher.start()
    try:
        record = engine.run(up_to(request.pipeline, request.step), overrides, run_id=run_id)
    except RunInterrupted:
        if watcher.pruned_at is None and not watcher.missing:
            raise  # the user stopped it: the trial stays RUNNING, and the next `skyops tune` retries it
        record = None
    finally:
        watcher.done.set()
        watcher.join()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

    def outcome(state: TrialState, value: float | None, detail: str = "") -> TrialOutcome:
        return TrialOutcome(trial.number, params, state.name, value, time.monotonic() - started, run_id, detail)

    if watcher.missing:
        raise ConfigError(
            f"step {request.step!r} reports no metric {request.space.objective.metric!r} (it reports: {', '.join(watcher.missing)})",
            hint=f"set objective.metric in {request.space.source} to one of them",
        )
    if watcher.pruned_at is not None:
        return outcome(TrialState.PRUNED, watcher.values[watcher.pruned_at], f"pruned at epoch {watcher.pruned_at}")
    assert record is not None
    if record.status is not RunStatus.SUCCEEDED:
        failed = [s for s in record.steps.values() if s.status is StepStatus.FAILED]
        why = "; ".join(f"{s.name}: {s.error or f'exit code {s.exit_code}, log {s.log}'}" for s in failed) or str(record.status)
        return outcome(TrialState.FAIL, None, f"run {run_id} {record.status}: {why}")
    value = final_value(record, request.step, request.space.objective.metric, watcher.values)
    if value is None:
        return outcome(TrialState.FAIL, None, f"run {run_id}: step {request.step!r} reported no {request.space.objective.metric!r}")
    return outcome(TrialState.COMPLETE, value)


def _late_stop_guard(watcher: ProgressWatcher) -> Any:
    """Around a trial's run: a prune request whose SIGTERM lands after the run ended (it finished its last
    epoch meanwhile) is dropped; any other SIGTERM stops the tuner as usual. Returns the handler to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(number: int, _frame: object) -> None:
        if watcher.pruned_at is None and not watcher.missing:
            name = signal.Signals(number).name
            raise RunInterrupted(
                f"skyops tune was stopped by {name}", signal_number=number, hint="run the same command again to resume the study"
            )

    return signal.signal(signal.SIGTERM, handler)


def final_value(record: RunRecord, step: str, metric: str, epochs: Mapping[int, float]) -> float | None:
    """The trial's value: the validation of the kept (best) weights from the step's training.json, else the last epoch's.

    A cached step reports no epochs; its training.json says what it reached.
    """
    summary = step_summary(record, step)
    final = {metric_name(k): float(v) for k, v in summary.get("final_metrics", {}).items()}
    if metric_name(metric) in final:
        return final[metric_name(metric)]
    return epochs[max(epochs)] if epochs else None


def step_summary(record: RunRecord, step: str) -> dict[str, Any]:
    """The step's training.json (mlflow_run_id, final_metrics, ...), or {} when it wrote none."""
    for output in record.steps[step].outputs.values():
        path = Path(str(output.get("path", ""))) / "training.json"
        if path.is_file():
            data = json.loads(path.read_text())
            return data if isinstance(data, dict) else {}
    return {}
