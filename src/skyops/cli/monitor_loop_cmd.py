"""`skyops monitor schedule|alert|retrain|label export|label import`: the loop from a drift result back to training.

`register(group)` adds these commands to the `monitor` group (cli/monitor_cmd.py). Heavy imports (numpy,
OpenCV, httpx, boto3) happen inside the commands; docs/monitoring-loop.md describes the loop.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from skyops.cli.common import parse_params, settings
from skyops.cli.params import ExistingPath, FiniteRange, IntegerRange, argument
from skyops.cli.usage import SkyopsGroup
from skyops.settings import DEFAULT_PIPELINE

if TYPE_CHECKING:
    from skyops.monitoring.datasets import DatasetStore, DatasetVersion
    from skyops.monitoring.retrain import Decision, RetrainPolicy
    from skyops.monitoring.sinks import PublishReport

DEFAULT_DATASET = "drone-detection"  # the dataset store's name, = datasets.DEFAULT_NAME (a test keeps them equal)


def _policy_options(f: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--cooldown-hours", type=FiniteRange(min=0), default=24.0, help="No run starts within this many hours of the last."
            ),
            click.option("--max-per-day", type=IntegerRange(min=1), default=2, help="At most this many runs start in any 24 hours."),
            click.option(
                "--min-new-labels", type=IntegerRange(min=0), default=50, help="Labelled images added since the last run's dataset."
            ),
            click.option("--pipeline", default=DEFAULT_PIPELINE, help="The pipeline a start runs (name or file)."),
            click.option("--param", "-p", multiple=True, help="A parameter of the started run: -p epochs=30 (repeatable)."),
            click.option("--wait", is_flag=True, help="Run the started training in the foreground and wait for it."),
        ]
    ):
        f = option(f)
    return f


dataset_name_option = click.option("--dataset-name", default=DEFAULT_DATASET, help="The dataset store under <state>/datasets/.")


@click.command()
@argument("drift", type=ExistingPath(dir_okay=False), required=False, metavar="DRIFT_JSON", help="A drift.json of the monitor pipeline.")
@click.option("--from-run", help="Read the drift.json of this monitor run instead (a run id, or latest).")
@click.option("--retrain", is_flag=True, help="When drifted, ask the retraining policy to start a run.")
@click.option("--dataset", help="What a started run trains on: latest (default), vN, or a dataset folder.")
@dataset_name_option
@_policy_options
def alert(drift: Path | None, from_run: str | None, retrain: bool, dataset: str | None, dataset_name: str, **policy: Any) -> None:
    """Publish a drift.detected event when the drift result says drifted; with --retrain, decide on retraining."""
    from skyops.errors import ConfigError
    from skyops.monitoring.alert import drift_event, find_drift_file, read_drift
    from skyops.monitoring.sinks import publisher_from_env

    s = settings()
    if (drift is None) == (from_run is None):
        raise ConfigError("give either DRIFT_JSON or --from-run", hint="e.g. skyops monitor alert --from-run latest")
    result = read_drift(drift if drift is not None else find_drift_file(s.state_dir, str(from_run)))
    print(result.summary())
    if not result.drifted:
        return
    publisher = publisher_from_env(s)  # a bad sink setting is refused here, before anything is published
    event = drift_event(result)
    _report(f"alert {event.type} {event.id}", publisher.publish([event]), publisher.log.path)
    if retrain:
        trigger = {"kind": str(event.type), "event_id": event.id, "drift_file": str(result.path)}
        _decide(trigger, dataset, dataset_name, policy)


@click.command()
@click.option("--dataset", help="What a started run trains on: latest (default), vN, or a dataset folder.")
@click.option("--reason", default="", show_default=False, help="Why (kept in the decision log).")
@dataset_name_option
@_policy_options
def retrain(dataset: str | None, reason: str, dataset_name: str, **policy: Any) -> None:
    """Ask the retraining policy to start a training run on the grown dataset (a person's request, not an alert's)."""
    from skyops.registry.roles import resolve_identity

    _decide({"kind": "manual", "actor": resolve_identity(None), "reason": reason}, dataset, dataset_name, policy)


def _decide(trigger: dict[str, Any], dataset: str | None, dataset_name: str, options: dict[str, Any]) -> None:
    from skyops.errors import StepFailed
    from skyops.monitoring.datasets import DatasetStore
    from skyops.monitoring.retrain import RetrainPolicy, RetrainTrigger
    from skyops.monitoring.sinks import publisher_from_env

    s = settings()
    policy = RetrainPolicy(
        cooldown_hours=options["cooldown_hours"], max_per_day=options["max_per_day"], min_new_labels=options["min_new_labels"]
    )
    store = DatasetStore(s.state_dir, dataset_name)
    version = store.resolve(dataset) if dataset else store.latest()
    trigger_ = RetrainTrigger(s, policy, publisher_from_env(s), pipeline=options["pipeline"], params=parse_params(options["param"]))
    decision, report = trigger_.consider(trigger, version, store, wait=options["wait"])
    _print_decision(decision, policy)
    _report(f"event retrain.decided {report.events[0].id}", report, trigger_.publisher.log.path)
    if decision.run is not None and decision.run.exit_code not in (None, 0):
        raise StepFailed(f"the retraining run ended with exit code {decision.run.exit_code}", hint=f"see its log: {decision.run.log}")


def _print_decision(decision: Decision, policy: RetrainPolicy) -> None:
    what = "start" if decision.started else f"refused ({decision.rule})"
    print(f"retraining: {what}: {decision.reason}")
    for rule, why in decision.refusals[1:]:
        print(f"  also {rule}: {why}")
    if decision.run is not None:
        print(f"  run: {' '.join(decision.run.command[1:])}")
        print(
            f"  pid {decision.run.pid}, log {decision.run.log}"
            + ("" if decision.run.exit_code is None else f", exit code {decision.run.exit_code}")
        )


def _report(what: str, report: PublishReport, log: Path) -> None:
    print(f"{what}: logged in {log}")
    for delivery in report.deliveries:
        if delivery.ok:
            print(f"  {delivery.sink}: delivered")
        else:
            print(f"warning: {delivery.line()}", file=sys.stderr)


label = SkyopsGroup(
    "label", help="The labelling loop: export the captured images most worth labelling, import their labels.", no_args_is_help=True
)


@label.command("export")
@argument("captures", type=ExistingPath(), metavar="CAPTURES", help="A capture folder (any level) or one capture file.")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="The job folder to write (must not exist, or be empty).")
@click.option("--drift", type=ExistingPath(dir_okay=False), help="A drift.json whose per-request drift contributions count in the score.")
@click.option("--count", type=IntegerRange(min=1), default=50, help="Images to pick.")
@click.option("--base", help="The dataset the labels will grow (its class names): latest (default), vN or a folder.")
@dataset_name_option
@click.option("--weights", default="0.5,0.3,0.2,0.5", help="Weights of uncertainty, drift, rarity and the diversity penalty.")
@click.option("--s3-prefix", help="Where the job folder will be uploaded (s3://bucket/prefix/): Ground Truth source-refs point there.")
@click.option("--image-url-prefix", help="Label Studio image URLs: this prefix + file name (default: its local-files URL of images/).")
def label_export(
    captures: Path,
    out: Path,
    drift: Path | None,
    count: int,
    base: str | None,
    dataset_name: str,
    weights: str,
    s3_prefix: str | None,
    image_url_prefix: str | None,
) -> None:
    """Pick the captured images most worth labelling and write a labelling job (Ground Truth and Label Studio files)."""
    from skyops.data.layout import Manifest
    from skyops.monitoring.labeljob import export_job
    from skyops.monitoring.labelling import read_candidates, read_drift_contributions, score, select

    s = settings()
    chosen = _weights(weights)
    names = Manifest.read(_base(_store(s.state_dir, dataset_name), base).path).names
    candidates, skipped = read_candidates(captures)
    contributions = read_drift_contributions(drift) if drift else {}
    picked = select(score(candidates, contributions, chosen), count, chosen)
    job = export_job(
        picked,
        out,
        names=names,
        captures=str(captures),
        drift_file=str(drift) if drift else None,
        weights=chosen,
        skipped=skipped,
        candidates=len(candidates),
        s3_prefix=s3_prefix,
        image_url_prefix=image_url_prefix,
    )
    print(f"labelling job {job.job}: {job.images} of {len(candidates)} captured images picked, in {job.path}")
    for reason, n in sorted(skipped.reasons.items()):
        print(f"  skipped {n}: {reason}")
    print(f"  Ground Truth: {job.path / 'groundtruth-input.manifest'}; Label Studio: {job.path / 'label-studio-tasks.json'}")
    print(f"then: skyops monitor label import OUTPUT.manifest --job {job.path}")


@label.command("import")
@argument(
    "labels", type=ExistingPath(), metavar="LABELS", help="The labelled result: a Ground Truth output manifest (or a folder with one)."
)
@click.option("--job", type=ExistingPath(file_okay=False), required=True, help="The job folder `label export` wrote.")
@click.option("--base", help="The dataset to grow: latest (default), vN or a dataset folder (required for the first version).")
@dataset_name_option
def label_import(labels: Path, job: Path, base: str | None, dataset_name: str) -> None:
    """Take labelled images back: a new dataset version = the base dataset + these images, with a new fingerprint."""
    from skyops.monitoring.labeljob import import_labels

    s = settings()
    store = _store(s.state_dir, dataset_name)
    parent = _base(store, base)
    version = import_labels(job, labels, store, parent)
    print(f"dataset {store.name} {version.label}: {version.images} images ({version.added} newly labelled) in {version.path}")
    print(f"  fingerprint {version.fingerprint} (was {parent.fingerprint} in {parent.label})")
    print(f"train on it: skyops monitor retrain --dataset {version.label}")


def _store(state_dir: Path, name: str) -> DatasetStore:
    from skyops.monitoring.datasets import DatasetStore

    return DatasetStore(state_dir, name)


def _base(store: DatasetStore, spec: str | None) -> DatasetVersion:
    from skyops.errors import ConfigError

    if spec:
        return store.resolve(spec)
    latest = store.latest()
    if latest is None:
        raise ConfigError(
            f"dataset {store.name!r} has no version yet, so there is no base dataset to label for",
            hint="give --base DATASET: the training dataset (e.g. the ingest step's output, or a `skyops data convert` folder)",
        )
    return latest


def _weights(text: str) -> Any:
    from skyops.errors import ConfigError
    from skyops.monitoring.labelling import Weights

    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ConfigError(
            f"--weights {text!r} is not four numbers", hint="uncertainty,drift,rarity,diversity, e.g. --weights 0.5,0.3,0.2,0.5"
        )
    return Weights(*values)


@click.command()
@click.option("--every", default="1h", help="How often: 5m, 15m, 30m, 1h, 6h, 12h, 1d, ...")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("deploy/schedule"), help="Where the files go.")
@click.option("--name", default="skyops-monitor", help="The unit and schedule name.")
@click.option("--retrain/--no-retrain", default=False, help="Let each alert ask the retraining policy (its defaults).")
@click.option("--sagemaker-pipeline-arn", help="The SageMaker monitor pipeline the EventBridge schedule starts.")
@click.option("--scheduler-role-arn", help="The IAM role EventBridge Scheduler assumes to start it.")
@click.option("--sagemaker-param", multiple=True, help="A parameter of the started SageMaker pipeline: name=value (repeatable).")
@argument("monitor_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- MONITOR_RUN_ARGS]", help="Arguments for `skyops monitor run`.")
def schedule(
    every: str,
    out: Path,
    name: str,
    retrain: bool,
    sagemaker_pipeline_arn: str | None,
    scheduler_role_arn: str | None,
    sagemaker_param: Sequence[str],
    monitor_args: Sequence[str],
) -> None:
    """Write a systemd timer + service and a cron line that run the loop locally, and an EventBridge Scheduler definition for SageMaker."""
    from skyops.errors import ConfigError
    from skyops.monitoring.schedule import Every, Job, scheduler_request, write_schedule

    s = settings()
    period = Every.parse(every)
    job = Job(name, sys.executable, s.project_dir, s.state_dir, tuple(monitor_args), ("--retrain",) if retrain else ())
    request = None
    if sagemaker_pipeline_arn or scheduler_role_arn or sagemaker_param:
        if not (sagemaker_pipeline_arn and scheduler_role_arn):
            raise ConfigError(
                "an EventBridge schedule needs both --sagemaker-pipeline-arn and --scheduler-role-arn",
                hint="or leave all --sagemaker-* options out for the local schedule only",
            )
        params = {}
        for pair in sagemaker_param:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ConfigError(f"--sagemaker-param {pair!r} is not name=value", hint="e.g. --sagemaker-param window=24h")
            params[key] = value
        request = scheduler_request(name, period, pipeline_arn=sagemaker_pipeline_arn, role_arn=scheduler_role_arn, parameters=params)
    written = write_schedule(out if out.is_absolute() else s.project_dir / out, job, period, request)
    for path in written.files:
        print(f"wrote {path}")
    if request is None:
        print("no EventBridge schedule: give --sagemaker-pipeline-arn and --scheduler-role-arn for SageMaker")
    print("install:")
    for line in written.install:
        print(f"  {line}")


def register(group: click.Group) -> None:
    """Add schedule, alert, retrain and label (export, import) to the `monitor` group."""
    for command in (schedule, alert, retrain, label):
        group.add_command(command)
