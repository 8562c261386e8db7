from pathlib import Path

import pytest

from skyops.errors import ConfigError, PipelineError
from skyops.pipeline.definition import load_pipeline, pipeline_from_dict

from .conftest import PIPELINES, toy


def test_yaml_pipeline_loads_with_typed_parameters(numbers) -> None:
    assert [p.name for p in numbers.parameters] == ["count", "factor"]
    assert numbers.resolve_parameters({"count": "7"}) == {"count": 7, "factor": 2}
    assert numbers.step("emit").resolved_config({"count": 7, "factor": 2}).count == 7  # type: ignore[attr-defined]


def test_unknown_and_ill_typed_parameters_are_clear_errors(numbers) -> None:
    with pytest.raises(ConfigError, match="pipeline 'numbers' has no parameter 'epochs'") as info:
        numbers.resolve_parameters({"epochs": "3"})
    assert "count (integer, default 3)" in info.value.hint
    with pytest.raises(ConfigError, match="--param count=three: expected an integer, got 'three'"):
        numbers.resolve_parameters({"count": "three"})


def test_every_problem_of_a_pipeline_is_reported_at_once() -> None:
    with pytest.raises(PipelineError) as info:
        toy(
            [
                {"step": "emit", "config": {"count": "${missing}"}},
                {"step": "double", "config": {"factor": "x", "offset": 1}},
                {"step": "emit"},
            ],
            parameters={"count": {"type": "integer", "default": 3}},
        )
    assert info.value.problems == [
        "step 'double' config: factor: expected an integer, got 'x'",
        "step 'double' config: unknown key 'offset' (known: factor)",
        "step 'emit' is defined twice",
        "step 'emit' references unknown parameter ${missing} (parameters: count)",
    ]


def test_parameter_default_must_match_its_type() -> None:
    with pytest.raises(PipelineError, match=r"parameter 'n': default expected an integer, got 'x'"):
        toy([{"step": "emit"}], parameters={"n": {"type": "integer", "default": "x"}})


def test_unknown_step_and_keys_name_what_is_known() -> None:
    with pytest.raises(
        PipelineError,
        match=r"unknown step 'train' in catalog 'tests.pipeline.toysteps' \(known steps: double, emit, filldisk, node, registrar, sleeper, ticker, total, trainer, writer\)",
    ):
        toy([{"step": "train"}])
    with pytest.raises(PipelineError, match=r"unknown top-level key 'stages'"):
        pipeline_from_dict({"name": "x", "catalog": "tests.pipeline.toysteps", "stages": [], "steps": [{"step": "emit"}]})


def test_missing_pipeline_lists_the_known_ones() -> None:
    with pytest.raises(PipelineError, match="no pipeline 'nope'") as info:
        load_pipeline("nope", search=[PIPELINES])
    assert "numbers" in info.value.hint


def test_invalid_yaml_is_a_pipeline_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsteps: [ {step: emit, config: {count: ${n}} ]\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_pipeline(str(bad))


def test_python_pipelines_load_too(tmp_path: Path) -> None:
    source = tmp_path / "py_numbers.py"
    source.write_text(
        "from skyops.pipeline.definition import pipeline_from_dict\n"
        "PIPELINE = pipeline_from_dict({'name': 'py-numbers', 'catalog': 'tests.pipeline.toysteps', 'steps': [{'step': 'emit'}, {'step': 'double'}]})\n"
    )
    pipeline = load_pipeline("py_numbers", search=[tmp_path])
    assert [str(e) for e in pipeline.edges] == ["emit.numbers -> double.numbers  (only upstream numbers output matching by name)"]


def test_every_bad_parameter_is_reported_at_once(numbers) -> None:
    with pytest.raises(ConfigError) as info:
        numbers.resolve_parameters({"count": "three", "factor": "2.5", "epochs": "3", "lr": "1"})
    assert info.value.message == (
        "3 problems in the --param values of pipeline 'numbers':\n"
        "  - --param count=three: expected an integer, got 'three'\n"
        "  - --param factor=2.5: expected an integer, got '2.5'\n"
        "  - pipeline 'numbers' has no parameter 'epochs', 'lr'"
    )
    assert info.value.hint == "parameters: count (integer, default 3), factor (integer, default 2)"


def test_a_nan_parameter_is_refused_before_anything_runs() -> None:
    pipeline = toy([{"step": "sleeper", "config": {"seconds": "${wait}"}}], parameters={"wait": {"type": "float", "default": 0.1}})
    with pytest.raises(ConfigError, match=r"^--param wait=nan: expected a finite number, got 'nan'$") as info:
        pipeline.resolve_parameters({"wait": "nan"})
    assert info.value.hint == "wait is a float parameter"


def test_resolve_configs_reports_every_steps_problems_at_once() -> None:
    pipeline = toy(
        [{"name": "a", "step": "emit", "config": {"count": "${n}"}}, {"name": "b", "step": "emit", "config": {"count": "${n}"}}],
        parameters={"n": {"type": "integer", "default": 3}},
    )
    assert {name: c.count for name, c in pipeline.resolve_configs({"n": 5}).items()} == {"a": 5, "b": 5}  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as info:
        pipeline.resolve_configs({"n": 0})
    assert info.value.message == (
        "2 problems in the step configs of pipeline 'toy':\n"
        "  - step 'a' config: count: 0 must be >= 1\n"
        "  - step 'b' config: count: 0 must be >= 1"
    )
    assert info.value.hint == "the values come from --param n; change them or the pipeline YAML"


def test_the_engine_reports_every_steps_config_problems_before_running(make_engine, state) -> None:
    pipeline = toy(
        [{"name": "a", "step": "emit", "config": {"count": "${n}"}}, {"name": "b", "step": "emit", "config": {"count": "${n}"}}],
        parameters={"n": {"type": "integer", "default": 3}},
    )
    with pytest.raises(ConfigError, match=r"^2 problems in the step configs of pipeline 'toy':"):
        make_engine().run(pipeline, {"n": "0"})
    assert not (state.root / "runs").exists()  # nothing started
