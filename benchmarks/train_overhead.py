"""Training speed of skyops against plain `yolo train` on the demo's data, at equal epochs and equal results.

Anchor: the Ultralytics CLI (`.venv/bin/yolo train ...`) with the same training arguments and the
same offline environment, and otherwise Ultralytics' defaults: on the CPU that is torch on
`min(8, cores - 1)` threads (one on a 2-core machine) and libgomp's own wait policy. skyops trains on
every usable core (its `threads: 0`), its OpenMP threads spinning between parallel regions
(`GOMP_SPINCOUNT`, set when skyops.training is imported; both in skyops.training.threads), with the
model's weights channels-last (skyops.training.memory_format). A `GOMP_SPINCOUNT` the user exported
reaches every side. The skyops side trains through `skyops.training.train.train`
in its own process like the anchor, with MLflow tracking on (params, per-epoch metrics, artifacts)
and, to split the cost, off. Every side includes interpreter start-up and the torch import. The
MLflow sqlite store is created before timing, as in a project that already has one; its creation
cost is printed separately. The data: synthetic aerial scenes as the demo makes them (320 images of
256 px, split 80/20 by the pipeline), workers 0. The training settings (--recipe): `demo`, the train
step's config in pipelines/drone-detection.yaml with its default parameters (batch 8, nbs 16, AdamW, a
short warm-up, no mosaic: a few epochs already learn, so "equal results" compares real models),
or `plain`, Ultralytics' defaults at batch 16 (issue 15's first measurement: one epoch, which learns
nothing at nbs 64 in so few steps).

Prints medians of --repeat runs (interleaved, to spread the noise of a shared machine) of wall time
and of CPU time (user + sys of the child: steadier when other work shares the cores), each side's
speed-up over the anchor (anchor wall / its wall), the same for the fit alone (Ultralytics' `time` column
of results.csv: first epoch's start to the last epoch's end, validation included; no start-up, no plots),
and the final validation metrics of every side
(equal results: the same seed and data give the same model up to float summation order). Target
(issue 15): speed-up >= 1.4 on the CPU. The load average is printed: on a shared machine both the
wall times and the threads' gain shrink.

`skyops run (train step)` is the same config through the pipeline (`skyops run`), timed as the train
step's wall time in the run's lineage (cached data steps excluded); its cpu column is the whole run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from skyops.data.layout import write_data_yaml
from skyops.data.synth import generate_scenes
from skyops.training.threads import OPENMP_SPIN_VARIABLE, openmp_set_by_skyops, openmp_spin, resolve_threads
from skyops.training.train import TrainConfig, train_settings, ultralytics_args
from skyops.training.ultra import offline_environment, prepare_offline

YOLO = Path(sys.executable).parent / "yolo"
ULTRALYTICS_THREADS = min(8, max(1, (os.cpu_count() or 1) - 1))  # what Ultralytics gives torch on the CPU
BASE_CONFIG = TrainConfig(epochs=1, imgsz=256, batch=16, workers=0, device="cpu", seed=0)
RESULT_COLUMNS = ("metrics/mAP50(B)", "metrics/mAP50-95(B)", "metrics/precision(B)", "metrics/recall(B)")
DEMO = Path(__file__).resolve().parents[1] / "pipelines" / "drone-detection.yaml"


def demo_recipe() -> TrainConfig:
    """The demo pipeline's train step config at its default parameters, on the CPU."""
    from skyops.pipeline.definition import load_pipeline

    pipeline = load_pipeline(str(DEMO))
    step = pipeline.resolve_configs(pipeline.defaults())["train"]
    assert isinstance(step, TrainConfig), type(step)
    return dataclasses.replace(TrainConfig(**train_settings(step)), device="cpu", workers=0)


SKYOPS_SNIPPET = """
import sys
from pathlib import Path
from skyops.pipeline.config import build_config
from skyops.training.tracking import TrackingStore, run_tags
from skyops.training.train import TrainConfig, train

data_yaml, work, state, track, *params = sys.argv[1:]
config = build_config(TrainConfig, dict(p.split("=", 1) for p in params), where="benchmark")
paths = {"out_dir": Path(work) / "out", "checkpoint_dir": Path(work) / "ckpt", "state_dir": Path(state)}
if track == "track":
    store = TrackingStore.local(state)
    with store.tracker("benchmark", tags=run_tags(dataset_fingerprint="bench", pipeline_run_id="bench", step_name="train")) as tracker:
        tracker.log_config(config)
        result = train(Path(data_yaml), config, on_epoch=tracker.log_epoch, **paths)
        tracker.log_training(result)
else:
    train(Path(data_yaml), config, **paths)
"""


def make_scenes(root: Path, *, images: int, size: int) -> tuple[Path, list[str]]:
    """The demo's synthetic aerial scenes (skyops.data.synth) in the canonical layout; returns the folder and class names."""
    manifest = generate_scenes(root, images, size=size, seed=0, workers=1)
    write_data_yaml(root, root / "data.yaml", list(manifest.names))  # what the yolo converter reads the class names from
    return root, list(manifest.names)


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds, process start to exit
    cpu: float  # seconds of user + sys CPU in the child
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)  # the last row of its results.csv (RESULT_COLUMNS)


def final_metrics(results_csv: Path) -> dict[str, float]:
    """The last epoch's validation metrics of a run (Ultralytics' results.csv)."""
    from skyops.training.train import _read_results

    rows = _read_results(results_csv)
    if not rows:
        raise SystemExit(f"no results in {results_csv}")
    # "time": Ultralytics' seconds from the start of the fit to the end of the last epoch (its validation included)
    return {name: rows[-1].metrics[name] for name in (*RESULT_COLUMNS, "time")}


def timed(command: list[str], env: dict[str, str]) -> Timing:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{command[0]} failed:\n{done.stderr[-3000:]}")
    return Timing(wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))


def skyops_train(work: Path, data_yaml: Path, state: Path, config: TrainConfig, *, track: bool) -> Timing:
    """One skyops training, with or without tracking, in its own process."""
    params = [f"{k}={v}" for k, v in vars(config).items()]
    command = [
        sys.executable,
        "-c",
        textwrap.dedent(SKYOPS_SNIPPET),
        str(data_yaml),
        str(work),
        str(state),
        "track" if track else "no",
        *params,
    ]
    timing = timed(command, dict(os.environ))
    return dataclasses.replace(timing, metrics=final_metrics(work / "out" / "results.csv"))


def yolo_cli_train(work: Path, data_yaml: Path, state: Path, config: TrainConfig) -> Timing:
    """The anchor: the same training through the Ultralytics CLI, offline the same way."""
    args = {
        **ultralytics_args(config, data_yaml, config.device),
        "model": f"yolo11{config.variant}.yaml",
        "project": str(work),
        "name": "run",
        "exist_ok": True,
    }
    env = {**os.environ, **offline_environment(state, verbose=config.verbose)}
    if openmp_set_by_skyops():  # importing skyops.training set it in this process; plain `yolo train` runs without
        env.pop(OPENMP_SPIN_VARIABLE)
    timing = timed([str(YOLO), "train", *(f"{k}={v}" for k, v in args.items())], env)
    return dataclasses.replace(timing, metrics=final_metrics(work / "run" / "results.csv"))


PIPELINE = """
name: bench-train
catalog: skyops.steps
steps:
  - step: ingest
    inputs: {{source: {dataset}}}
    config: {{format: yolo}}
  - step: validate
  - step: split
    config: {{train: 0.8, val: 0.2, test: 0.0}}
  - step: train
    config: {{{train}}}
"""


class SkyopsRun:
    """`skyops run` of ingest -> validate -> split -> train; the data steps are cached after the first run.

    Its timing is the train step's own wall time from the run's lineage (cached steps excluded, as
    the issue asks); the anchor trains on the very same split lists.
    """

    def __init__(self, work: Path, dataset: Path, state: Path, config: TrainConfig, names: list[str]) -> None:
        self.state = state
        settings = {k: v for k, v in vars(config).items() if k != "weights"}
        self.names = names
        self.yaml = work / "bench-train.yaml"
        self.yaml.write_text(
            PIPELINE.format(
                dataset=dataset,
                train=", ".join(
                    f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                    for k, v in settings.items()
                ),
            )
        )
        self.env = {**os.environ, "SKYOPS_STATE_DIR": str(state)}
        self.run()  # warm-up: publishes the data steps
        self.splits = Path(self._record().steps["split"].outputs["splits"]["path"])

    def _record(self):
        from skyops.pipeline.lineage import load_record

        return load_record(self.state / "runs", "latest")

    def run(self) -> Timing:
        whole = timed([sys.executable, "-m", "skyops", "run", str(self.yaml)], self.env)
        record = self._record()
        train = record.steps["train"]
        assert train.status == "done", f"train step {train.status}: see {train.log}"
        model = Path(train.outputs["model"]["path"])
        metrics = final_metrics(model / "results.csv")
        shutil.rmtree(model.parent.parent)  # the next run trains again
        return Timing(train.seconds or 0.0, whole.cpu, metrics)


def create_store(state: Path) -> Timing:
    code = f"from skyops.training.tracking import TrackingStore; TrackingStore.local({str(state)!r}).client.search_experiments()"
    return timed([sys.executable, "-c", code], dict(os.environ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--images", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=None, help="default: 4 with the demo recipe, 1 with plain")
    parser.add_argument("--recipe", choices=("demo", "plain"), default="demo", help="training settings (see above)")
    args = parser.parse_args()
    base = demo_recipe() if args.recipe == "demo" else BASE_CONFIG
    config = dataclasses.replace(base, epochs=args.epochs or (4 if args.recipe == "demo" else 1))
    if not YOLO.is_file():
        raise SystemExit(f"the Ultralytics CLI is not at {YOLO}; run with the project's venv python")
    contenders: dict[str, Callable[[Path, Path, Path, TrainConfig], Timing]] = {
        "skyops train + tracking": partial(skyops_train, track=True),
        "skyops train, no tracking": partial(skyops_train, track=False),
        "yolo train (anchor)": yolo_cli_train,
    }

    with tempfile.TemporaryDirectory(prefix="skyops-bench-") as tmp:
        work = Path(tmp)
        dataset, names = make_scenes(work / "data", images=args.images, size=config.imgsz)
        state = work / "state"
        prepare_offline(state)
        store = create_store(state)
        pipeline = SkyopsRun(work, dataset, work / "pipeline-state", config, names)
        data_yaml = write_data_yaml(pipeline.splits, work / "split-data.yaml", names)  # every side trains on the pipeline's split
        contenders["skyops run (train step)"] = lambda *_: pipeline.run()
        times: dict[str, list[Timing]] = {name: [] for name in contenders}
        for i in range(args.repeat):
            for j, (name, run) in enumerate(contenders.items()):
                run_dir = work / f"run{i}-{j}"
                times[name].append(run(run_dir, data_yaml, state, config))
                shutil.rmtree(run_dir, ignore_errors=True)  # the pipeline keeps its work in its state dir

    wall = {name: statistics.median(t.wall for t in runs) for name, runs in times.items()}
    cpu = {name: statistics.median(t.cpu for t in runs) for name, runs in times.items()}
    fit = {name: statistics.median(t.metrics["time"] for t in runs) for name, runs in times.items()}
    anchor = "yolo train (anchor)"
    threads = resolve_threads(config.threads)
    print(
        f"{args.recipe} recipe: {args.images} synthetic scenes, imgsz {config.imgsz}, {config.epochs} epochs, batch {config.batch}, "
        f"nbs {config.nbs}, {config.optimizer} lr0 {config.lr0}, warm-up {config.warmup_epochs}, mosaic {config.mosaic}, {config.device}; "
        f"median of {args.repeat}; skyops on {threads} torch threads (OpenMP spin {openmp_spin()}), "
        f"the anchor on Ultralytics' {ULTRALYTICS_THREADS} ({OPENMP_SPIN_VARIABLE} {'unset' if openmp_set_by_skyops() else 'as exported'}); "
        f"load average {os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} cores"
    )
    print(
        f"  {'':27s} {'wall s':>7s} {'speed-up':>8s}  {'cpu s':>7s}  {'fit s':>6s} {'speed-up':>8s}  "
        f"{'mAP50':>6s} {'mAP50-95':>8s} {'P':>6s} {'R':>6s}  wall of each run"
    )
    for name, runs in times.items():
        each = ", ".join(f"{t.wall:.1f}" for t in runs)
        m = [runs[-1].metrics[column] for column in RESULT_COLUMNS]  # the same every repeat (fixed seed)
        print(
            f"  {name:27s} {wall[name]:7.2f} {wall[anchor] / wall[name]:7.2f}x  {cpu[name]:7.2f}  "
            f"{fit[name]:6.1f} {fit[anchor] / fit[name]:7.2f}x  "
            f"{m[0]:6.3f} {m[1]:8.3f} {m[2]:6.3f} {m[3]:6.3f}  {each}"
        )
    print("  target: skyops speed-up >= 1.4x at equal epochs and equal results (metrics within noise of the anchor's)")
    print("  wall: the whole process (interpreter and torch start-up, data scan, model build, plots, final validation);")
    print("  fit: Ultralytics' own clock from the first to the end of the last epoch (each epoch's validation included)")
    print(f"  new MLflow sqlite store: {store.wall:.2f} s wall, {store.cpu:.2f} s cpu (once per state dir; not in the runs above)")


if __name__ == "__main__":
    main()
