"""`skyops run -P FILE`: parameters from a file, `-p` over them, every bad entry named in one error."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.clirun import cli
from tests.tuning.conftest import ROOT

NUMBERS = ROOT / "tests" / "pipeline" / "pipelines" / "numbers.yaml"  # parameters count, factor (integers)


@pytest.fixture(autouse=True)
def _state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(tmp_path / "state"))


def test_the_file_sets_parameters_and_p_overrides_it(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from skyops.pipeline.lineage import load_record

    params = tmp_path / "best.json"
    params.write_text('{"count": 4, "factor": 5}')
    code, out, err = cli(capsys, "run", str(NUMBERS), "-P", str(params), "-p", "factor=3")
    assert code == 0, out + err
    record = load_record(tmp_path / "state" / "runs", "latest")
    assert (record.parameters["count"], record.parameters["factor"]) == (4, 3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{count: 4, colour: red}", r"pipeline 'numbers' has no parameter 'colour' \(parameters: count, factor\)"),
        ("count: many", r"count: expected an integer, got 'many' \(count is an integer parameter\)"),
        ("count: [1, 2]", r"count: expected a single integer value, got \[1, 2\]"),
        ("- 1\n", r"expected a mapping of parameter names to values, got list"),
        ("count: [unclosed\n", r"not valid YAML or JSON \("),
    ],
)
def test_a_bad_file_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, expected: str) -> None:
    import re

    params = tmp_path / "params.yaml"
    params.write_text(text)
    code, out, err = cli(capsys, "run", str(NUMBERS), "-P", str(params))
    assert code == 2 and out == ""
    error, hint = err.splitlines()
    assert re.match(rf"error: params file {params}: {expected}", error), error
    assert hint == "hint: a params file maps parameter names to values, e.g. {epochs: 8, lr0: 0.01}"


def test_the_default_pipelines_search_space_loads() -> None:
    from skyops.pipeline.definition import load_pipeline
    from skyops.pipeline.search import Choice, FloatRange, IntRange, Objective, load_search_space, search_space_path

    pipeline_file = ROOT / "pipelines" / "drone-detection.yaml"
    space = load_search_space(search_space_path(pipeline_file), load_pipeline(str(pipeline_file)))
    assert space.objective == Objective(metric="map50", direction="maximize")
    assert space.parameters == {
        "epochs": IntRange(5, 8),
        "lr0": FloatRange(0.0008, 0.005, log=True),
        "warmup_epochs": FloatRange(0.0, 3.0),
        "batch": Choice((8, 16)),
    }
    assert (space.trials, space.warmup_epochs) == (20, 2)


def test_the_early_import_of_the_plotting_libraries_leaves_a_missing_one_to_the_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """The study imports its plots' libraries before the first trial; a missing one is reported where the plots are drawn."""
    import optuna

    from skyops.training import tune_study

    monkeypatch.setitem(__import__("sys").modules, "optuna.importance", None)  # `import optuna.importance` raises ImportError
    tune_study._import_plotting()  # nothing raised here: the study goes on to its trials
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    logged: list[str] = []
    client = SimpleNamespace(log_artifact=lambda _run, path, folder: logged.append(f"{folder}/{Path(path).name}"))
    with pytest.raises(ImportError, match=r"optuna\.importance"):
        tune_study._log_plots(study, client=client, parent="", complete=2)
    assert logged == ["plots/optimization-history.png"]  # drawn before the importances needed the missing module


def test_the_study_imports_the_plotting_libraries_on_its_own_thread_before_the_first_trial(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """matplotlib's import calls ast.parse; beside the engine's own (cache keys) in another thread, CPython 3.11
    fails one of them ("AST constructor recursion depth mismatch"): CI saw it once, so no import thread."""
    import threading

    from skyops.training import tune_study

    seen: list[object] = []

    def record_then_stop() -> None:
        seen.append(threading.current_thread())
        raise LookupError("stopped after the import")

    monkeypatch.setattr(tune_study, "_import_plotting", record_then_stop)
    monkeypatch.setattr(tune_study, "up_to", lambda *_a: None)
    monkeypatch.setattr(tune_study, "open_study", lambda *_a: (None, []))
    monkeypatch.setattr(tune_study, "_parent_run", lambda *_a: "parent")
    monkeypatch.setattr(tune_study, "run_trial", lambda *_a: seen.append("trial"))
    engine = SimpleNamespace(warm_up=lambda _p: seen.append("warm-up"))
    request = SimpleNamespace(pipeline=None, step="train", study="s", trials=1)
    with pytest.raises(LookupError, match="stopped after the import"):
        tune_study.tune(request, engine=engine, state_dir=tmp_path, store=None, experiment="e", params_file=tmp_path / "p.json")  # type: ignore[arg-type]
    assert seen == ["warm-up", threading.main_thread()]  # the host warms up meanwhile; no trial ran yet
