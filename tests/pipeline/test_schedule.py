"""The scheduler: one predicate decides each step's next action; every run ends, every step ends."""

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyops.pipeline.definition import Pipeline, pipeline_from_dict
from skyops.pipeline.engine import LocalEngine, StateDir
from skyops.pipeline.gates import Condition, Gate
from skyops.pipeline.lineage import StepStatus, load_record
from skyops.pipeline.schedule import Action, Next, SchedulerStuck, next_action

from .conftest import HERE, SKYOPS_ROOT, InProcessLauncher, run_within, statuses

S = StepStatus


@pytest.mark.parametrize(
    ("upstream", "gates", "expected"),
    [
        # 1. an upstream step failed or was skipped: skip (before any gate)
        ({"a": S.FAILED, "b": S.RUNNING}, {"g": False}, Next(Action.SKIP, "upstream step 'a' failed")),
        ({"a": S.SKIPPED}, {}, Next(Action.SKIP, "upstream step 'a' skipped")),
        # 2. an upstream step is not final yet: wait, even when a gate already failed (the upstream
        #    step may still fail, and then this step is skipped, not gated, whatever the timing)
        ({"a": S.RUNNING}, {"g": False, "h": None}, Next(Action.WAIT, "upstream step 'a' is running")),
        ({"a": S.DONE, "b": S.WAITING}, {"g": True}, Next(Action.WAIT, "upstream step 'b' is waiting")),
        ({"a": S.PENDING}, {}, Next(Action.WAIT, "upstream step 'a' is pending")),
        # 3. a gate before it failed: gated
        ({"a": S.DONE}, {"g": False, "h": None}, Next(Action.GATE, "gate 'g' did not pass")),
        # 4. an upstream step was gated
        ({"a": S.GATED, "b": S.DONE}, {}, Next(Action.GATE, "upstream step 'a' was gated")),
        # 5. a gate is not evaluated yet
        ({"a": S.CACHED}, {"g": None}, Next(Action.WAIT, "gate 'g' is not evaluated yet")),
        # 6. start
        ({"a": S.CACHED, "b": S.DONE}, {"g": True}, Next(Action.START)),
        ({}, {}, Next(Action.START)),
    ],
)
def test_next_action_rules(upstream, gates, expected) -> None:
    assert next_action(upstream, gates) == expected


def gated_failure() -> Pipeline:
    """e1 -> d1 (fails) -> d2; a gate on d2 guards e2, which does not depend on any of them."""
    return pipeline_from_dict(
        {
            "name": "gatedfailure",
            "catalog": "tests.pipeline.toysteps",
            "steps": [
                {"name": "e1", "step": "node", "config": {"tag": "e1"}},
                {"name": "d1", "step": "node", "config": {"tag": "d1", "fail": True}, "inputs": {"a": "e1.out"}},
                {"name": "d2", "step": "node", "config": {"tag": "d2"}, "inputs": {"a": "d1.out"}},
                {"name": "e2", "step": "node", "config": {"tag": "e2"}},
            ],
            "gates": [
                {
                    "name": "g",
                    "step": "d2",
                    "output": "out",
                    "file": "gate.json",
                    "conditions": [{"path": "score", "op": ">=", "value": 0}],
                    "guards": ["e2"],
                }
            ],
        }
    )


def test_gate_on_a_skipped_step_fails_and_the_run_ends(make_engine, state: StateDir) -> None:
    """Reported hang: d2 is skipped, so its gate was never evaluated and e2 waited forever."""
    record = run_within(make_engine(), gated_failure())
    assert statuses(record) == {"e1": "done", "d1": "failed", "d2": "skipped", "e2": "gated"}
    assert record.status == "failed"
    assert record.gates["g"].passed is False and record.gates["g"].details == ("step 'd2' did not finish (it skipped)",)
    saved = load_record(state.runs, record.run_id)
    assert saved.status == "failed" and statuses(saved) == statuses(record)
    assert saved.steps["d2"].error == "upstream step 'd1' failed"
    assert saved.steps["e2"].error == "gate 'g' did not pass"


def test_a_run_that_cannot_progress_is_an_internal_error_not_a_wait(make_engine, state: StateDir) -> None:
    pipeline = pipeline_from_dict(
        {
            "name": "stuck",
            "catalog": "tests.pipeline.toysteps",
            "steps": [{"name": "a", "step": "node"}, {"name": "b", "step": "node", "inputs": {"a": "a.out"}}],
        }
    )
    # A gate on b guarding a, upstream of b: validation refuses this, so it is forced in to reach the safety net.
    impossible = Gate(
        name="loop", step="b", output="out", file="gate.json", conditions=(Condition(path="score", op=">=", value=0),), guards=("a",)
    )
    object.__setattr__(pipeline, "gates", (impossible,))
    with pytest.raises(
        SchedulerStuck, match=r"^internal error: steps are pending, none is running and none can start \(a: gate 'loop' is not"
    ):
        run_within(make_engine(), pipeline)
    saved = load_record(state.runs, "latest")
    assert saved.status == "failed" and statuses(saved) == {"a": "skipped", "b": "skipped"}
    assert saved.steps["a"].error.startswith("the run stopped on an internal error: SchedulerStuck: internal error: steps are pending")


# ---- property: random small DAGs, random failures, random gates ------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> dict:
    """3-8 node steps, each reading up to two earlier ones; about one in five fails; 0-3 gates."""
    count = draw(st.integers(3, 8))
    steps = []
    for i in range(count):
        upstream = draw(st.lists(st.integers(0, i - 1), max_size=2, unique=True)) if i else []
        config = {"tag": f"s{i}", "score": draw(st.integers(0, 3)), "fail": draw(st.integers(0, 4)) == 0}
        steps.append(
            {"name": f"s{i}", "step": "node", "config": config, "inputs": {p: f"s{u}.out" for p, u in zip("ab", upstream, strict=False)}}
        )
    gates = []
    for g in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, count - 2))
        guards = draw(st.lists(st.integers(at + 1, count - 1), min_size=1, max_size=3, unique=True))
        threshold = draw(st.integers(0, 3))
        gates.append(
            {
                "name": f"g{g}",
                "step": f"s{at}",
                "output": "out",
                "file": "gate.json",
                "conditions": [{"path": "score", "op": ">=", "value": threshold}],
                "guards": [f"s{i}" for i in guards],
            }
        )
    return {"name": "random", "catalog": "tests.pipeline.toysteps", "steps": steps, "gates": gates}


def expected_statuses(pipeline: Pipeline, data: dict) -> tuple[dict[str, str], dict[str, bool]]:
    """The statuses the rules imply, computed in listing (topological) order, and each gate's verdict."""
    config = {s["name"]: s["config"] for s in data["steps"]}
    status: dict[str, str] = {}
    passed: dict[str, bool] = {}
    for node in pipeline.steps:
        upstream = [status[u] for u in pipeline.upstream_of(node.name)]
        if any(s in ("failed", "skipped") for s in upstream):
            status[node.name] = "skipped"
        elif any(not passed[g.name] for g in pipeline.gated_by(node.name)) or "gated" in upstream:
            status[node.name] = "gated"
        else:
            status[node.name] = "failed" if config[node.name]["fail"] else "done"
        for gate in (g for g in pipeline.gates if g.step == node.name):
            threshold = gate.conditions[0].value
            passed[gate.name] = status[node.name] == "done" and config[node.name]["score"] >= threshold
    return status, passed


def check_run(data: dict, launcher: object | None) -> None:
    pipeline = pipeline_from_dict(data)
    with tempfile.TemporaryDirectory() as tmp:
        state = StateDir(Path(tmp))
        engine = LocalEngine(state, code_roots={"skyops": SKYOPS_ROOT, "tests": HERE.parent}, launcher=launcher, workers=2)  # type: ignore[arg-type]
        record = run_within(engine, pipeline)
        status, passed = expected_statuses(pipeline, data)
        got = {name: "done" if s == "cached" else s for name, s in statuses(record).items()}  # equal keys: one runs, one reuses
        assert got == status
        assert all(step.status.final for step in record.steps.values())
        assert {name: g.passed for name, g in record.gates.items()} == passed
        for node in pipeline.steps:  # no guarded step ran past a failed gate
            if any(not passed[g.name] for g in pipeline.gated_by(node.name)):
                assert record.steps[node.name].status in (S.GATED, S.SKIPPED), node.name
        failed = any(s == "failed" for s in status.values())
        assert record.status == ("failed" if failed else "gated" if not all(passed.values()) else "succeeded")
        saved = load_record(state.runs, record.run_id)
        assert (saved.status, statuses(saved)) == (record.status, statuses(record))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_every_random_run_ends_consistently(data: dict) -> None:
    check_run(data, InProcessLauncher())


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_every_random_run_ends_consistently_with_real_step_processes(data: dict) -> None:
    check_run(data, None)


def test_signals_stop_a_run_once_and_ignored_ones_stay_ignored() -> None:
    import os
    import signal

    from skyops.pipeline.schedule import Interrupted, signals_interrupt

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(Interrupted, match="SIGTERM") as info, signals_interrupt():
            os.kill(os.getpid(), signal.SIGINT)  # ignored before the run: stays ignored
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a bytecode boundary for the handler to run
        assert info.value.signal_number == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)
