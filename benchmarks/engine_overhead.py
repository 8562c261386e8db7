"""Framework overhead of the local engine on a 5-step trivial pipeline, on a quiet and a loaded machine.

Anchor (the floor): 5 bare `python -c` subprocesses, one after another, doing the same work as
the steps (read the previous step's small file, write the next). Measured in the same run.

Prints, as medians of --repeat runs:
  cold    every step runs (fresh state dir); per-step time vs the floor's per-step time
  cached  nothing changed; the whole `skyops run` command (process start to exit) and in-process.
          The whole command is also given in floor starts (cached / floor per step: how many bare
          interpreter starts it costs), a figure that compares across machines of different speed.
With --load, everything is measured again beside one CPU-burning process per core (started and
stopped by the benchmark): a developer's laptop is rarely idle, and a start that only looks fast
on a quiet machine is not fast.
With --baseline REV, the git revision REV (exported with `git archive` to a temp folder) is
measured in the same run as "before": its whole `skyops run`, cached and cold, interleaved with
this checkout's, so both medians come from the same machine at the same time.

Bytecode: the measured interpreters write and read `__pycache__` as a user's would; the benchmark
drops PYTHONDONTWRITEBYTECODE from their environment (a shell that sets it makes every start
compile every module again).

Targets (issue 9): cold per-step within 1.5x of the floor, quiet and loaded; a fully cached
re-run of 5 steps in <= 0.2 s as a whole process on a machine whose bare start costs 10 ms,
i.e. <= 20 floor starts.
Measured (issue 9, this 2-core machine shared with other jobs, load average 2-5; a floor step,
a bare start and a small file, 29-37 ms here, ~3x the reference; two runs of
`--load --baseline main`, medians of 7):
  cached, whole process   typer 0.29 + rich at start (before) -> click, plain output off a terminal (after)
                          quiet   712-934 ms = 19.0-31.9 floor starts -> 348-392 ms = 10.5-11.9 floor starts
                          loaded  3.0-3.5 s = 25.9-34.7 floor starts  -> 1.2-1.7 s = 12.6-14.1 floor starts
  cold, whole process     quiet   1.30-1.34 s -> 0.78-0.95 s
What is left of the cached re-run is mostly imports: the pipeline core and PyYAML (~135 ms here),
the catalog's step modules, click (~10-20 ms beside the core); the engine's own work is ~20 ms. Earlier in issue 9: a new process
no longer re-parses the steps' imports (cache.CodeMemo), imports only the command it runs
(skyops.cli.COMMANDS), and starts no fork host when the run is likely cached.

Measures the skyops that Python imports (PYTHONPATH), so two checkouts also compare with
`PYTHONPATH=<checkout>/src:<checkout> python benchmarks/engine_overhead.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import skyops
from skyops.pipeline.definition import pipeline_from_dict
from skyops.pipeline.engine import LocalEngine, StateDir

ROOT = Path(skyops.__file__).resolve().parents[2]  # the checkout measured: its src/ and its tests' toy steps
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")]))  # the engine's steps
BYTECODE_OFF = os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None  # for every child: see the docstring


def checkout_env(root: Path) -> dict[str, str]:
    """The environment a child needs to run the skyops of checkout `root` (and its tests' toy steps), and no other."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}


STEPS = [
    {"step": "emit"},
    *(
        {"name": f"double{i}", "step": "double", "inputs": {"numbers": prev}}
        for i, prev in enumerate(["emit.numbers", "double0.doubled", "double1.doubled"])
    ),
    {"step": "total", "inputs": {"values": "double2.doubled"}},
]
PIPELINE_DICT = {"name": "trivial5", "catalog": "tests.pipeline.toysteps", "steps": STEPS}

# The floor: the same file work as the steps, in bare interpreters.
FLOOR_STEP = """
import sys
src, dst = sys.argv[1], sys.argv[2]
numbers = [int(x) for x in open(src).read().split()] if src != "-" else [1, 2, 3]
open(dst, "w").write("".join(f"{n * 2}\\n" for n in numbers))
"""
BURN = "while True: pass"


def floor(work: Path) -> float:
    start = time.perf_counter()
    previous = "-"
    for i in range(5):
        target = work / f"f{i}.txt"
        subprocess.run([sys.executable, "-c", FLOOR_STEP, previous, str(target)], check=True, env=os.environ)
        previous = str(target)
    return time.perf_counter() - start


def engine_for(state: Path) -> LocalEngine:
    return LocalEngine(StateDir(state), code_roots={"skyops": ROOT / "src" / "skyops", "tests": ROOT / "tests"})


def cold(work: Path, pipeline: object, i: int) -> float:
    engine = engine_for(work / f"cold{i}")
    start = time.perf_counter()
    record = engine.run(pipeline)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    assert record.status == "succeeded", record.status
    return elapsed


def cached_in_process(state: Path, pipeline: object) -> float:
    start = time.perf_counter()
    record = engine_for(state).run(pipeline)  # type: ignore[arg-type]
    assert all(s.status == "cached" for s in record.steps.values())
    return time.perf_counter() - start


def whole_run(state: Path, yaml_path: Path, env: dict[str, str]) -> float:
    """`skyops run` as a user types it (output to a pipe, as in a log), from process start to exit."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "skyops", "run", str(yaml_path)],
        env={**env, "SKYOPS_STATE_DIR": str(state)},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


@dataclass
class Side:
    """One checkout measured as a whole process: its environment and its timings (seconds)."""

    name: str
    env: dict[str, str]
    cached: list[float] = field(default_factory=list)
    cold: list[float] = field(default_factory=list)


@contextlib.contextmanager
def cpu_load(processes: int) -> Iterator[None]:
    """`processes` busy loops beside the measurement, stopped on exit."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(processes)]
    try:
        time.sleep(0.5)  # let the scheduler see them
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def measure(label: str, repeat: int, pipeline: object, work: Path, yaml_path: Path, sides: list[Side]) -> None:
    floors, colds, warm_in = [], [], []
    for i in range(repeat):  # interleaved, so machine noise hits both sides alike
        floors.append(floor(work))
        colds.append(cold(work, pipeline, i))
    warm = work / "warm"
    engine_for(warm).run(pipeline)  # type: ignore[arg-type]
    for side in sides:  # each side's own cache (their keys differ), warmed, bytecode written
        whole_run(work / f"warm-{side.name}", yaml_path, side.env)
        whole_run(work / f"warm-{side.name}", yaml_path, side.env)
    for i in range(repeat):
        warm_in.append(cached_in_process(warm, pipeline))
        for side in sides:
            side.cached.append(whole_run(work / f"warm-{side.name}", yaml_path, side.env))
            side.cold.append(whole_run(work / f"cold-{side.name}-{i}", yaml_path, side.env))
    f, c, wi = statistics.median(floors), statistics.median(colds), statistics.median(warm_in)
    per_step = f / 5
    print(f"{label}: median of {repeat} (launcher: {os.environ.get('SKYOPS_LAUNCHER', 'fork')}; load average {os.getloadavg()[0]:.1f})")
    print(f"  floor  (5 bare python -c)        {f * 1000:8.1f} ms total  {per_step * 1000:7.1f} ms/step")
    print(f"  cold   (skyops, all steps run)   {c * 1000:8.1f} ms total  {c * 200:7.1f} ms/step")
    print(f"  ratio  cold/floor per step       {c / f:8.2f}x   (target <= 1.5x)")
    print(f"  cached (engine, in process)      {wi * 1000:8.1f} ms total  {wi * 200:7.1f} ms/step")
    for side in sides:
        cached, whole_cold = statistics.median(side.cached), statistics.median(side.cold)
        print(
            f"  cached (whole `skyops run`) {side.name:>6} {cached * 1000:6.1f} ms = {cached / per_step:5.1f} floor starts"
            "   (target <= 20: 0.2 s at a 10 ms floor)"
        )
        print(f"  cold   (whole `skyops run`) {side.name:>6} {whole_cold * 1000:6.1f} ms = {whole_cold / per_step:5.1f} floor starts")


@contextlib.contextmanager
def exported(revision: str) -> Iterator[Path]:
    """Revision `revision` of this checkout's repository, as files in a temporary folder."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{revision}^{{commit}}"], check=True, capture_output=True, text=True
    )
    with tempfile.TemporaryDirectory(prefix="skyops-baseline-") as folder:
        archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", sha.stdout.strip()], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", folder], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit(f"git archive {revision} failed")
        yield Path(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--load", action="store_true", help="also measure beside one CPU-burning process per core")
    parser.add_argument("--baseline", metavar="REV", help="also measure git revision REV's whole `skyops run`, as 'before'")
    args = parser.parse_args()
    pipeline = pipeline_from_dict(PIPELINE_DICT)
    print(f"skyops from {ROOT}" + (" (PYTHONDONTWRITEBYTECODE was set: dropped for the children)" if BYTECODE_OFF else ""))
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        sides = [Side("after" if args.baseline else "this", checkout_env(ROOT))]
        if args.baseline:
            before = stack.enter_context(exported(args.baseline))
            print(f"before: {args.baseline} (exported to {before})")
            sides.insert(0, Side("before", checkout_env(before)))
        import yaml

        yaml_path = Path(tmp) / "trivial5.yaml"
        yaml_path.write_text(yaml.safe_dump(PIPELINE_DICT))
        (Path(tmp) / "quiet").mkdir()
        measure("quiet", args.repeat, pipeline, Path(tmp) / "quiet", yaml_path, sides)
        if args.load:
            cores = os.cpu_count() or 1
            (Path(tmp) / "loaded").mkdir()
            for side in sides:
                side.cached.clear()
                side.cold.clear()
            with cpu_load(cores):
                measure(f"loaded ({cores} busy processes)", args.repeat, pipeline, Path(tmp) / "loaded", yaml_path, sides)


if __name__ == "__main__":
    main()
