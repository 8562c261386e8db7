"""Training overhead of skyops against plain `yolo train` on the same tiny run.

Anchor: the Ultralytics CLI (`.venv/bin/yolo train ...`) with the same arguments and the same offline
environment, measured in the same run. The skyops side trains through `skyops.training.train.train`
in its own process like the anchor, with MLflow tracking on (params, per-epoch metrics, artifacts)
and, to split the cost, off. Every side includes interpreter start-up and the torch import. The
MLflow sqlite store is created before timing, as in a project that already has one; its creation
cost is printed separately.

Prints medians of --repeat runs (interleaved, to spread the noise of a shared machine) of wall time
and of CPU time (user + sys of the child: steadier when other work shares the cores), and the
ratios against the anchor. Target (issue 4): wall ratio <= 1.05.

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

import numpy as np
from PIL import Image

from skyops.data.layout import IMAGES, LABELS, write_data_yaml
from skyops.training.train import TrainConfig, ultralytics_args
from skyops.training.ultra import offline_environment, prepare_offline

YOLO = Path(sys.executable).parent / "yolo"
BASE_CONFIG = TrainConfig(epochs=2, imgsz=128, batch=16, workers=0, device="cpu", seed=0)

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


def make_dataset(root: Path, *, images: int, size: int) -> Path:
    """Noise images with 1-3 coloured rectangles (2 classes) in the canonical layout; returns the data yaml."""
    rng = np.random.default_rng(0)
    colours = [(220, 30, 30), (30, 30, 220)]
    (root / IMAGES).mkdir(parents=True)
    (root / LABELS).mkdir()
    for i in range(images):
        pixels = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
        lines = []
        for _ in range(rng.integers(1, 4)):
            cls = int(rng.integers(0, 2))
            w, h = (int(v) for v in rng.integers(size // 8, size // 3, 2))
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            pixels[y : y + h, x : x + w] = colours[cls]
            lines.append(f"{cls} {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}\n")
        Image.fromarray(pixels).save(root / IMAGES / f"scene{i:03d}.png")
        (root / LABELS / f"scene{i:03d}.txt").write_text("".join(lines))
    return write_data_yaml(root, root / "data.yaml", ["red", "blue"])


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds, process start to exit
    cpu: float  # seconds of user + sys CPU in the child


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
    return timed(command, dict(os.environ))


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
    return timed([str(YOLO), "train", *(f"{k}={v}" for k, v in args.items())], env)


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

    def __init__(self, work: Path, dataset: Path, state: Path, config: TrainConfig) -> None:
        self.state = state
        settings = {k: v for k, v in vars(config).items() if k != "weights"}
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
        shutil.rmtree(Path(train.outputs["model"]["path"]).parent.parent)  # the next run trains again
        return Timing(train.seconds or 0.0, whole.cpu)


def create_store(state: Path) -> Timing:
    code = f"from skyops.training.tracking import TrackingStore; TrackingStore.local({str(state)!r}).client.search_experiments()"
    return timed([sys.executable, "-c", code], dict(os.environ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=BASE_CONFIG.epochs)
    args = parser.parse_args()
    config = dataclasses.replace(BASE_CONFIG, epochs=args.epochs)
    if not YOLO.is_file():
        raise SystemExit(f"the Ultralytics CLI is not at {YOLO}; run with the project's venv python")
    contenders: dict[str, Callable[[Path, Path, Path, TrainConfig], Timing]] = {
        "skyops train + tracking": partial(skyops_train, track=True),
        "skyops train, no tracking": partial(skyops_train, track=False),
        "yolo train (anchor)": yolo_cli_train,
    }

    with tempfile.TemporaryDirectory(prefix="skyops-bench-") as tmp:
        work = Path(tmp)
        data_yaml = make_dataset(work / "data", images=args.images, size=config.imgsz)
        state = work / "state"
        prepare_offline(state)
        store = create_store(state)
        pipeline = SkyopsRun(work, data_yaml.parent, work / "pipeline-state", config)
        data_yaml = write_data_yaml(pipeline.splits, work / "split-data.yaml", ["red", "blue"])  # every side trains on the pipeline's split
        contenders["skyops run (train step)"] = lambda *_: pipeline.run()
        times: dict[str, list[Timing]] = {name: [] for name in contenders}
        for i in range(args.repeat):
            for j, (name, run) in enumerate(contenders.items()):
                run_dir = work / f"run{i}-{j}"
                times[name].append(run(run_dir, data_yaml, state, config))
                shutil.rmtree(run_dir, ignore_errors=True)  # the pipeline keeps its work in its state dir

    wall = {name: statistics.median(t.wall for t in runs) for name, runs in times.items()}
    cpu = {name: statistics.median(t.cpu for t in runs) for name, runs in times.items()}
    anchor = "yolo train (anchor)"
    print(
        f"tiny training: {args.images} images, imgsz {config.imgsz}, {config.epochs} epochs, batch {config.batch}, {config.device}; median of {args.repeat}"
    )
    print(f"  {'':27s} {'wall s':>7s} {'ratio':>6s}  {'cpu s':>7s} {'ratio':>6s}  wall of each run")
    for name, runs in times.items():
        each = ", ".join(f"{t.wall:.1f}" for t in runs)
        print(f"  {name:27s} {wall[name]:7.2f} {wall[name] / wall[anchor]:6.3f}  {cpu[name]:7.2f} {cpu[name] / cpu[anchor]:6.3f}  {each}")
    print("  target: wall ratio <= 1.05")
    print(f"  new MLflow sqlite store: {store.wall:.2f} s wall, {store.cpu:.2f} s cpu (once per state dir; not in the runs above)")


if __name__ == "__main__":
    main()
