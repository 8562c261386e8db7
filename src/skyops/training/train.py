"""Train YOLO11 with Ultralytics: offline, checkpointed, resumable after an interruption.

The Ultralytics run dir lives under `checkpoint_dir` (SageMaker's /opt/ml/checkpoints, synced to S3),
so a spot interruption or a crash loses at most the epoch in progress:

    <checkpoint_dir>/
      run/                    Ultralytics' save dir: weights/last.pt, weights/best.pt, results.csv, plots
      resume.pt               copy of run/weights/last.pt made after each epoch, replaced atomically
                              (Ultralytics rewrites last.pt in place: a kill mid-write leaves it torn)
      skyops-train.json       {"identity": ..., "status": "running" | "finished"}

The next call with the same identity (config minus device/workers/threads/verbose, plus the data fingerprint)
resumes an unfinished run; any other state is cleared and training starts fresh. The final weights,
results.csv and plots are copied into `out_dir`.

Under torchrun (skyops.training.distributed) every rank calls `train`; only rank 0 reads and writes
`checkpoint_dir` and `out_dir`. Rank 0's resume decision, with its checkpoint's bytes, is broadcast
to the other ranks, which resume from a private copy: every rank starts at the same epoch.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from skyops.errors import ConfigError, DataValidationError
from skyops.pipeline.config import Range, StepConfig, config_to_dict
from skyops.training import distributed
from skyops.training.device import resolve_device
from skyops.training.memory_format import CHANNELS_LAST, CONTIGUOUS, train_channels_last
from skyops.training.threads import pin_threads, resolve_threads, torch_threads
from skyops.training.ultra import import_ultralytics

log = logging.getLogger(__name__)

RUN_DIR = "run"
RESUME_CHECKPOINT = "resume.pt"
STATE_FILE = "skyops-train.json"
# Fields that may change between an interrupted run and its resume (Ultralytics allows them too):
# a spot instance may come back with another GPU count, or another machine with other cores.
NOT_IDENTITY = ("device", "workers", "threads", "verbose")
# TrainConfig fields that are skyops' own, not Ultralytics' train arguments.
NOT_ULTRALYTICS = ("variant", "weights", "device", "amp", "threads")
PLOT_SUFFIXES = (".png", ".jpg")
_DEVICE = re.compile(r"auto|cpu|\d+(,\d+)*")

Variant = Literal["n", "s", "m", "l", "x"]
Optimizer = Literal["auto", "SGD", "MuSGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp"]
Fraction = Annotated[float, Range(ge=0, le=1)]


@dataclass(frozen=True, kw_only=True)
class TrainConfig(StepConfig):
    """Settings of one training run. Augmentation values are Ultralytics' (same names, same meaning)."""

    variant: Variant = "n"  # yolo11{variant}.yaml, built from scratch when `weights` is empty
    weights: str = ""  # a local .pt to start from (never downloaded)
    epochs: Annotated[int, Range(ge=1)] = 50
    imgsz: Annotated[int, Range(ge=32)] = 640  # pixels, a multiple of 32 (the model's largest stride)
    batch: Annotated[int, Range(ge=1)] = 16
    nbs: Annotated[int, Range(ge=1)] = 64  # nominal batch: gradients accumulate over nbs / batch batches per optimizer step
    lr0: Annotated[float, Range(gt=0)] = 0.01  # ignored by optimizer 'auto', which picks its own
    optimizer: Optimizer = "auto"
    seed: int = 0
    patience: Annotated[int, Range(ge=0)] = 100  # epochs without improvement before stopping early
    workers: Annotated[int, Range(ge=0)] = 4  # dataloader processes; Ultralytics uses 0 on CPU
    threads: Annotated[int, Range(ge=0)] = 0  # torch CPU threads: 0 = every usable core (Ultralytics alone: cores - 1); threads.py
    cos_lr: bool = False  # cosine learning-rate schedule instead of linear decay to lr0 * lrf
    lrf: Annotated[float, Range(gt=0, le=1)] = 0.01  # final learning rate, as a fraction of lr0
    warmup_epochs: Annotated[float, Range(ge=0)] = 3.0  # learning rate ramped up from 0 over these epochs (0 = none)
    cache: bool = False  # keep decoded images in RAM (Ultralytics' cache='ram'; 'disk' would write .npy files beside the source images)
    mosaic: Fraction = 1.0
    close_mosaic: Annotated[int, Range(ge=0)] = 10  # last N epochs without mosaic
    fliplr: Fraction = 0.5
    flipud: Fraction = 0.5  # aerial views have no canonical "up"
    hsv_h: Fraction = 0.015
    hsv_s: Fraction = 0.7
    hsv_v: Fraction = 0.4
    degrees: Annotated[float, Range(ge=0, le=180)] = 0.0
    scale: Annotated[float, Range(ge=0, le=0.95)] = 0.5
    device: str = "auto"  # "auto", "cpu", "0", "0,1": auto takes every CUDA GPU, else the CPU (never a GPU it cannot use: device.py)
    amp: bool = True  # mixed precision on GPU; always off on CPU
    deterministic: bool = True
    verbose: bool = False  # Ultralytics' own per-batch output

    def problems(self) -> list[str]:
        found = []
        if not _DEVICE.fullmatch(self.device):
            found.append(f"device: expected 'auto', 'cpu' or GPU indices like '0' or '0,1', got {self.device!r}")
        if self.imgsz % 32:
            found.append(f"imgsz: {self.imgsz} is not a multiple of 32 (the model's largest stride); use {(self.imgsz // 32 + 1) * 32}")
        if self.weights and not self.weights.endswith(".pt"):
            found.append(f"weights: expected a local .pt file, got {self.weights!r}")
        return found


@dataclass(frozen=True)
class EpochMetrics:
    """One row of results.csv. epoch: 1-based. metrics: Ultralytics' names ('metrics/mAP50(B)', 'train/box_loss', ...)."""

    epoch: int
    metrics: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What a training run left in `out_dir`, and how it went."""

    best_weights: Path
    last_weights: Path
    results_csv: Path
    plots: tuple[Path, ...]
    epochs: tuple[EpochMetrics, ...]  # every epoch of the run, including those before a resume
    final_metrics: dict[str, float]  # validation of best.pt after training ({} when finished from a checkpoint)
    epochs_completed: int
    resumed_from_epoch: int | None  # first epoch trained by this call after a resume (1-based), else None
    device: str
    threads: int  # torch CPU threads this call trained on
    seconds: float  # wall time of this call
    memory_format: str = CONTIGUOUS  # the weights' layout while training (memory_format.py)
    writer: bool = True  # False on a follower rank of a distributed run: it published nothing, paths are rank 0's


EpochCallback = Callable[[EpochMetrics], None]


def train_settings(config: TrainConfig) -> dict[str, Any]:
    """TrainConfig's own fields of `config`: a step's subclass may add settings of its own (an experiment name)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(TrainConfig)}


def ultralytics_args(config: TrainConfig, data_yaml: Path, device: str) -> dict[str, Any]:
    """The keyword arguments of `YOLO(...).train(...)` (also valid as `yolo train key=value`)."""
    tuned = train_settings(config)
    for name in NOT_ULTRALYTICS:
        tuned.pop(name)
    return {
        **tuned,
        "cache": "ram" if config.cache else False,
        "data": str(data_yaml),
        "device": device,
        "amp": config.amp and device != "cpu",
        "pretrained": bool(config.weights),
        "plots": True,
    }


def run_identity(config: TrainConfig, data_fingerprint: str) -> str:
    """sha256 over what must not change for a checkpoint to be resumed (TrainConfig's fields, not a subclass's)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - set(NOT_IDENTITY)
    settings = {k: v for k, v in config_to_dict(config).items() if k in fields}
    return hashlib.sha256(json.dumps({"config": settings, "data": data_fingerprint}, sort_keys=True).encode()).hexdigest()


def train(
    data_yaml: Path,
    config: TrainConfig,
    *,
    out_dir: Path,
    checkpoint_dir: Path,
    state_dir: Path,
    on_epoch: EpochCallback | None = None,
    data_fingerprint: str | None = None,
) -> TrainResult:
    """Train, resuming an interrupted run of the same identity found in `checkpoint_dir`.

    Args:
        data_yaml: an Ultralytics data yaml with absolute paths (see skyops.data.layout.write_data_yaml).
        config: the run's settings.
        out_dir: receives best.pt, last.pt, results.csv, args.yaml and plots/.
        checkpoint_dir: holds the Ultralytics run dir; survives interruptions.
        state_dir: the project's state dir (Ultralytics' private settings live there).
        on_epoch: called after each epoch this call trains, with that epoch's metrics.
        data_fingerprint: identifies the data for resume decisions; default: sha256 of the data yaml.

    Raises:
        DataValidationError: the data yaml does not exist.
        ConfigError: the start weights do not exist; `device: auto` on a machine whose NVIDIA GPU torch cannot use.
    """
    started = time.perf_counter()
    data_yaml = Path(data_yaml).resolve()
    if not data_yaml.is_file():
        raise DataValidationError(f"data yaml {data_yaml} does not exist", hint="write one with skyops.data.layout.write_data_yaml")
    if config.weights and not Path(config.weights).is_file():
        raise ConfigError(
            f"weights: {config.weights} does not exist", hint="give a local .pt file, or leave weights empty to train from scratch"
        )
    import_ultralytics(state_dir, verbose=config.verbose)

    checkpoint_dir = Path(checkpoint_dir).resolve()
    run_dir = checkpoint_dir / RUN_DIR
    identity = run_identity(config, data_fingerprint or hashlib.sha256(data_yaml.read_bytes()).hexdigest())
    device = resolve_device(config.device)
    rank = distributed.current()
    threads = _rank_threads(config.threads, rank)
    memory_format = _memory_format(device, distributed_run=rank.distributed)
    with tempfile.TemporaryDirectory(prefix="skyops-rank-") as private:
        if rank.writer:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
        plan = _agreed_plan(checkpoint_dir, identity, config.epochs, rank, Path(private))
        trainer = distributed.trainer_class() if rank.distributed else None
        if not rank.writer:
            if plan.action != "finish":
                # Ultralytics' validator makes its save dir on every rank: a follower's is private.
                _train_model(plan, config, data_yaml, device, Path(private), trainer, threads, memory_format, reporter=None)
            return _follower_result(out_dir, device, threads, plan, started)
        reporter = _EpochReporter(checkpoint_dir, on_epoch)
        if plan.action == "finish":
            log.info("checkpoint %s holds the last epoch of an interrupted run; finishing it without training", plan.source)
            _finish_from_checkpoint(run_dir)
        else:
            if plan.action == "fresh":
                _clear(checkpoint_dir)
            _write_state(checkpoint_dir, identity, "running")
            if plan.action == "resume":
                _truncate_results(run_dir / "results.csv", plan.next_epoch - 1)  # rows written after the checkpoint
            _train_model(plan, config, data_yaml, device, checkpoint_dir, trainer, threads, memory_format, reporter=reporter)

    epochs = _read_results(run_dir / "results.csv")
    if plan.action != "finish":  # DDP workers do not run our callbacks: report what they trained from results.csv
        reporter.report_missing(epochs, first=plan.next_epoch)
    best, last, results, plots = publish(run_dir, Path(out_dir))
    # Only now: a crash before this point leaves resume.pt, and the next call finishes from it.
    _write_state(checkpoint_dir, identity, "finished")
    (checkpoint_dir / RESUME_CHECKPOINT).unlink(missing_ok=True)
    return TrainResult(
        best_weights=best,
        last_weights=last,
        results_csv=results,
        plots=plots,
        epochs=tuple(epochs),
        final_metrics=reporter.final_metrics,
        epochs_completed=epochs[-1].epoch if epochs else 0,
        resumed_from_epoch=plan.next_epoch if plan.action == "resume" else None,
        device=device,
        threads=threads,
        seconds=time.perf_counter() - started,
        memory_format=memory_format,
    )


def _memory_format(device: str, *, distributed_run: bool) -> str:
    """Channels-last for a CPU training in one process (memory_format.py); otherwise torch's default layout."""
    return CHANNELS_LAST if device == "cpu" and not distributed_run else CONTIGUOUS


def _train_model(
    plan: _Plan,
    config: TrainConfig,
    data_yaml: Path,
    device: str,
    checkpoint_dir: Path,
    trainer: type | None,
    threads: int,
    memory_format: str,
    *,
    reporter: _EpochReporter | None,
) -> None:
    """Run Ultralytics: fresh, or resumed from `plan.source` (the checkpoint's own args, this call's data and save dir).

    Ultralytics' save dir is `checkpoint_dir`/run; `trainer` replaces its trainer class (a distributed run).
    """
    from ultralytics import YOLO

    run_dir = checkpoint_dir / RUN_DIR
    args = ultralytics_args(config, data_yaml, device)
    if plan.action == "resume":
        log.info("resuming %s at epoch %d of %d", plan.source, plan.next_epoch, config.epochs)
        model = YOLO(str(plan.source))
        args = {"resume": True, "data": args["data"], "device": device, "workers": config.workers, "save_dir": str(run_dir)}
    else:
        model = YOLO(config.weights or f"yolo11{config.variant}.yaml")
        args |= {"project": str(checkpoint_dir), "name": RUN_DIR, "exist_ok": True}
    if reporter is not None:
        reporter.attach(model)
    if trainer is not None:
        args["trainer"] = trainer
    pin_threads(model, threads)  # Ultralytics sets cores - 1 when it picks the CPU; ours wins (threads.py)
    if memory_format == CHANNELS_LAST:
        train_channels_last(model)
    with torch_threads(threads):
        model.train(**args)


def _rank_threads(setting: int, rank: distributed.Rank) -> int:
    """torch threads for this process: `threads: 0` shares every usable core among the ranks on this machine."""
    if setting or not rank.distributed:
        return resolve_threads(setting)
    return max(1, resolve_threads(0) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def _agreed_plan(checkpoint_dir: Path, identity: str, epochs: int, rank: distributed.Rank, private: Path) -> _Plan:
    """Rank 0's plan on every rank; a follower gets the checkpoint's bytes too and resumes from its copy in `private`."""
    if not rank.distributed:
        return _plan(checkpoint_dir, identity, epochs)
    decided: tuple[_Plan, bytes | None] | None = None
    if rank.writer:
        plan = _plan(checkpoint_dir, identity, epochs)
        decided = (plan, plan.source.read_bytes() if plan.source is not None else None)
    plan, data = distributed.agree(decided, rank)  # type: ignore[misc]
    if rank.writer or data is None or plan.source is None:
        return plan
    copy = private / plan.source.name
    copy.write_bytes(data)
    return dataclasses.replace(plan, source=copy)


def _follower_result(out_dir: Path, device: str, threads: int, plan: _Plan, started: float) -> TrainResult:
    out_dir = Path(out_dir)
    return TrainResult(
        best_weights=out_dir / "best.pt",
        last_weights=out_dir / "last.pt",
        results_csv=out_dir / "results.csv",
        plots=(),
        epochs=(),
        final_metrics={},
        epochs_completed=0,
        resumed_from_epoch=plan.next_epoch if plan.action == "resume" else None,
        device=device,
        threads=threads,
        seconds=time.perf_counter() - started,
        writer=False,
    )


@dataclass(frozen=True)
class _Plan:
    action: Literal["fresh", "resume", "finish"]
    source: Path | None = None
    next_epoch: int = 1  # 1-based


def _plan(checkpoint_dir: Path, identity: str, epochs: int) -> _Plan:
    """Decide between a fresh start, a resume, and finishing a run whose last epoch was saved.

    1. No state file, another identity, or a finished run: fresh.
    2. No readable checkpoint with optimizer state: fresh (the interruption came before epoch 1 ended).
    3. The checkpoint holds the last epoch: finish (Ultralytics refuses to resume a complete run).
    4. Otherwise: resume at the epoch after the checkpoint's.
    """
    state = _read_state(checkpoint_dir)
    if state.get("identity") != identity or state.get("status") != "running":
        return _Plan("fresh")
    for source in (checkpoint_dir / RESUME_CHECKPOINT, checkpoint_dir / RUN_DIR / "weights" / "last.pt"):
        if source.is_file():
            break
    else:
        return _Plan("fresh")
    import torch  # heavy; the checkpoint holds pickled Ultralytics modules

    try:
        checkpoint = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as e:  # a torn file raises one of several pickle/zip errors
        log.warning("checkpoint %s is unreadable (%s); starting fresh", source, e)
        return _Plan("fresh")
    epoch = checkpoint.get("epoch", -1)  # 0-based, -1 once Ultralytics stripped it at the end
    if epoch < 0 or checkpoint.get("optimizer") is None:
        return _Plan("fresh")
    if epoch + 1 >= epochs:
        return _Plan("finish", source, epoch + 1)
    return _Plan("resume", source, epoch + 2)


class _EpochReporter:
    """Ultralytics callbacks: per-epoch progress, final metrics, and the atomic resume checkpoint."""

    def __init__(self, checkpoint_dir: Path, on_epoch: EpochCallback | None) -> None:
        self.checkpoint_dir = checkpoint_dir
        self.on_epoch = on_epoch
        self.reported: set[int] = set()
        self.in_loop_epoch = -1  # on_fit_epoch_end also fires for the final validation, outside the loop
        self.final_metrics: dict[str, float] = {}

    def attach(self, model: Any) -> None:
        model.add_callback("on_train_epoch_end", self._epoch_trained)
        model.add_callback("on_model_save", self._model_saved)
        model.add_callback("on_fit_epoch_end", self._epoch_done)

    def report_missing(self, epochs: Iterable[EpochMetrics], *, first: int) -> None:
        for row in epochs:
            if row.epoch >= first and row.epoch not in self.reported:
                self._report(row)

    def _epoch_trained(self, trainer: Any) -> None:
        self.in_loop_epoch = trainer.epoch

    def _model_saved(self, trainer: Any) -> None:
        tmp = self.checkpoint_dir / f".{RESUME_CHECKPOINT}.tmp"
        shutil.copyfile(trainer.last, tmp)
        tmp.replace(self.checkpoint_dir / RESUME_CHECKPOINT)

    def _epoch_done(self, trainer: Any) -> None:
        if trainer.epoch != self.in_loop_epoch:  # final validation of best.pt
            self.final_metrics = {k: float(v) for k, v in trainer.metrics.items()}
            return
        row = {**trainer.label_loss_items(trainer.tloss, prefix="train"), **trainer.metrics, **trainer.lr}
        self._report(EpochMetrics(epoch=trainer.epoch + 1, metrics={k: float(v) for k, v in row.items()}))

    def _report(self, row: EpochMetrics) -> None:
        self.reported.add(row.epoch)
        if self.on_epoch is not None:
            self.on_epoch(row)


def _finish_from_checkpoint(run_dir: Path) -> None:
    # What Ultralytics' final_eval does before validating: drop optimizer state from the weights.
    from ultralytics.utils.torch_utils import strip_optimizer

    weights = run_dir / "weights"
    if (weights / "last.pt").is_file():
        strip_optimizer(weights / "last.pt")
    if (weights / "best.pt").is_file():
        strip_optimizer(weights / "best.pt")


def _read_results(path: Path) -> list[EpochMetrics]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        EpochMetrics(epoch=int(float(row["epoch"])), metrics={k.strip(): float(v) for k, v in row.items() if k != "epoch"}) for row in rows
    ]


def _truncate_results(path: Path, epochs: int) -> None:
    """Keep the header and the first `epochs` rows (a kill between writing a row and saving loses the checkpoint)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(float(line.split(",", 1)[0])) <= epochs]
    if kept != lines:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(kept))
        tmp.replace(path)


def publish(run_dir: Path, out_dir: Path) -> tuple[Path, Path, Path, tuple[Path, ...]]:
    """Copy a finished Ultralytics run's best.pt, last.pt, results.csv, args.yaml and plots into `out_dir`.

    best.pt is never stood in for by last.pt: a model published as "best" must be the best one.

    Raises:
        DataValidationError: the run left no best.pt, last.pt or results.csv.
    """
    weights = run_dir / "weights"
    missing = [p.name for p in (weights / "best.pt", weights / "last.pt", run_dir / "results.csv") if not p.is_file()]
    if missing:
        raise DataValidationError(
            f"training left no {' or '.join(missing)} in {run_dir}; expected best.pt (saved when an epoch's validation fitness is the best so far) and last.pt",
            hint="see the Ultralytics output above for the cause: a NaN validation fitness is never 'best', so no best.pt is saved",
        )
    best, last = weights / "best.pt", weights / "last.pt"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "plots").mkdir(exist_ok=True)
    shutil.copyfile(best, out_dir / "best.pt")
    shutil.copyfile(last, out_dir / "last.pt")
    shutil.copyfile(run_dir / "results.csv", out_dir / "results.csv")
    if (run_dir / "args.yaml").is_file():
        shutil.copyfile(run_dir / "args.yaml", out_dir / "args.yaml")
    plots = []
    for plot in sorted(p for p in run_dir.iterdir() if p.suffix in PLOT_SUFFIXES):
        shutil.copyfile(plot, out_dir / "plots" / plot.name)
        plots.append(out_dir / "plots" / plot.name)
    return out_dir / "best.pt", out_dir / "last.pt", out_dir / "results.csv", tuple(plots)


def _read_state(checkpoint_dir: Path) -> dict[str, Any]:
    try:
        state = json.loads((checkpoint_dir / STATE_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(checkpoint_dir: Path, identity: str, status: str) -> None:
    path = checkpoint_dir / STATE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"identity": identity, "status": status}, indent=1))
    tmp.replace(path)


def _clear(checkpoint_dir: Path) -> None:
    """Remove a previous run's state (another config, another dataset, or already finished)."""
    if (checkpoint_dir / RUN_DIR).exists():
        log.info("clearing the previous run in %s", checkpoint_dir / RUN_DIR)
        shutil.rmtree(checkpoint_dir / RUN_DIR)
    for name in (RESUME_CHECKPOINT, STATE_FILE):
        (checkpoint_dir / name).unlink(missing_ok=True)
