"""Quality gates: conditions on a step's JSON output guard the steps after it."""

import json

import pytest

from skyops.errors import PipelineError
from skyops.pipeline.definition import pipeline_from_dict
from skyops.pipeline.gates import GateResult, json_value
from skyops.pipeline.lineage import RunStatus, load_record

from .conftest import read_output_text, statuses


def gated(extra_gate: dict | None = None) -> dict:
    gate = {
        "name": "enough",
        "step": "measure",
        "output": "out",
        "file": "m.json",
        "conditions": [{"path": "metrics.total", "op": ">=", "value": "${minimum}"}],
        "guards": ["ship"],
        "message": "too small",
        **(extra_gate or {}),
    }
    return {"name": "gated", "parameters": {"minimum": {"type": "float", "default": 5}}, "gates": [gate]}


@pytest.fixture
def pipeline_dict(scratch_package):
    scratch_package("measure", 'import json\n(outputs["out"] / "m.json").write_text(json.dumps({"metrics": {"total": 6.5}}))')
    scratch_package("ship", '(outputs["out"] / "shipped.txt").write_text(inputs["src"].joinpath("m.json").read_text())')
    return {
        **gated(),
        "catalog": scratch_package.package,
        "steps": [{"step": "measure"}, {"step": "ship", "inputs": {"src": "measure.out"}}],
    }, scratch_package


def test_gate_passes_and_guarded_step_runs(pipeline_dict, make_engine) -> None:
    data, package = pipeline_dict
    engine = make_engine(roots={package.package: package.root / package.package})
    record = engine.run(pipeline_from_dict(data))
    assert record.status is RunStatus.SUCCEEDED and statuses(record) == {"measure": "done", "ship": "done"}
    assert record.gates["enough"].details == ("metrics.total = 6.5 >= 5.0: ok",)
    assert json.loads(read_output_text(record, "ship", "out", "shipped.txt"))["metrics"]["total"] == 6.5


def test_gate_fails_guarded_step_is_gated_and_run_says_so(pipeline_dict, make_engine) -> None:
    data, package = pipeline_dict
    engine = make_engine(roots={package.package: package.root / package.package})
    record = engine.run(pipeline_from_dict(data), {"minimum": "7"})
    assert record.status is RunStatus.GATED and statuses(record) == {"measure": "done", "ship": "gated"}
    verdict = GateResult(passed=False, details=("metrics.total = 6.5 >= 7.0: FAILED",), message="too small", guards=("ship",))
    assert record.gates["enough"] == verdict
    saved_json = json.loads((engine.state.runs / record.run_id / "run.json").read_text())
    assert saved_json["status"] == "gated"  # run.json keeps its plain JSON shape
    assert saved_json["gates"]["enough"] == {
        "passed": False,
        "details": ["metrics.total = 6.5 >= 7.0: FAILED"],
        "message": "too small",
        "guards": ["ship"],
    }
    saved = load_record(engine.state.runs, record.run_id)
    assert saved.status is RunStatus.GATED and saved.gates == {"enough": verdict}


def test_gate_definition_problems_are_reported_together(scratch_package) -> None:
    scratch_package("measure", "pass")
    bad = {
        **gated({"output": "nope", "guards": ["measure", "ghost"], "conditions": [{"path": "a", "op": ">=", "value": "${missing}"}]}),
        "catalog": scratch_package.package,
        "steps": [{"step": "measure"}],
    }
    with pytest.raises(PipelineError) as info:
        pipeline_from_dict(bad)
    assert info.value.problems == [
        "gate 'enough' guards 'measure', which is listed before the gated step 'measure'",
        "gate 'enough' guards unknown step 'ghost'",
        "gate 'enough' references unknown parameter ${missing}",
        "gate 'enough': step 'measure' has no output 'nope' (outputs: out)",
    ]


def test_unknown_operator_is_refused(scratch_package) -> None:
    scratch_package("measure", "pass")
    bad = {
        **gated({"conditions": [{"path": "a", "op": "=>", "value": 1}]}),
        "catalog": scratch_package.package,
        "steps": [{"step": "measure"}],
    }
    with pytest.raises(PipelineError, match=r"gates\[0\]: condition on 'a': operator '=>' is not one of >=, >, <=, <, ==, !="):
        pipeline_from_dict(bad)


def test_a_non_finite_threshold_is_refused(scratch_package) -> None:
    """nan >= x is never true: a gate on it could never pass."""
    scratch_package("measure", "pass")
    bad = {
        **gated({"conditions": [{"path": "a", "op": ">=", "value": float("nan")}]}),
        "catalog": scratch_package.package,
        "steps": [{"step": "measure"}],
    }
    with pytest.raises(PipelineError, match=r"gates\[0\]: condition on 'a': value nan is not a finite number"):
        pipeline_from_dict(bad)


def test_json_value_follows_dots_and_indexes() -> None:
    doc = {"metrics": {"map50": 0.6}, "per_class": [{"ap50": 0.1}, {"ap50": 0.9}]}
    assert json_value(doc, "metrics.map50") == 0.6 and json_value(doc, "per_class[1].ap50") == 0.9
    with pytest.raises(KeyError, match="recall"):
        json_value(doc, "metrics.recall")
