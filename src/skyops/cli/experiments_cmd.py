"""`skyops experiments compare|reproduce` and `skyops ui` (read-only, ui_server.py): MLflow-backed experiment tracking."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from skyops.cli.common import settings
from skyops.cli.output import stdout_console
from skyops.cli.params import FiniteRange, IntegerRange, argument
from skyops.cli.usage import SkyopsGroup

app = SkyopsGroup(
    "experiments", help="Compare and reproduce training runs (pipeline run ids; `skyops runs list` shows them).", no_args_is_help=True
)

METRICS = ("map50", "map50_95", "precision", "recall")
CURVE = "metrics/mAP50-95(B)"


def _run_results(run_id: str) -> dict[str, Any]:
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

    results = [_run_results(r) for r in runs]
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


@app.command()
@argument("run", metavar="RUN", help="The pipeline run to reproduce.")
@click.option(
    "--tolerance", type=FiniteRange(min=0, max=1), default=0.02, help="Largest allowed absolute difference of each test metric (0-1)."
)
def reproduce(run: str, tolerance: float) -> None:
    """Re-run with the recorded parameters (seed included), training and evaluating afresh; compare metrics."""
    from skyops.cli.common import engine, load
    from skyops.errors import SkyopsError
    from skyops.pipeline.lineage import RunStatus

    original = _run_results(run)
    record = original["record"]
    pipeline = load(record.source or record.pipeline)
    overrides = {
        k: json.dumps(v) if isinstance(v, (list, dict)) else str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in record.parameters.items()
    }
    again = engine(pipeline, use_cache=False).run(pipeline, overrides)
    if again.status is RunStatus.FAILED:
        raise SkyopsError(f"the re-run {again.run_id} failed", hint=f"see skyops runs show {again.run_id}")
    fresh = _run_results(again.run_id)
    same_data = fresh["training.json"]["data_fingerprint"] == original["training.json"]["data_fingerprint"]
    print(f"data fingerprint: {'same' if same_data else 'DIFFERENT'} ({original['training.json']['data_fingerprint'][:12]})")
    worst = 0.0
    for m in METRICS:
        a, b = original["evaluation.json"]["metrics"][m], fresh["evaluation.json"]["metrics"][m]
        worst = max(worst, abs(a - b))
        print(f"{m:10} {a:.4f} -> {b:.4f}  ({b - a:+.4f})")
    verdict = same_data and worst <= tolerance
    print(f"reproduced: {'yes' if verdict else 'no'} (largest difference {worst:.4f}, tolerance {tolerance}); new run {again.run_id}")
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
