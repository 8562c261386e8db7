"""train: YOLO11 from yaml (or local weights), offline, checkpointed, tracked in MLflow.

Checkpoints live at the contract's checkpoint path (SageMaker's /opt/ml/checkpoints, kept by the
local engine across failed attempts), so a run killed mid-training resumes at its next epoch.
The model folder receives best.pt, last.pt, results.csv, plots/ and training.json.

A SIGTERM (from `skyops run`, SageMaker or `kill`) ends the MLflow run KILLED before the process
dies of the signal; a run left RUNNING by a SIGKILL is marked KILLED when the next train starts.

Training is a governed action: the step trains as the user who started the run (SKYOPS_USER, from
the run record), checked against the project's roles file (`train` permission) before anything is
loaded; a user who may not train is refused with one line, and the refusal, like the training's
outcome, is in the audit log (skyops.registry.acting.run_governance says which file and log).
"""

from __future__ import annotations

import dataclasses
import hashlib
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepSpec, report_progress, training_channel
from skyops.pipeline.contract import CHECKPOINTS, TRAINING_MODEL
from skyops.settings import DEFAULT_EXPERIMENT
from skyops.steps import CATALOG
from skyops.training.train import TrainConfig, train_settings


@dataclass(frozen=True, kw_only=True)
class TrainStepConfig(TrainConfig):
    experiment: str = DEFAULT_EXPERIMENT  # MLflow experiment


SPEC = StepSpec(
    step_type="train",
    node_type=NodeType.INTERNAL,
    inputs=(
        Port(name="splits", kind="yolo-splits"),
        Port(name="weights", kind="model-weights", optional=True, description="a local .pt to start from"),
    ),
    outputs=(
        Port(
            name="model",
            kind="model-weights",
            description="best.pt, last.pt, results.csv, plots, training.json",
            files=("best.pt", "last.pt", "results.csv", "training.json"),
        ),
    ),
    description="train YOLO11 offline with checkpoints and MLflow tracking",
)
CONTRACT = ScriptContract(
    entry_point="skyops.steps.train",
    job_kind=JobKind.TRAINING,
    inputs={"splits": training_channel("splits"), "weights": training_channel("weights")},
    outputs={"model": TRAINING_MODEL},
    checkpoint_path=CHECKPOINTS,
    launcher="skyops.training.distributed",  # several SageMaker instances: torchrun, one writer (docs/training-scale.md)
    optional_env={
        "SKYOPS_STATE_DIR": "/tmp/skyops",
        "SKYOPS_TRACKING_URI": "",
        "SKYOPS_RUN_ID": "",
        "SKYOPS_STEP_NAME": "train",
        "SKYOPS_USER": "pipeline",
    },
)


# Shown per epoch in the log and the live display, under Ultralytics' names without their group
# ((B): box metrics). SageMaker's metric definitions (cli/sagemaker_cmd.py TRAIN_METRICS) read this line.
PROGRESS_METRICS = ("train/box_loss", "train/cls_loss", "train/dfl_loss", "metrics/mAP50(B)", "metrics/mAP50-95(B)")


def data_fingerprint(splits: Path, manifest_fingerprint: str) -> str:
    """The data a run trains on: the manifest plus the split lists (a new split is new data)."""
    digest = hashlib.sha256(manifest_fingerprint.encode())
    for name in ("train.txt", "val.txt", "test.txt"):
        if (splits / name).is_file():
            digest.update((splits / name).read_bytes())
    return digest.hexdigest()


def warm() -> None:
    """What every training imports first (~12 s of CPU): torch, Ultralytics made offline for this state folder,
    its trainer, torch._dynamo (deterministic training imports it) and MLflow's tracking store. MLflow is
    imported with polars kept out: polars starts threads at import, and a fork of a process with them can
    deadlock (MLflow then has no polars datasets, which skyops does not log; Ultralytics imports polars in
    the step itself). Runs no torch operation and opens no store: the step sets its own threads and connections."""
    import os
    import sys

    from skyops.pipeline.runtime import contract_env
    from skyops.training.ultra import import_ultralytics

    env = contract_env(CONTRACT, os.environ)  # what main() will get as `env`
    import_ultralytics(Path(env["SKYOPS_STATE_DIR"]))
    import torch._dynamo  # noqa: F401
    from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: F401

    import skyops.training.train

    if "polars" not in sys.modules:
        sys.modules["polars"] = None  # type: ignore[assignment]  # `import polars` raises ImportError
        try:
            import mlflow.store.tracking.sqlalchemy_store
            import mlflow.tracking  # noqa: F401

            import skyops.training.tracking  # noqa: F401
        finally:
            del sys.modules["polars"]


@CATALOG.step(spec=SPEC, contract=CONTRACT, config=TrainStepConfig, libraries=("ultralytics", "torch", "mlflow"), warm=warm)
def main(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: TrainStepConfig) -> None:
    from skyops.registry.acting import run_governance
    from skyops.registry.roles import Action
    from skyops.training import distributed
    from skyops.training.signals import Terminated, signals_raise

    if not distributed.current().writer:
        follow(inputs, outputs, env, args)  # a follower rank: rank 0 audits, tracks and writes
        return
    governance = run_governance(Path(env["SKYOPS_STATE_DIR"]))
    target = f"run {env['SKYOPS_RUN_ID']} step {env['SKYOPS_STEP_NAME']}"
    try:
        # Denied: PermissionDenied (one line) before anything else happens; else the outcome is audited.
        with (
            governance.action(env["SKYOPS_USER"], Action.TRAIN, target, reason=f"experiment {args.experiment}") as act,
            signals_raise(signal.SIGTERM),
        ):
            act.details["mlflow_run_id"] = train_and_track(inputs, outputs, env, args)
    except Terminated as stop:
        print(f"train: {stop}; the MLflow run ended KILLED; the next run resumes from the last checkpoint", flush=True)
        stop.die()


def follow(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: TrainStepConfig) -> None:
    """A follower rank of a distributed run: train in step with rank 0, writing nothing (no audit, no MLflow, no files)."""
    from skyops.data.layout import Manifest, private_view, write_data_yaml
    from skyops.training.train import train

    manifest = Manifest.read(inputs["splits"])
    with tempfile.TemporaryDirectory(prefix="skyops-train-") as tmp:
        view = private_view(inputs["splits"], Path(tmp) / "data")
        data_yaml = write_data_yaml(view, Path(tmp) / "data.yaml", manifest.names)
        train(
            data_yaml,
            _train_config(inputs, args),
            out_dir=outputs["model"],
            checkpoint_dir=outputs["checkpoints"],
            state_dir=Path(env["SKYOPS_STATE_DIR"]),
            data_fingerprint=data_fingerprint(inputs["splits"], manifest.fingerprint),
        )


def _train_config(inputs: dict[str, Path], args: TrainStepConfig) -> TrainConfig:
    """TrainConfig's own fields of the step config (without `experiment`), starting from the `weights` input if bound."""
    if "weights" in inputs:
        start = sorted(inputs["weights"].rglob("*.pt"))
        args = dataclasses.replace(args, weights=str(start[0])) if start else args
    return TrainConfig(**train_settings(args))


def train_and_track(inputs: dict[str, Path], outputs: dict[str, Path], env: dict[str, str], args: TrainStepConfig) -> str:
    """Train, track in MLflow, write training.json; returns the MLflow run id."""
    from skyops.data.layout import Manifest, private_view, write_data_yaml
    from skyops.pipeline.hashing import write_json_atomic
    from skyops.training.tracking import TrackingStore, run_tags
    from skyops.training.train import EpochMetrics, train

    state_dir = Path(env["SKYOPS_STATE_DIR"])
    manifest = Manifest.read(inputs["splits"])
    fingerprint = data_fingerprint(inputs["splits"], manifest.fingerprint)
    if "weights" in inputs:
        start = sorted(inputs["weights"].rglob("*.pt"))
        args = dataclasses.replace(args, weights=str(start[0])) if start else args

    def report(epoch: EpochMetrics) -> None:
        shown = {name.split("/")[-1]: epoch.metrics[name] for name in PROGRESS_METRICS if name in epoch.metrics}
        report_progress(epoch.epoch, args.epochs, unit="epoch", metrics=shown)  # a log line, and the live bar of `skyops run`
        tracker.log_epoch(epoch)

    store = TrackingStore.local(state_dir, env["SKYOPS_TRACKING_URI"])
    tags = run_tags(dataset_fingerprint=manifest.fingerprint, pipeline_run_id=env["SKYOPS_RUN_ID"], step_name=env["SKYOPS_STEP_NAME"])
    with tempfile.TemporaryDirectory(prefix="skyops-train-") as tmp, store.tracker(args.experiment, tags=tags) as tracker:
        for orphan in tracker.closed_orphans:
            print(f"MLflow run {orphan} was left RUNNING by a process that is gone; marked KILLED", flush=True)
        view = private_view(inputs["splits"], Path(tmp) / "data")
        data_yaml = write_data_yaml(view, Path(tmp) / "data.yaml", manifest.names)
        tracker.log_config(args)
        settings = _train_config(inputs, args)  # without `experiment`
        result = train(
            data_yaml,
            settings,
            out_dir=outputs["model"],
            checkpoint_dir=outputs["checkpoints"],
            state_dir=state_dir,
            on_epoch=report,
            data_fingerprint=fingerprint,
        )
        tracker.log_training(result)
    summary = {
        "mlflow_run_id": tracker.run_id,
        "tracking_uri": store.uri,
        "experiment": args.experiment,
        "names": manifest.names,
        "data_fingerprint": manifest.fingerprint,
        "epochs_completed": result.epochs_completed,
        "resumed_from_epoch": result.resumed_from_epoch,
        "final_metrics": result.final_metrics,
        "device": result.device,
        "threads": result.threads,
        "memory_format": result.memory_format,
        "seconds": round(result.seconds, 1),
        "imgsz": args.imgsz,
    }
    write_json_atomic(outputs["model"] / "training.json", summary)
    print(
        f"trained {result.epochs_completed} epochs on {result.device} ({result.threads} threads) in {result.seconds:.0f} s; MLflow run {tracker.run_id}"
    )
    return str(tracker.run_id)
