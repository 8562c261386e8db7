"""A cached result is reused only while it is still true: declared files exist, recheck agrees."""

from pathlib import Path

import pytest

from skyops.errors import ContractError, SpecError
from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepSpec, processing_output
from skyops.pipeline.catalog import Catalog
from skyops.pipeline.engine import StateDir

from .conftest import statuses, toy
from .toysteps.registrar.script import entry_path


def test_a_step_without_its_declared_file_fails_and_publishes_nothing(make_engine, state: StateDir) -> None:
    record = make_engine().run(toy([{"step": "writer", "config": {"write": False}}]))
    step = record.steps["writer"]
    assert statuses(record) == {"writer": "failed"} and step.exit_code == 0
    assert step.error == "step 'writer' output 'model' lacks declared file best.pt"
    assert not (state.root / "cache").exists() and list((state.root / "staging").iterdir()) == []


def test_a_cached_output_missing_a_declared_file_runs_again(make_engine) -> None:
    pipeline = toy([{"step": "writer"}])
    first = make_engine().run(pipeline)
    best = Path(first.steps["writer"].outputs["model"]["path"], "best.pt")
    best.unlink()  # damaged by hand, or published by code that did not write it
    again = make_engine().run(pipeline)
    assert statuses(again) == {"writer": "done"}
    assert again.steps["writer"].cache_reason == "cache entry's output 'model' lacks best.pt"
    assert again.steps["writer"].miss_reasons == ["cache entry's output 'model' lacks best.pt"]
    assert best.read_text() == "weights\n"


def test_recheck_keeps_a_hit_while_its_outside_state_holds(make_engine, state: StateDir) -> None:
    pipeline = toy([{"step": "registrar", "config": {"name": "m1"}}])
    first = make_engine().run(pipeline)
    assert statuses(first) == {"registrar": "done"}
    assert entry_path(str(state.root), "m1").read_text() == f"registered by run {first.run_id}\n"
    second = make_engine().run(pipeline)
    assert statuses(second) == {"registrar": "cached"} and second.steps["registrar"].cache_reason == "cache hit"


def test_recheck_reruns_a_step_whose_outside_state_is_gone(make_engine, state: StateDir) -> None:
    pipeline = toy([{"step": "registrar", "config": {"name": "m1"}}])
    make_engine().run(pipeline)
    entry_path(str(state.root), "m1").unlink()  # e.g. the registered version was deleted
    record = make_engine().run(pipeline)
    reason = "cached result no longer holds: registry entry 'm1' is gone"
    assert statuses(record) == {"registrar": "done"}
    assert record.steps["registrar"].cache_reason == reason and record.steps["registrar"].miss_reasons == [reason]
    assert entry_path(str(state.root), "m1").read_text() == f"registered by run {record.run_id}\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("raise", "step 'registrar': recheck of its cached result failed: RuntimeError: registry entry 'm1' is unreadable"),
        ("refuse", "step 'registrar': recheck of its cached result failed: the registry refused to say whether 'm1' exists"),
    ],
)
def test_an_exception_in_recheck_fails_the_step_with_its_message(make_engine, state: StateDir, content: str, message: str) -> None:
    pipeline = toy([{"step": "registrar", "config": {"name": "m1"}}, {"name": "after", "step": "emit"}])
    make_engine().run(pipeline)
    entry_path(str(state.root), "m1").write_text(content)
    record = make_engine().run(pipeline)
    assert record.status == "failed" and statuses(record) == {"registrar": "failed", "after": "cached"}
    assert record.steps["registrar"].error == message


def test_explain_cache_shows_why_a_recheck_missed(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    pipeline = tmp_path / "reg.yaml"
    pipeline.write_text("name: reg\ncatalog: tests.pipeline.toysteps\nsteps:\n  - step: registrar\n")
    env = {**os.environ, "SKYOPS_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    command = [sys.executable, "-m", "skyops", "run", str(pipeline), "--explain-cache"]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
    entry_path(str(tmp_path / "state"), "model").unlink()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "cached result no longer holds: registry entry 'model' is gone" in done.stdout


def test_declared_files_must_be_relative_and_on_outputs() -> None:
    with pytest.raises(SpecError, match=r"port 'model': declared file '\.\./best\.pt' must be a relative path inside the folder"):
        Port(name="model", kind="weights", files=("../best.pt",))
    with pytest.raises(SpecError, match=r"input port 'data' declares files; only outputs do"):
        StepSpec(
            step_type="x",
            node_type=NodeType.INTERNAL,
            inputs=(Port(name="data", kind="d", files=("a.txt",)),),
            outputs=(Port(name="out", kind="d"),),
        )


def test_a_recheck_with_the_wrong_signature_fails_at_definition() -> None:
    spec = StepSpec(step_type="reg", node_type=NodeType.SOURCE, outputs=(Port(name="out", kind="d"),))
    contract = ScriptContract(entry_point="x.reg", job_kind=JobKind.PROCESSING, outputs={"out": processing_output("out")})

    def recheck(outputs):  # env is missing
        return None

    with pytest.raises(ContractError, match=r"recheck \S+recheck takes \(outputs\); expected \(outputs, env\)"):

        @Catalog("x").step(spec=spec, contract=contract, recheck=recheck)
        def main(inputs, outputs, env, args):
            pass
