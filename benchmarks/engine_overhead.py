"""Framework overhead of the local engine on a 5-step trivial pipeline.

Anchor (the floor): 5 bare `python -c` subprocesses, one after another, doing the same work as
the steps (read the previous step's small file, write the next). Measured in the same run.

Prints, as medians of --repeat runs:
  cold    every step runs (fresh state dir); per-step time vs the floor's per-step time
  cached  nothing changed; the whole `skyops run` command (process start to exit) and in-process
Targets (issue 2): cold per-step within 1.5x of the floor; fully cached re-run of 5 steps < 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the trivial steps are the test suite's toy steps
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

from skyops.pipeline.definition import pipeline_from_dict  # noqa: E402
from skyops.pipeline.engine import LocalEngine, StateDir  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    pipeline = pipeline_from_dict(PIPELINE_DICT)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        import yaml

        yaml_path = work / "trivial5.yaml"
        yaml_path.write_text(yaml.safe_dump(PIPELINE_DICT))
        floors, colds, warm_in, warm_cli = [], [], [], []
        for i in range(args.repeat):  # interleaved, so machine noise hits both sides alike
            floors.append(floor(work))
            colds.append(cold(work, pipeline, i))
        engine_for(work / "warm").run(pipeline)
        cached_cli(work / "warm", yaml_path)
        for _ in range(args.repeat):
            warm_in.append(cached_in_process(work / "warm", pipeline))
            warm_cli.append(cached_cli(work / "warm", yaml_path))
    f, c = statistics.median(floors), statistics.median(colds)
    wi, wc = statistics.median(warm_in), statistics.median(warm_cli)
    print(f"engine overhead, 5-step trivial pipeline, median of {args.repeat} (launcher: {os.environ.get('SKYOPS_LAUNCHER', 'fork')})")
    print(f"  floor  (5 bare python -c)        {f * 1000:8.1f} ms total  {f * 200:7.1f} ms/step")
    print(f"  cold   (skyops, all steps run)   {c * 1000:8.1f} ms total  {c * 200:7.1f} ms/step")
    print(f"  ratio  cold/floor per step       {c / f:8.2f}x   (target <= 1.5x)")
    print(f"  cached (whole `skyops run`)      {wc * 1000:8.1f} ms total   (target < 500 ms)")
    print(f"  cached (engine, in process)      {wi * 1000:8.1f} ms total  {wi * 200:7.1f} ms/step")


if __name__ == "__main__":
    main()
