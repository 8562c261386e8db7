"""Overhead of `skyops tune` against a plain Optuna script calling Ultralytics, same trials, same run.

Anchor: one Python process that makes an in-memory Optuna study (TPE, the same seed, no pruning) and,
per trial, calls `ultralytics.YOLO("yolo11n.yaml").train(...)` with the same arguments the train step
gives (skyops.training.train.ultralytics_args) on a copy of the very same split, offline the same way.
Torch threads: the same on both sides. Ultralytics alone trains on `min(8, cores - 1)` threads (one on 2 cores),
the train step on every core by default (`threads: 0`, issue 15's item 0, measured by train_overhead.py); the
bench pipeline sets Ultralytics' count, so that this ratio is the tuner's overhead, not the threads' gain.
Likewise the anchor trains channels-last, as the train step does on the CPU (skyops.training.memory_format).

skyops side: `skyops tune` over a 4-step pipeline (ingest -> validate -> split -> train) whose data
steps were cached by a warm-up study, with pruning off (warm-up epochs >= epochs): every trial is a
full local pipeline run (its train step forked from the study's warm step host), tracked in MLflow as
a child of the study's run, the study in sqlite, and the plots and best parameters file at the end.

Prints medians of --repeat interleaved rounds of wall and CPU time (user + sys of the child) and
the ratio against the anchor. Target (issue 15): wall ratio <= 1.1. On a loaded machine wall times
are noisy: read the CPU column beside them, and report the load average (printed).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_overhead import ULTRALYTICS_THREADS, make_scenes  # the sibling benchmark's scenes and Ultralytics' thread count

PIPELINE = """
name: bench-tune
catalog: skyops.steps
parameters:
  lr0: {{type: float, default: 0.01}}
  batch: {{type: integer, default: 8}}
steps:
  - step: ingest
    inputs: {{source: {dataset}}}
    config: {{format: yolo}}
  - step: validate
  - step: split
    config: {{train: 0.8, val: 0.2, test: 0.0}}
  - step: train
    config: {{epochs: {epochs}, imgsz: {imgsz}, batch: "${{batch}}", lr0: "${{lr0}}", optimizer: SGD, workers: 0, threads: {threads}, device: cpu, seed: 0}}
"""
SPACE = """
objective: {{metric: map50, direction: maximize}}
parameters:
  lr0: {{type: float, low: 0.001, high: 0.05, log: true}}
  batch: {{type: categorical, choices: [8, 16]}}
pruning: {{warmup_epochs: {epochs}}}
"""
ANCHOR = """
import sys
import optuna
from ultralytics import YOLO
from skyops.training.memory_format import train_channels_last
from skyops.training.train import TrainConfig, ultralytics_args

data_yaml, work, trials, epochs, imgsz, seed = sys.argv[1:]
optuna.logging.set_verbosity(optuna.logging.WARNING)

def objective(trial):
    config = TrainConfig(epochs=int(epochs), imgsz=int(imgsz), workers=0, device="cpu", seed=0, optimizer="SGD",
                         lr0=trial.suggest_float("lr0", 0.001, 0.05, log=True), batch=trial.suggest_categorical("batch", [8, 16]))
    args = ultralytics_args(config, data_yaml, "cpu") | {"project": work, "name": f"t{trial.number}", "exist_ok": True}
    model = YOLO("yolo11n.yaml")
    train_channels_last(model)  # as the train step does on the CPU: the same training, the tuner's overhead apart
    model.train(**args)
    return float(model.trainer.metrics["metrics/mAP50(B)"])

optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=int(seed))).optimize(objective, n_trials=int(trials))
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=96)
    args = parser.parse_args()
    from skyops.data.layout import write_data_yaml
    from skyops.pipeline.lineage import load_record
    from skyops.training.ultra import offline_environment, prepare_offline

    with tempfile.TemporaryDirectory(prefix="tune-bench-") as tmp:
        work = Path(tmp)
        dataset, names = make_scenes(work / "dataset", images=args.images, size=args.imgsz)
        pipeline = work / "bench-tune.yaml"
        pipeline.write_text(PIPELINE.format(dataset=dataset, epochs=args.epochs, imgsz=args.imgsz, threads=ULTRALYTICS_THREADS))
        space = work / "space.tune.yaml"
        space.write_text(SPACE.format(epochs=args.epochs))
        state = work / "state"
        env = {**os.environ, "SKYOPS_STATE_DIR": str(state), "NO_COLOR": "1"}
        tune = [sys.executable, "-m", "skyops", "tune", str(pipeline), "--space", str(space)]
        # The warm-up publishes the data steps and creates the stores. Every study has its own seed (the warm-up's is
        # none of the rounds'): a trial drawn again by a study with the same seed would be a cached train step.
        timed([*tune, "--seed", "1000", "--study", "warm-up", "--trials", "1"], env)
        splits = Path(load_record(state / "runs", "latest").steps["split"].outputs["splits"]["path"])
        prepare_offline(state)
        anchor_env = {**os.environ, **offline_environment(state)}
        sides: dict[str, list[tuple[float, float]]] = {"plain Optuna + Ultralytics (anchor)": [], "skyops tune": []}
        for round_ in range(args.repeat):
            copy = work / f"anchor-data-{round_}"
            shutil.copytree(splits, copy)  # Ultralytics writes labels.cache beside the data: a private copy, like the step's view
            data_yaml = write_data_yaml(copy, work / f"anchor-{round_}.yaml", names)
            anchor = [sys.executable, "-c", textwrap.dedent(ANCHOR), str(data_yaml), str(work / f"anchor-{round_}")]
            sides["plain Optuna + Ultralytics (anchor)"].append(
                timed([*anchor, str(args.trials), str(args.epochs), str(args.imgsz), str(round_)], anchor_env)
            )
            before = set((state / "runs").iterdir())
            study = [*tune, "--seed", str(round_), "--study", f"round-{round_}", "--trials", str(args.trials)]
            sides["skyops tune"].append(timed(study, env))
            trained = [
                load_record(state / "runs", run.name).steps["train"].status
                for run in set((state / "runs").iterdir()) - before
                if run.is_dir() and not run.is_symlink()
            ]
            if sorted(trained) != ["done"] * args.trials:  # a cached trial would time no training
                raise SystemExit(f"round {round_}: expected {args.trials} trainings, the trials' train steps were {sorted(trained)}")
        load = os.getloadavg()
        print(
            f"{args.trials} trials x {args.epochs} epochs, {args.images} images at {args.imgsz} px, {args.repeat} round(s); load {load[0]:.1f}"
        )
        anchor_wall = statistics.median(w for w, _ in sides["plain Optuna + Ultralytics (anchor)"])
        anchor_cpu = statistics.median(c for _, c in sides["plain Optuna + Ultralytics (anchor)"])
        for name, timings in sides.items():
            wall, cpu = statistics.median(w for w, _ in timings), statistics.median(c for _, c in timings)
            print(f"{name:40s} wall {wall:7.1f} s ({wall / anchor_wall:.2f}x)   cpu {cpu:7.1f} s ({cpu / anchor_cpu:.2f}x)")
        print("target: skyops tune wall <= 1.1x the anchor")


if __name__ == "__main__":
    main()
