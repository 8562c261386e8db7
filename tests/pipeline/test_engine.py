"""The local engine: outputs, lineage, cache rules, crash safety, concurrency."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from skyops.pipeline.engine import StateDir
from skyops.pipeline.lineage import load_record

from .conftest import PIPELINES, read_output_text, statuses, toy


def test_run_writes_outputs_and_lineage(make_engine, numbers, state: StateDir, monkeypatch) -> None:
    monkeypatch.setenv("SKYOPS_USER", "alice")
    record = make_engine().run(numbers, {"count": "4"})
    assert record.status == "succeeded"
    assert read_output_text(record, "total", "total", "total.txt") == "20\n"  # (1+2+3+4) * 2
    saved = load_record(state.runs, record.run_id)
    assert saved.user == "alice" and saved.parameters == {"count": 4, "factor": 2}
    double = saved.steps["double"]
    assert double.inputs["numbers"]["source"] == "emit.numbers"
    assert double.inputs["numbers"]["digest"] == saved.steps["emit"].outputs["numbers"]["digest"]
    assert double.outputs["doubled"]["files"] == 1 and len(double.outputs["doubled"]["digest"]) == 64
    assert double.started is not None and double.ended is not None and double.ended >= double.started
    assert Path(double.log).read_text().startswith("$ SKYOPS_PATHS=")


def test_second_run_is_served_from_the_cache(make_engine, numbers) -> None:
    engine = make_engine()
    first = engine.run(numbers)
    second = engine.run(numbers)
    assert statuses(second) == dict.fromkeys(["emit", "double", "total"], "cached")
    assert read_output_text(second, "total", "total", "total.txt") == read_output_text(first, "total", "total", "total.txt")


def test_config_change_misses_only_where_it_matters(make_engine, numbers) -> None:
    engine = make_engine()
    engine.run(numbers)
    record = engine.run(numbers, {"factor": "3"})
    assert statuses(record) == {"emit": "cached", "double": "done", "total": "done"}, record.steps["emit"].miss_reasons
    assert record.steps["double"].miss_reasons == ["config changed (factor: 2 -> 3)"]
    assert record.steps["total"].miss_reasons[0].startswith("inputs changed (values: ")


def test_code_change_misses_and_unrelated_code_change_hits(make_engine, scratch_package) -> None:
    one = scratch_package("one", '(outputs["out"] / "x.txt").write_text("hello")')
    two = scratch_package("two", 'text = inputs["src"].joinpath("x.txt").read_text()\n(outputs["out"] / "y.txt").write_text(text.upper())')
    from skyops.pipeline.definition import pipeline_from_dict

    pipeline = pipeline_from_dict(
        {"name": "scratch", "catalog": scratch_package.package, "steps": [{"step": "one"}, {"step": "two", "inputs": {"src": "one.out"}}]}
    )
    engine = make_engine(roots={scratch_package.package: scratch_package.root / scratch_package.package})
    engine.run(pipeline)
    two.write_text(two.read_text().replace("text.upper()", "text.upper() + '!'"))
    record = engine.run(pipeline)
    assert statuses(record) == {"one": "cached", "two": "done"}
    assert record.steps["two"].miss_reasons == ["step code changed"]
    one.write_text(one.read_text() + "\n# a comment changes the code, not the output\n")
    record = engine.run(pipeline)
    assert statuses(record) == {"one": "done", "two": "cached"}  # same output content -> downstream hits


def test_input_content_change_misses_and_touch_hits(make_engine, scratch_package, tmp_path: Path) -> None:
    scratch_package("upper", 'text = inputs["src"].joinpath("x.txt").read_text()\n(outputs["out"] / "y.txt").write_text(text.upper())')
    from skyops.pipeline.definition import pipeline_from_dict

    data = tmp_path / "data"
    data.mkdir()
    (data / "x.txt").write_text("abc")
    pipeline = pipeline_from_dict(
        {
            "name": "ext",
            "catalog": scratch_package.package,
            "parameters": {"src": {"type": "string", "default": str(data)}},
            "steps": [{"step": "upper", "inputs": {"src": "${src}"}}],
        }
    )
    engine = make_engine(roots={scratch_package.package: scratch_package.root / scratch_package.package})
    assert read_output_text(engine.run(pipeline), "upper", "out", "y.txt") == "ABC"
    os.utime(data / "x.txt", (time.time() + 5, time.time() + 5))
    assert statuses(engine.run(pipeline)) == {"upper": "cached"}
    (data / "x.txt").write_text("xyz")
    record = engine.run(pipeline)
    assert statuses(record) == {"upper": "done"} and read_output_text(record, "upper", "out", "y.txt") == "XYZ"
    assert record.steps["upper"].miss_reasons[0].startswith("inputs changed (src: ")
    assert (data / "x.txt").read_text() == "xyz"  # source data never modified


def test_independent_steps_run_concurrently(make_engine) -> None:
    pipeline = toy(
        [
            {"name": "a", "step": "sleeper", "config": {"tag": "a", "seconds": 1.0}},
            {"name": "b", "step": "sleeper", "config": {"tag": "b", "seconds": 1.0}},
        ]
    )

    def intervals(workers: int) -> list[tuple[float, float]]:
        record = make_engine(workers=workers, use_cache=False).run(pipeline)
        return [tuple(map(float, read_output_text(record, s, "stamp", "part-2.txt").split())) for s in ("a", "b")]  # type: ignore[misc]

    (a0, a1), (b0, b1) = intervals(2)
    assert a0 < b1 and b0 < a1, "with two workers the sleepers overlap"
    (a0, a1), (b0, b1) = intervals(1)
    assert a1 <= b0 or b1 <= a0, "with one worker they do not"


def test_killed_step_leaves_no_visible_output_and_next_run_completes(make_engine, state: StateDir, tmp_path: Path, monkeypatch) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("TOY_MARKER_DIR", str(markers))
    pipeline = toy([{"step": "sleeper", "config": {"tag": "k", "seconds": 30}}])
    engine = make_engine()
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("record", engine.run(pipeline)))
    runner.start()
    pid = _wait_for_pid(markers / "k.pid")
    os.kill(pid, signal.SIGKILL)  # mid-write: part-1 is written, part-2 is not
    runner.join(30)
    record = result["record"]
    assert statuses(record) == {"sleeper": "failed"} and record.steps["sleeper"].exit_code == -signal.SIGKILL
    assert not (state.root / "cache").exists() or not any((state.root / "cache").iterdir())
    assert not any((state.root / "staging").iterdir())
    monkeypatch.delenv("TOY_MARKER_DIR")
    fast = toy([{"step": "sleeper", "config": {"tag": "k", "seconds": 0.0}}])
    record = engine.run(fast)
    assert statuses(record) == {"sleeper": "done"}
    assert sorted(p.name for p in Path(record.steps["sleeper"].outputs["stamp"]["path"]).iterdir()) == ["part-1.txt", "part-2.txt"]


def test_killed_engine_leaves_no_visible_output_and_next_run_cleans_up(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    pipeline = tmp_path / "kill.yaml"
    pipeline.write_text(
        "name: kill\ncatalog: tests.pipeline.toysteps\nparameters:\n  seconds: {type: float, default: 30}\n"
        "steps:\n  - step: sleeper\n    config: {tag: e, seconds: '${seconds}'}\n"
    )
    env = {**os.environ, "TOY_MARKER_DIR": str(markers), "SKYOPS_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyops", "run", str(pipeline)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for_pid(markers / "e.pid")
    os.killpg(proc.pid, signal.SIGKILL)  # the engine, its fork host and the step, all at once
    proc.wait(10)
    staging = tmp_path / "state" / "staging"
    assert len(list(staging.iterdir())) == 1, "the half-written output stays private"
    assert not (tmp_path / "state" / "cache").exists()
    env.pop("TOY_MARKER_DIR")
    done = subprocess.run(
        [sys.executable, "-m", "skyops", "run", str(pipeline), "--param", "seconds=0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(staging.iterdir()) == []
    entry = next((tmp_path / "state" / "cache").iterdir())
    assert json.loads((entry / "entry.json").read_text())["parts"]["step"] == "sleeper"


def test_failed_run_says_how_to_resume(tmp_path: Path) -> None:
    env = {**os.environ, "SKYOPS_STATE_DIR": str(tmp_path / "state")}
    broken = tmp_path / "broken.yaml"
    source = (PIPELINES / "numbers.yaml").read_text()
    broken.write_text(source.replace("  - step: double\n", "  - step: double\n    env: {TOY_OFFSET: oops}\n"))
    done = subprocess.run(
        [sys.executable, "-m", "skyops", "run", str(broken), "-p", "count=2"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "ValueError: invalid literal for int() with base 10: 'oops'" in done.stdout  # the log's tail
    assert f"hint: fix the cause, then resume with: skyops run {broken} --param count=2" in done.stderr
    fixed = subprocess.run(
        [sys.executable, "-m", "skyops", "run", str(PIPELINES / "numbers.yaml"), "-p", "count=2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fixed.returncode == 0, fixed.stderr
    record = load_record(tmp_path / "state" / "runs", "latest")
    assert statuses(record) == {"emit": "cached", "double": "done", "total": "done"}, record.steps["emit"].miss_reasons


def _wait_for_pid(path: Path, timeout: float = 30) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.is_file() and path.read_text():
            return int(path.read_text())
        time.sleep(0.02)
    pytest.fail(f"{path} never appeared")
