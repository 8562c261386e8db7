"""`skyops tune`: a hyperparameter search over a pipeline's parameters, each trial a local pipeline run (docs/tuning.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from skyops.cli.common import engine, format_seconds, load, parse_params, settings
from skyops.cli.output import stdout_output
from skyops.cli.params import ExistingPath, FiniteRange, Integer, IntegerRange, argument
from skyops.settings import DEFAULT_EXPERIMENT, DEFAULT_PIPELINE


@click.command("tune")
@argument("name", default=DEFAULT_PIPELINE, metavar="PIPELINE", help="Pipeline name (pipelines/NAME.yaml) or path to a pipeline file.")
@click.option("--trials", type=IntegerRange(min=1), default=None, help="Trials the study should hold in all [default: the space's trials].")
@click.option(
    "--space", type=ExistingPath(dir_okay=False), default=None, help="Search space file [default: NAME.tune.yaml beside the pipeline]."
)
@click.option("--study", default=None, help="Study name; the same name resumes it [default: the pipeline's name].")
@click.option("--timeout", type=FiniteRange(min=0, min_open=True), default=None, help="Seconds after which no new trial starts.")
@click.option("--seed", type=Integer(), default=0, help="Seed of the TPE sampler.")
@click.option("--param", "-p", multiple=True, help="A value every trial shares: -p images=64 (repeatable).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Best parameters file [default: .skyops/tuning/STUDY/best-params.json].",
)
def tune(
    name: str,
    trials: int | None,
    space: Path | None,
    study: str | None,
    timeout: float | None,
    seed: int,
    param: Sequence[str],
    out: Path | None,
) -> None:
    """Tune a pipeline's parameters with Optuna (TPE, median pruning on the train step's per-epoch validation metric).

    Each trial runs the pipeline up to its train step (cached data steps are reused); trials are child runs of
    one MLflow run per study. A study stopped or killed resumes when the same command runs again. The best
    parameters are written as a file that `skyops run -P FILE` takes.
    """
    from skyops.errors import ConfigError
    from skyops.pipeline.search import load_search_space, search_space_path
    from skyops.training.tracking import TrackingStore
    from skyops.training.tune import TuneRequest
    from skyops.training.tune_study import tune as run_study

    pipeline = load(name)
    if space is None:
        if not pipeline.source or pipeline.source.endswith(".py"):
            raise ConfigError(f"pipeline {pipeline.name!r} has no YAML file to find a search space beside", hint="pass --space FILE")
        space = search_space_path(Path(pipeline.source))
    search = load_search_space(space, pipeline)
    fixed = parse_params(param)
    overlap = sorted(set(fixed) & set(search.parameters))
    if overlap:
        raise ConfigError(
            f"-p {', '.join(overlap)}: tuned by {space}, so not fixed as well", hint="drop the -p value, or the parameter from the space"
        )
    pipeline.resolve_parameters(fixed)  # unknown names, bad values: one clear error before any trial
    s = settings()
    study_name = study or pipeline.name
    params_file = out or s.state_dir / "tuning" / study_name / "best-params.json"
    request = TuneRequest(
        pipeline=pipeline, space=search, trials=trials or search.trials, study=study_name, fixed=fixed, timeout=timeout, seed=seed
    )
    output = stdout_output()

    def started(remaining: int, retried: list[int]) -> None:
        for number in retried:
            output.line(f"trial {number} was interrupted (its process was killed): marked failed, its parameters queued again")
        output.line(
            f"study {study_name}: {remaining} trial(s) to run of {request.trials}; {search.objective.direction} {search.objective.metric}"
        )

    def trial_line(o: object) -> None:
        from skyops.training.tune import TrialOutcome

        assert isinstance(o, TrialOutcome)
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in o.params.items())
        result = {"COMPLETE": f"{search.objective.metric} {o.value:.4f}" if o.value is not None else "", "PRUNED": o.detail}.get(
            o.state, o.detail
        )
        output.line(f"trial {o.number} {o.state.lower()}: {shown}: {result} ({format_seconds(o.seconds)}, run {o.run_id})")

    runs = engine(pipeline, keep_warm=True)  # one step host for the study: trials after the first start warm
    try:
        summary = run_study(
            request,
            engine=runs,
            state_dir=s.state_dir,
            store=TrackingStore.local(s.state_dir, s.tracking_uri),
            experiment=DEFAULT_EXPERIMENT,
            params_file=params_file,
            on_trial=trial_line,
            on_start=started,
        )
    finally:
        runs.close()
    states = [o.state for o in summary.outcomes]
    output.line(
        f"study {summary.study}: ran {len(states)} trial(s): {states.count('COMPLETE')} complete, "
        f"{states.count('PRUNED')} pruned, {states.count('FAIL')} failed"
    )
    if summary.best_number is None:
        output.line("no trial has completed yet: no best parameters")
        return
    output.line(f"best: trial {summary.best_number}, {search.objective.metric} {summary.best_value:.4f}: {summary.best_params}")
    output.line(f"best parameters: {params_file}; run them with: skyops run {name} -P {params_file}")
