"""The search space file: parsed into typed ranges, checked against the pipeline's parameters, every problem at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from skyops.errors import ConfigError
from skyops.pipeline.definition import Pipeline
from skyops.pipeline.search import Choice, FloatRange, IntRange, Objective, load_search_space, search_space_path
from tests.pipeline.conftest import toy


@pytest.fixture
def pipeline() -> Pipeline:
    """count (integer, the emit step needs >= 1), seconds (float), label (string), fast (boolean)."""
    return toy(
        [{"step": "emit", "config": {"count": "${count}"}}, {"step": "ticker", "config": {"seconds": "${seconds}"}}],
        parameters={
            "count": {"type": "integer", "default": 3},
            "seconds": {"type": "float", "default": 0.1},
            "label": {"type": "string", "default": "a"},
            "fast": {"type": "boolean", "default": False},
        },
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "toy.tune.yaml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
    objective: {metric: score, direction: minimize}
    trials: 7
    parameters:
      seconds: {type: float, low: 0.001, high: 0.5, log: true}
      count: {type: int, low: 1, high: 9}
      label: {type: categorical, choices: [a, b]}
      fast: {type: categorical, choices: [true, false]}
    pruning: {warmup_epochs: 2}
    sagemaker: {max_parallel_jobs: 2, strategy: Bayesian}
"""


def test_a_good_file_parses_into_typed_ranges_in_file_order(tmp_path: Path, pipeline: Pipeline) -> None:
    path = write(tmp_path, GOOD)
    space = load_search_space(path, pipeline)
    assert space.objective == Objective(metric="score", direction="minimize")
    assert space.parameters == {
        "seconds": FloatRange(0.001, 0.5, log=True),
        "count": IntRange(1, 9),
        "label": Choice(("a", "b")),
        "fast": Choice((True, False)),
    }
    assert list(space.parameters) == ["seconds", "count", "label", "fast"]
    assert (space.trials, space.warmup_epochs, space.source) == (7, 2, path)
    assert dict(space.sagemaker) == {"max_parallel_jobs": 2, "strategy": "Bayesian"}


def test_optional_sections_take_their_defaults(tmp_path: Path, pipeline: Pipeline) -> None:
    path = write(tmp_path, "objective: {metric: score, direction: maximize}\nparameters: {count: {type: int, low: 1, high: 4}}\n")
    space = load_search_space(path, pipeline)
    assert (space.trials, space.warmup_epochs, dict(space.sagemaker)) == (20, 0, {})


def test_integer_choices_on_a_float_parameter_become_floats(tmp_path: Path, pipeline: Pipeline) -> None:
    path = write(
        tmp_path, "objective: {metric: score, direction: maximize}\nparameters: {seconds: {type: categorical, choices: [1, 0.5]}}\n"
    )
    choice = load_search_space(path, pipeline).parameters["seconds"]
    assert isinstance(choice, Choice) and choice == Choice((1.0, 0.5)) and isinstance(choice.choices[0], float)


def test_the_space_file_sits_beside_the_pipeline_with_the_same_stem() -> None:
    assert search_space_path(Path("pipelines/drone-detection.yaml")) == Path("pipelines/drone-detection.tune.yaml")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        (
            "nope: {type: float, low: 0.1, high: 1}",
            r"parameter 'nope': pipeline 'toy' declares no such parameter \(parameters: count, seconds",
        ),
        ("count: {type: float, low: 1, high: 9}", r"parameter 'count': a float range on an integer parameter \(expected type: int\)"),
        ("seconds: {type: int, low: 1, high: 9}", r"parameter 'seconds': an int range on a float parameter \(expected type: float\)"),
        ("label: {type: int, low: 1, high: 9}", r"parameter 'label': an int range on a string parameter \(expected categorical choices\)"),
        ("seconds: {type: float, low: 0.5, high: 0.5}", r"parameter 'seconds': low 0.5 must be below high 0.5"),
        ("count: {type: int, low: 5, high: 2}", r"parameter 'count': low 5 must be below high 2"),
        (
            "seconds: {type: float, low: 0, high: 1, log: true}",
            r"parameter 'seconds': a log range needs low > 0, got 0 \(raise low or drop log\)",
        ),
        ("count: {type: int, low: 1.5, high: 4}", r"parameter 'count': low must be an integer, got 1.5"),
        ("seconds: {type: float, low: .nan, high: 1}", r"parameter 'seconds': low must be a finite number, got nan"),
        ("seconds: {type: float, low: 0.1, high: 1, log: yes please}", r"parameter 'seconds': log must be true or false"),
        ("label: {type: categorical, choices: []}", r"parameter 'label': choices must be a non-empty list, got \[\]"),
        ("count: {type: categorical, choices: [8, '16']}", r"parameter 'count': choice '16' is not an integer value"),
        ("fast: {type: categorical, choices: [true, 1]}", r"parameter 'fast': choice 1 is not a boolean value"),
        ("label: {type: categorical, choices: [a, a]}", r"parameter 'label': choice 'a' is listed twice"),
        (
            "count: {type: int, low: 1, high: 9, step: 2}",
            r"parameter 'count': unknown key 'step' for type int \(allowed: high, log, low, type\)",
        ),
        ("count: {type: uniform, low: 1, high: 9}", r"parameter 'count': expected \{type: float\|int\|categorical, ...\}, got 'uniform'"),
        (
            "count: {type: int, low: 0, high: 4}",
            r"parameter 'count': 0 is refused by the pipeline \(step 'emit' config: count: 0 must be >= 1\)",
        ),
    ],
)
def test_each_bad_parameter_is_one_line_naming_file_parameter_and_expectation(
    tmp_path: Path, pipeline: Pipeline, parameters: str, expected: str
) -> None:
    path = write(tmp_path, f"objective: {{metric: score, direction: maximize}}\nparameters:\n  {parameters}\n")
    with pytest.raises(ConfigError, match=f"^search space {path}: {expected}") as caught:
        load_search_space(path, pipeline)
    assert "\n" not in caught.value.message
    assert "docs/tuning.md" in caught.value.hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("objective: {metric: score, direction: up}", r"objective.direction: expected maximize or minimize, got 'up'"),
        ("objective: {direction: maximize}", r"objective.metric: expected \{metric: NAME, direction: maximize\|minimize\}, got None"),
        ("objective: map50", r"objective: expected \{metric: NAME"),
        ("objective: {metric: score, goal: high}", r"objective: unknown key 'goal'"),
        ("objective: {metric: score}\ntrials: 0", r"trials: expected an integer >= 1, got 0"),
        ("objective: {metric: score}\npruning: {warmup_epochs: -1}", r"pruning.warmup_epochs: expected an integer >= 0, got -1"),
        ("objective: {metric: score}\npruning: {patience: 3}", r"pruning: unknown key 'patience' \(allowed: warmup_epochs\)"),
        ("objective: {metric: score}\nsagemaker: [1]", r"sagemaker: expected a mapping"),
        (
            "objective: {metric: score}\nsearch: grid",
            r"unknown key 'search' \(allowed: objective, parameters, pruning, sagemaker, trials\)",
        ),
    ],
)
def test_each_bad_section_is_one_line(tmp_path: Path, pipeline: Pipeline, text: str, expected: str) -> None:
    path = write(tmp_path, text + "\nparameters: {count: {type: int, low: 1, high: 4}}\n")
    with pytest.raises(ConfigError, match=f"^search space {path}: {expected}"):
        load_search_space(path, pipeline)


def test_every_problem_is_reported_at_once_sorted(tmp_path: Path, pipeline: Pipeline) -> None:
    path = write(
        tmp_path,
        """
        objective: {metric: score, direction: sideways}
        parameters:
          nope: {type: float, low: 0, high: 1}
          count: {type: float, low: 1, high: 2}
          seconds: {type: float, low: 2, high: 1}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_search_space(path, pipeline)
    assert caught.value.message.splitlines()[0] == f"4 problems in search space {path}:"
    assert caught.value.problems == sorted(caught.value.problems)
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "objective.direction",
        "parameter 'count'",
        "parameter 'nope'",
        "parameter 'seconds'",
    ]


def test_a_missing_or_unreadable_file_is_one_line(tmp_path: Path, pipeline: Pipeline) -> None:
    with pytest.raises(ConfigError, match=rf"^no search space file {tmp_path}/absent.tune.yaml$"):
        load_search_space(tmp_path / "absent.tune.yaml", pipeline)
    with pytest.raises(ConfigError, match=r": not valid YAML \("):
        load_search_space(write(tmp_path, "objective: [unclosed\n"), pipeline)
    with pytest.raises(ConfigError, match=r": expected a mapping at the top level, got list"):
        load_search_space(write(tmp_path, "- 1\n"), pipeline)
    with pytest.raises(ConfigError, match=r"parameters: expected a mapping of at least one pipeline parameter"):
        load_search_space(write(tmp_path, "objective: {metric: score}\n"), pipeline)
