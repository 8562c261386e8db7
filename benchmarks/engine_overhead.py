"""Framework overhead of the local engine on a 5-step trivial pipeline, on a quiet and a loaded machine.

Anchor (the floor): 5 bare `python -c` subprocesses, one after another, doing the same work as
the steps (read the previous step's small file, write the next). Measured in the same run.

Prints, as medians of --repeat runs:
  cold    every step runs (fresh state dir); per-step time vs the floor's per-step time
  cached  nothing changed; the whole `skyops run` command (process start to exit) and in-process
With --load, everything is measured again beside one CPU-burning process per core (started and
stopped by the benchmark): a developer's laptop is rarely idle, and a start that only looks fast
on a quiet machine is not fast.

Targets (issue 9): cold per-step within 1.5x of the floor, quiet and loaded; a fully cached
re-run of 5 steps in <= 0.2 s as a whole process.
Measured (issue 9, this 2-core machine shared with other jobs, load average 1-2 before --load;
medians of 9, the old and new code interleaved in the same session):
  cached, whole process   0.69-0.84 s -> 0.50-0.72 s; loaded 1.2-1.4 s -> 0.86-0.95 s
                          (15 interleaved runs: 0.68 -> 0.46 s; the default pipeline: 0.99 -> 0.54 s)
  cold per step           1.95x -> 1.91x of the floor; loaded 1.5-1.7x -> 1.2-1.6x (noise is +-0.2x)
The 0.2 s is not reached: a one-command typer 0.29 app alone takes 0.25-0.27 s here (typer, plus the
pydantic it imports to coerce every option), against 0.065 s for the same app in click and 0.017 s
for `python -c pass`; rich (the summary table) adds ~0.08 s. The engine's own share is ~15 ms.
A new process no longer re-parses the steps' imports (cache.CodeMemo), imports only the command
it runs (skyops.cli.COMMANDS), and starts no fork host when the run is likely cached.

Measures the skyops that Python imports (PYTHONPATH), so two checkouts compare with
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
from pathlib import Path

import skyops
from skyops.pipeline.definition import pipeline_from_dict
from skyops.pipeline.engine import LocalEngine, StateDir

ROOT = Path(skyops.__file__).resolve().parents[2]  # the checkout measured: its src/ and its tests' toy steps
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")]))

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
        subprocess.run([sys.executable, "-c", FLOOR_STEP, previous, str(target)], check=True)
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


def cached_cli(state: Path, yaml_path: Path) -> float:
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "skyops", "run", str(yaml_path)], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


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


def measure(label: str, repeat: int, pipeline: object, work: Path, yaml_path: Path) -> None:
    floors, colds, warm_in, warm_cli = [], [], [], []
    for i in range(repeat):  # interleaved, so machine noise hits both sides alike
        floors.append(floor(work))
        colds.append(cold(work, pipeline, i))
    warm = work / "warm"
    engine_for(warm).run(pipeline)  # type: ignore[arg-type]
    cached_cli(warm, yaml_path)
    for _ in range(repeat):
        warm_in.append(cached_in_process(warm, pipeline))
        warm_cli.append(cached_cli(warm, yaml_path))
    f, c = statistics.median(floors), statistics.median(colds)
    wi, wc = statistics.median(warm_in), statistics.median(warm_cli)
    print(f"{label}: median of {repeat} (launcher: {os.environ.get('SKYOPS_LAUNCHER', 'fork')}; load average {os.getloadavg()[0]:.1f})")
    print(f"  floor  (5 bare python -c)        {f * 1000:8.1f} ms total  {f * 200:7.1f} ms/step")
    print(f"  cold   (skyops, all steps run)   {c * 1000:8.1f} ms total  {c * 200:7.1f} ms/step")
    print(f"  ratio  cold/floor per step       {c / f:8.2f}x   (target <= 1.5x)")
    print(f"  cached (whole `skyops run`)      {wc * 1000:8.1f} ms total   (target <= 200 ms)")
    print(f"  cached (engine, in process)      {wi * 1000:8.1f} ms total  {wi * 200:7.1f} ms/step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--load", action="store_true", help="also measure beside one CPU-burning process per core")
    args = parser.parse_args()
    pipeline = pipeline_from_dict(PIPELINE_DICT)
    print(f"skyops from {ROOT}")
    with tempfile.TemporaryDirectory() as tmp:
        import yaml

        yaml_path = Path(tmp) / "trivial5.yaml"
        yaml_path.write_text(yaml.safe_dump(PIPELINE_DICT))
        (Path(tmp) / "quiet").mkdir()
        measure("quiet", args.repeat, pipeline, Path(tmp) / "quiet", yaml_path)
        if args.load:
            cores = os.cpu_count() or 1
            (Path(tmp) / "loaded").mkdir()
            with cpu_load(cores):
                measure(f"loaded ({cores} busy processes)", args.repeat, pipeline, Path(tmp) / "loaded", yaml_path)


if __name__ == "__main__":
    main()
