"""A study from start to end: the trial loop, the MLflow parent run, the plots and the best parameters file.

MLflow: one parent run per study (tag `skyops.tune.study`; its id is kept in the study's user attrs,
so a resumed study goes on under the same parent). Each trial's training run (made by the train step)
becomes its child (`mlflow.parentRunId`), tagged with the trial number and state. The parent holds the
search space file, the best parameters (as params `best.<name>` and the file), the best value, and
Optuna's optimization history and parameter importances (PNG, matplotlib).
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skyops.pipeline.hashing import write_json_atomic
from skyops.training.tracking import TAG, TrackingStore
from skyops.training.tune import TrialOutcome, TuneRequest, TuneSummary, counted, open_study, run_trial, step_summary, study_lock, up_to

if TYPE_CHECKING:
    import optuna

    from skyops.pipeline.engine import LocalEngine

STUDY_TAG, TRIAL_TAG, STATE_TAG = f"{TAG}tune.study", f"{TAG}tune.trial", f"{TAG}tune.state"
PARENT_ATTR = "mlflow_parent_run_id"


def tune(
    request: TuneRequest,
    *,
    engine: LocalEngine,
    state_dir: Path,
    store: TrackingStore,
    experiment: str,
    params_file: Path,
    on_trial: Callable[[TrialOutcome], None] = lambda _o: None,
    on_start: Callable[[int, list[int]], None] = lambda _n, _r: None,
) -> TuneSummary:
    """Run the study's missing trials; write the best parameters to `params_file` (JSON, atomically).

    `on_start(remaining, retried)` is told how many trials this call runs and which interrupted trials it retries.
    """
    with study_lock(state_dir, request.study):
        engine.warm_up(up_to(request.pipeline, request.step))  # the train step's imports, beside the stores' opening below
        study, retried = open_study(request, state_dir)
        parent = _parent_run(study, store, experiment, request)
        # ~4 s of imports for the plots at the end, here while the host still warms up the train step. Not in a
        # thread beside the trials: matplotlib's import calls ast.parse, which races with the engine's own on
        # CPython 3.11 ("AST constructor recursion depth mismatch", gh-106905).
        _import_plotting()
        remaining = max(0, request.trials - counted(study))
        on_start(remaining, retried)
        outcomes: list[TrialOutcome] = []
        deadline = None if request.timeout is None else time.monotonic() + request.timeout
        status = "KILLED"
        try:
            while len(outcomes) < remaining and (deadline is None or time.monotonic() < deadline):
                trial = study.ask()
                trial.set_user_attr("study_parent", parent)
                outcome = run_trial(engine, request, trial, state_dir)
                _tell(study, trial, outcome)
                _adopt(store, experiment, parent, request.step, outcome, engine)
                outcomes.append(outcome)
                on_trial(outcome)
            status = "FINISHED"
        finally:
            summary = _finish(study, request, store, parent, params_file, outcomes, retried)
            store.client.set_terminated(parent, status)
        return summary


def _tell(study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome) -> None:
    from optuna.trial import TrialState

    if outcome.detail:
        trial.set_user_attr("detail", outcome.detail)
    state = TrialState[outcome.state]
    study.tell(trial, outcome.value if state is TrialState.COMPLETE else None, state=state)


def _parent_run(study: optuna.Study, store: TrackingStore, experiment: str, request: TuneRequest) -> str:
    """The study's parent run: made on the study's first call, set RUNNING again on a resume."""
    client = store.client
    known = study.user_attrs.get(PARENT_ATTR)
    if known:
        try:
            client.update_run(known, status="RUNNING")
            return str(known)
        except Exception as e:  # MlflowException: the run was deleted from the store
            if "RESOURCE_DOES_NOT_EXIST" not in str(e) and "not found" not in str(e).lower():
                raise
    run = client.create_run(
        store.experiment_id(experiment),
        run_name=f"tune {request.study}",
        tags={STUDY_TAG: request.study, f"{TAG}tune.pipeline": request.pipeline.name},
    )
    parent = str(run.info.run_id)
    client.log_param(parent, "study", request.study)
    client.log_param(parent, "objective", f"{request.space.objective.direction} {request.space.objective.metric}")
    client.log_artifact(parent, str(request.space.source), "search-space")
    study.set_user_attr(PARENT_ATTR, parent)
    return parent


def _adopt(store: TrackingStore, experiment: str, parent: str, step: str, outcome: TrialOutcome, engine: LocalEngine) -> None:
    """Make the trial's training run a child of the study's run (found by its pipeline run id, or, for a
    cached training, by the run id its training.json names)."""
    from skyops.pipeline.lineage import load_record

    runs = store.find_runs(experiment, filter_string=f"tags.`{TAG}pipeline_run_id` = '{outcome.run_id}'", max_results=1)
    run_id = runs[0].run_id if runs else ""
    if not run_id:
        record = load_record(engine.state.runs, outcome.run_id)
        run_id = str(step_summary(record, step).get("mlflow_run_id", "")) if step in record.steps else ""
    if not run_id:
        return  # the run failed before its training started: nothing in MLflow to attach
    client = store.client
    client.set_tag(run_id, "mlflow.parentRunId", parent)
    client.set_tag(run_id, TRIAL_TAG, str(outcome.number))
    client.set_tag(run_id, STATE_TAG, outcome.state)


def _finish(
    study: optuna.Study,
    request: TuneRequest,
    store: TrackingStore,
    parent: str,
    params_file: Path,
    outcomes: list[TrialOutcome],
    retried: list[int],
) -> TuneSummary:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best_params: dict[str, Any] = {}
    best_number = best_value = None
    client = store.client
    if complete:
        best = study.best_trial
        best_number, best_value = best.number, best.value
        best_params = {**_typed(request), **best.params}
        write_json_atomic(params_file, best_params, sort_keys=False)
        client.log_artifact(parent, str(params_file), "best")
        client.log_metric(parent, f"best_{request.space.objective.metric}", float(best.value or 0.0))
        client.set_tag(parent, f"{TAG}tune.best_trial", str(best.number))
        for name, value in best.params.items():
            client.set_tag(parent, f"{TAG}tune.best.{name}", str(value))
    _log_plots(study, client, parent, len(complete))
    return TuneSummary(request.study, outcomes, best_number, best_value, best_params, retried)


def _typed(request: TuneRequest) -> dict[str, Any]:
    """The fixed `-p` values as the pipeline's typed values (the params file holds what a run needs to repeat the trial)."""
    declared = {p.name: p for p in request.pipeline.parameters}
    return {name: declared[name].parse(text) for name, text in request.fixed.items() if name in declared}


def _import_plotting() -> None:
    """What `_log_plots` imports: matplotlib, Optuna's plots and its importance evaluators (scikit-learn)."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot
        import optuna.importance  # noqa: F401
        from optuna.visualization import matplotlib as _plots  # noqa: F401
    except ImportError:
        return  # the study still runs its trials; `_log_plots` imports them again at the end, where the error is reported


def _log_plots(study: optuna.Study, client: Any, parent: str, complete: int) -> None:
    """Optuna's optimization history (any finished trial) and parameter importances (>= 2 complete trials)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    made: Mapping[str, Callable[[], Any]] = {"optimization-history.png": lambda: plots.plot_optimization_history(study)}
    if complete >= 2:
        made = {**made, "param-importances.png": lambda: plots.plot_param_importances(study)}
    with tempfile.TemporaryDirectory(prefix="skyops-tune-") as tmp:
        for name, draw in made.items():
            with warnings.catch_warnings():  # "experimental" notices, and "importances will be equal" on a flat study
                warnings.simplefilter("ignore")
                axes = draw()
            axes.figure.savefig(Path(tmp) / name, dpi=100, bbox_inches="tight")
            plt.close(axes.figure)
            client.log_artifact(parent, str(Path(tmp) / name), "plots")
