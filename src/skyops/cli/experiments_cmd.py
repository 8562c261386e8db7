"""`skyops experiments compare|reproduce` and `skyops ui` (read-only, ui_server.py): MLflow-backed experiment tracking."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from skyops.cli.common import settings
from skyops.cli.output import stdout_console
from skyops.cli.params import FiniteRange, IntegerRange, argument
from skyops.cli.usage import SkyopsGroup

if TYPE_CHECKING:
    from skyops.registry.reproducibility import Reproduction

app = SkyopsGroup(
    "experiments", help="Compare and reproduce training runs (pipeline run ids; `skyops runs list` shows them).", no_args_is_help=True
)

METRICS = ("map50", "map50_95", "precision", "recall")
CURVE = "metrics/mAP50-95(B)"


def run_results(run_id: str) -> dict[str, Any]:
    """Lineage, training.json and evaluation.json of a pipeline run."""
    from skyops.errors import SkyopsError
    from skyops.pipeline.lineage import load_record
    from skyops.registry.records import EVALUATION, TRAINING, read_evaluation, read_training

    record = load_record(settings().state_dir / "runs", run_id)
    found: dict[str, Any] = {"record": record}
    for step in record.steps.values():
        for output in step.outputs.values():
            for name, read in ((TRAINING, read_training), (EVALUATION, read_evaluation)):
                if (Path(output["path"]) / name).is_file():
                    found[name] = read(Path(output["path"]))  # checked: a damaged record is one clear error
    if "training.json" not in found:
        raise SkyopsError(
            f"run {record.run_id} has no finished train step", hint="compare runs of a training pipeline that got past `train`"
        )
    return found


@app.command()
@argument("runs", nargs=-1, required=True, metavar="RUN", help="Pipeline run ids (or unique prefixes, or 'latest').")
@click.option("--plot", type=click.Path(path_type=Path), help="Write the per-epoch mAP50-95 curves of the runs to this PNG.")
def compare(runs: Sequence[str], plot: Path | None) -> None:
    """A table of the runs' parameters and test metrics, and their validation curves."""
    from rich.table import Table

    from skyops.training.tracking import TrackingStore

    results = [run_results(r) for r in runs]
    params = sorted({k for r in results for k in r["record"].parameters})
    differing = [p for p in params if len({json.dumps(r["record"].parameters.get(p)) for r in results}) > 1]
    table = Table("run", *differing, "epochs", *METRICS, "MLflow run")
    for r in results:
        metrics = r.get("evaluation.json", {}).get("metrics", {})
        table.add_row(
            r["record"].run_id,
            *(str(r["record"].parameters.get(p)) for p in differing),
            str(r["training.json"]["epochs_completed"]),
            *(f"{metrics[m]:.3f}" if m in metrics else "-" for m in METRICS),
            r["training.json"]["mlflow_run_id"][:12],
        )
    stdout_console().print(table)
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        store = TrackingStore.local(settings().state_dir, settings().tracking_uri)
        fig, ax = plt.subplots(figsize=(7, 4))
        for r in results:
            history = store.run_metrics_history(r["training.json"]["mlflow_run_id"], CURVE)
            ax.plot([s for s, _ in history], [v for _, v in history], marker="o", label=r["record"].run_id)
        ax.set(xlabel="epoch", ylabel="val mAP50-95", title="validation mAP50-95 per epoch")
        ax.legend()
        fig.tight_layout()
        plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(plot, dpi=100)
        print(f"curves: {plot}")


def version_run(reference: str) -> tuple[str, str, int]:
    """(pipeline run id, model, version) of `MODEL:VERSION` (a version number or an alias): the run its card names."""
    from skyops.cli.common import registry
    from skyops.errors import ConfigError

    model, _, version = reference.rpartition(":")
    found = registry(model).get(version)
    run = found.card.get("pipeline_run", "")
    if not run:
        raise ConfigError(
            f"{model} v{found.version} names no pipeline run in its model card; nothing to re-run",
            hint="reproduce a version registered by `skyops run` (its card's pipeline_run), or give the run id",
        )
    return str(run), model, found.version


def _registered(results: dict[str, Any]) -> tuple[str, int] | None:
    """(model, version) the run registered, when its register step did."""
    from skyops.registry.records import REGISTRATION, read_registration

    for step in results["record"].steps.values():
        for output in step.outputs.values():
            if (Path(output["path"]) / REGISTRATION).is_file():
                registration = read_registration(Path(output["path"]))
                if registration.get("version") is not None:
                    return str(registration["model"]), int(registration["version"])
    return None


def reproduce_run(
    run: str, tolerance: float, *, report: bool = False, as_user: str | None = None
) -> tuple[Reproduction, tuple[Path, ...], str]:
    """Re-run `run` (a run id, or MODEL:VERSION) from its recorded parameters, seed included, every step afresh;
    compare its test metrics. With `report`: reproducibility.md/.html in the re-run's record folder, attached to
    the registered version (tag + artifacts of its training run) as `as_user` (default: $SKYOPS_USER, else the
    OS user), governed and audited. Returns (comparison, report files, artifact URI).
    """
    from skyops.cli.common import actor, engine, governance, load, registry
    from skyops.errors import SkyopsError
    from skyops.pipeline.lineage import RunStatus
    from skyops.registry.reproducibility import attach, compare, recorded_inputs, write_report
    from skyops.training.tracking import TrackingStore

    model, version = "", None
    if ":" in run:
        run, model, version = version_run(run)
    original = run_results(run)
    if version is None and (registered := _registered(original)) is not None:
        model, version = registered
    record = original["record"]
    pipeline = load(record.source or record.pipeline)
    overrides = {
        k: json.dumps(v) if isinstance(v, (list, dict)) else str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in record.parameters.items()
    }
    again = engine(pipeline, use_cache=False).run(pipeline, overrides)
    if again.status is RunStatus.FAILED:
        raise SkyopsError(f"the re-run {again.run_id} failed", hint=f"see skyops runs show {again.run_id}")
    fresh = run_results(again.run_id)
    store = TrackingStore.local(settings().state_dir, settings().tracking_uri)
    reproduction = compare(
        original,
        fresh,
        tolerance=tolerance,
        inputs=recorded_inputs(original, store),
        rerun_inputs=recorded_inputs(fresh, store),
        model=model,
        version=version,
    )
    if not report:
        return reproduction, (), ""
    paths = write_report(reproduction, settings().state_dir / "runs" / again.run_id)
    uri = (
        attach(registry(model), version, reproduction, paths, governance=governance(), actor=actor(as_user)) if version is not None else ""
    )
    return reproduction, paths, uri


@app.command()
@argument("run", metavar="RUN", help="The pipeline run to reproduce, or a registered version as MODEL:VERSION (drone-detector:3).")
@click.option(
    "--tolerance", type=FiniteRange(min=0, max=1), default=0.02, help="Largest allowed absolute difference of each test metric (0-1)."
)
@click.option(
    "--report", is_flag=True, help="Write reproducibility.md/.html beside the re-run and attach them to the registered version's card."
)
@click.option("--as", "as_", help="Who attaches the report (default: $SKYOPS_USER, else the OS user): a Data Scientist or an ML Engineer.")
def reproduce(run: str, tolerance: float, report: bool, as_: str | None) -> None:
    """Re-run with the recorded parameters (seed included), training and evaluating afresh; compare metrics.

    Exit 0 when reproduced (same data, every test metric within the tolerance), 1 when not.
    """
    reproduction, paths, uri = reproduce_run(run, tolerance, report=report, as_user=as_)
    fingerprint = reproduction.inputs["data_fingerprint"]
    same_data = "data_fingerprint" not in reproduction.differing_inputs
    print(f"data fingerprint: {'same' if same_data else 'DIFFERENT'} ({fingerprint[:12]})")
    for m in reproduction.metrics:
        print(f"{m.name:10} {m.original:.4f} -> {m.reproduced:.4f}  ({m.difference:+.4f})")
    verdict = reproduction.reproduced
    print(
        f"reproduced: {'yes' if verdict else 'no'} (largest difference {reproduction.largest_difference:.4f}, "
        f"tolerance {tolerance}); new run {reproduction.rerun}"
    )
    for path in paths:
        print(f"report: {path}")
    if uri:
        print(f"attached to {reproduction.model} v{reproduction.version}: {uri} (skyops models show {reproduction.version})")
    if not verdict:
        click.get_current_context().exit(1)


@click.command("ui")
@click.option("--port", type=IntegerRange(min=1, max=65535), default=5000, help="Port on 127.0.0.1.")
def ui(port: int) -> None:
    """Open the MLflow UI, read-only, on this project's store.

    Browse experiments, runs, models and versions. Changes are refused there (HTTP 403): approve,
    reject, promote, rollback and delete go through `skyops models ...`, which checks your role and
    writes the audit log. MLflow's own server listens on no port; only this read-only one is open.
    Ctrl-C stops both.
    """
    from skyops.cli.ui_server import serve_read_only
    from skyops.training.uris import store_uri

    s = settings()
    serve_read_only(store_uri(s.state_dir, s.tracking_uri), port)
