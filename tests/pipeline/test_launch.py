"""How step processes start: the warm fork host boots only when a step has to run."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import textwrap
import threading
from pathlib import Path

import pytest

from skyops.errors import ContractError
from skyops.pipeline import forkhost, launch
from skyops.pipeline.definition import Pipeline, pipeline_from_dict
from skyops.pipeline.lineage import RunRecord, StepStatus

from .conftest import statuses

needs_pidfd = pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="the fork host needs Linux pidfds")


@pytest.fixture
def hosts_started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The command line of every fork host started from here on."""
    started: list[list[str]] = []
    real = subprocess.Popen

    def popen(args, *rest, **kwargs):  # type: ignore[no-untyped-def]
        if "skyops.pipeline.forkhost" in args:
            started.append(list(args))
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(launch.subprocess, "Popen", popen)
    monkeypatch.delenv("SKYOPS_LAUNCHER", raising=False)
    return started


@needs_pidfd
def test_a_cached_run_starts_no_step_host(make_engine, numbers, hosts_started) -> None:
    assert statuses(make_engine().run(numbers)) == {"emit": "done", "double": "done", "total": "done"}
    assert len(hosts_started) == 1  # a first run: one host, booted up front, for the three steps
    assert statuses(make_engine().run(numbers)) == {"emit": "cached", "double": "cached", "total": "cached"}
    assert len(hosts_started) == 1  # nothing to launch: no host
    record = make_engine().run(numbers, {"factor": "5"})  # a re-run that misses after all
    assert statuses(record) == {"emit": "cached", "double": "done", "total": "done"}
    assert len(hosts_started) == 2  # started at its first launch


WARMABLE_BODY = """
import json, os
from pathlib import Path
(Path(outputs["out"]) / "seen.json").write_text(json.dumps({"warmed": WARMED, "pid": os.getpid(), "host": os.getppid()}))
"""


def warmable(scratch_package, hook: str) -> Pipeline:
    """A one-step pipeline whose step has the warm hook `hook` (a function body) recording each call in WARMED."""
    script = scratch_package("warmable", WARMABLE_BODY)
    text = script.read_text().replace(
        "@CATALOG.step(spec=SPEC, contract=CONTRACT)", "@CATALOG.step(spec=SPEC, contract=CONTRACT, warm=warm)"
    )
    script.write_text(
        text.replace(
            "SPEC = StepSpec(",
            f"WARMED = []\n\n\ndef warm():\n{textwrap.indent(textwrap.dedent(hook).strip(), '    ')}\n\n\nSPEC = StepSpec(",
            1,
        )
    )
    return pipeline_from_dict({"name": "warmable", "catalog": scratch_package.package, "steps": [{"step": "warmable"}]})


def seen(record: RunRecord) -> dict:
    return json.loads((Path(record.steps["warmable"].outputs["out"]["path"]) / "seen.json").read_text())


RECORDING_HOOK = """
import os
print("warming in", os.getpid())
WARMED.append({"pid": os.getpid(), "run": os.environ.get("SKYOPS_RUN_ID"), "mode": os.environ.get("SCRATCH_MODE")})
"""


@needs_pidfd
def test_a_kept_host_warms_a_step_once_under_its_environment_and_forks_it_warm(
    scratch_package, make_engine, hosts_started, monkeypatch
) -> None:
    monkeypatch.setenv("SCRATCH_MODE", "from the engine")
    pipeline = warmable(scratch_package, RECORDING_HOOK)
    engine = make_engine(keep_warm=True, use_cache=False, roots={scratch_package.package: scratch_package.root})
    try:
        first = engine.run(pipeline)
        one = seen(first)  # read now: the second run publishes over the same cache entry
        second = engine.run(pipeline)
        two = seen(second)
    finally:
        engine.close()
    assert statuses(first) == statuses(second) == {"warmable": "done"}
    assert len(hosts_started) == 1 and "--warm" in hosts_started[0]  # one host for both runs
    # The hook ran once, in the host (the steps' parent), with the first step's environment (the engine's,
    # and the run's context), and both steps were forked with its work done.
    assert one["warmed"] == two["warmed"] == [{"pid": one["host"], "run": first.run_id, "mode": "from the engine"}]
    assert two["host"] == one["host"] and one["pid"] != two["pid"]
    first_log = Path(first.steps["warmable"].log).read_text()
    assert f"warming in {one['host']}" in first_log  # the hook's output went to the step's log, not the host's replies
    assert "warming in" not in Path(second.steps["warmable"].log).read_text()


@needs_pidfd
def test_an_engine_that_keeps_no_host_never_warms(scratch_package, make_engine) -> None:
    pipeline = warmable(scratch_package, RECORDING_HOOK)
    record = make_engine(roots={scratch_package.package: scratch_package.root}).run(pipeline)
    assert statuses(record) == {"warmable": "done"} and seen(record)["warmed"] == []


@needs_pidfd
def test_a_failing_warm_hook_is_noted_and_the_step_starts_cold(scratch_package, make_engine) -> None:
    pipeline = warmable(scratch_package, "raise RuntimeError('no GPU here')")
    engine = make_engine(keep_warm=True, roots={scratch_package.package: scratch_package.root})
    try:
        record = engine.run(pipeline)
    finally:
        engine.close()
    assert statuses(record) == {"warmable": "done"} and seen(record)["warmed"] == []
    assert (
        f"step host: warming {scratch_package.package}.warmable.script:warm failed (RuntimeError: no GPU here); the step starts cold"
        in Path(record.steps["warmable"].log).read_text()
    )


@needs_pidfd
def test_a_warm_hook_that_leaves_a_thread_makes_the_host_refuse_to_fork(scratch_package, make_engine) -> None:
    """A forked child gets only the forking thread: a lock another thread held stays held forever. Refused, loudly."""
    hook = "import threading, time\nthreading.Thread(target=time.sleep, args=(30,), name='poller', daemon=True).start()"
    pipeline = warmable(scratch_package, hook)
    engine = make_engine(keep_warm=True, use_cache=False, roots={scratch_package.package: scratch_package.root})
    try:
        records = [engine.run(pipeline), engine.run(pipeline)]
    finally:
        engine.close()
    for record in records:  # every later step of this host too
        step = record.steps["warmable"]
        assert step.status is StepStatus.FAILED and step.exit_code == forkhost.UNSAFE
        assert "left threads running (poller); forking is unsafe" in Path(step.log).read_text()


def test_a_warm_hook_must_be_a_module_level_function_without_arguments(scratch_package) -> None:
    script = scratch_package("badwarm", "pass")
    script.write_text(
        script.read_text().replace(
            "@CATALOG.step(spec=SPEC, contract=CONTRACT)", "@CATALOG.step(spec=SPEC, contract=CONTRACT, warm=lambda: None)"
        )
    )
    with pytest.raises(ContractError, match=r"warm hook <function <lambda> at .*> must be a module-level function that takes no arguments"):
        importlib.import_module(f"{scratch_package.package}.badwarm.script")


@needs_pidfd
def test_a_run_that_stops_early_takes_the_kept_host_down_and_the_next_run_starts_another(
    scratch_package, make_engine, hosts_started
) -> None:
    """A stopped run terminates its launcher (its steps are stopped): a pruned trial must not leave the study's host refusing steps."""
    pipeline = warmable(scratch_package, RECORDING_HOOK)
    engine = make_engine(keep_warm=True, use_cache=False, roots={scratch_package.package: scratch_package.root})

    def broken_listener(step: object) -> None:
        raise RuntimeError("listener bug")

    try:
        with pytest.raises(RuntimeError, match="listener bug"):
            engine.run(pipeline, listener=broken_listener)
        record = engine.run(pipeline)
    finally:
        engine.close()
    assert statuses(record) == {"warmable": "done"}
    assert len(hosts_started) == 2 and seen(record)["warmed"][0]["run"] == record.run_id  # a new host, warmed by this run


@needs_pidfd
def test_warm_up_runs_the_hooks_before_the_first_run(scratch_package, make_engine, hosts_started) -> None:
    """`skyops tune` warms the train step while it opens its stores: the first trial's step forks warm."""
    pipeline = warmable(scratch_package, RECORDING_HOOK)
    engine = make_engine(keep_warm=True, roots={scratch_package.package: scratch_package.root})
    try:
        engine.warm_up(pipeline)
        assert len(hosts_started) == 1  # booted now, not at the run
        record = engine.run(pipeline)
    finally:
        engine.close()
    assert statuses(record) == {"warmable": "done"} and len(hosts_started) == 1
    # Warmed ahead of any run (no run id yet), in the host that then forked the step; its output was dropped.
    assert seen(record)["warmed"] == [{"pid": seen(record)["host"], "run": None, "mode": None}]
    assert "warming in" not in Path(record.steps["warmable"].log).read_text()


@needs_pidfd
def test_warm_up_without_a_kept_host_starts_nothing(scratch_package, make_engine, hosts_started, monkeypatch) -> None:
    pipeline = warmable(scratch_package, RECORDING_HOOK)
    make_engine(roots={scratch_package.package: scratch_package.root}).warm_up(pipeline)  # keep_warm off
    monkeypatch.setenv("SKYOPS_LAUNCHER", "subprocess")
    engine = make_engine(keep_warm=True, roots={scratch_package.package: scratch_package.root})
    try:
        engine.warm_up(pipeline)  # a fresh interpreter per step: nothing to keep warm
        record = engine.run(pipeline)
    finally:
        engine.close()
    assert hosts_started == [] and statuses(record) == {"warmable": "done"} and seen(record)["warmed"] == []


@needs_pidfd
def test_closing_during_a_warm_up_does_not_wait_for_it(scratch_package, make_engine) -> None:
    """Ctrl-C early in a study: the host may be in the middle of a long warm hook; no step runs, so it is not waited for."""
    pipeline = warmable(scratch_package, "import time\ntime.sleep(120)")
    engine = make_engine(keep_warm=True, roots={scratch_package.package: scratch_package.root})
    engine.warm_up(pipeline)
    closing = threading.Thread(target=engine.close, daemon=True)
    closing.start()
    closing.join(60)  # a hang guard, not a speed check: the hook sleeps for 120 s
    assert not closing.is_alive()
