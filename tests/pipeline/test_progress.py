"""Progress reports: a line in the step's log and a JSON line in the progress file the engine names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skyops.pipeline.catalog import catalog_of
from skyops.pipeline.contract import PROGRESS_ENV, RUN_CONTEXT_ENV
from skyops.pipeline.runtime import PATHS_ENV, report_progress, run
from tests.pipeline.conftest import toy


def test_report_prints_a_line_and_appends_to_the_progress_file(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "step.progress.jsonl"
    monkeypatch.setenv(PROGRESS_ENV, str(path))
    report_progress(1, 3, metrics={"box_loss": 1.23456, "mAP50(B)": 0.5})
    report_progress(2, 3, unit="image")
    assert capsys.readouterr().out == "epoch 1/3: box_loss 1.235, mAP50(B) 0.500\nimage 2/3\n"
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert (first["done"], first["total"], first["unit"], list(first["metrics"])) == (1, 3, "epoch", ["box_loss", "mAP50(B)"])
    assert (second["done"], second["unit"], second["metrics"]) == (2, "image", {})
    assert second["time"] >= first["time"] >= first["started"]


def test_report_without_a_progress_file_only_prints(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    report_progress(3, 3)
    assert capsys.readouterr().out == "epoch 3/3\n" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("done", "total"), [(4, 3), (-1, 3), (0, 0)])
def test_report_refuses_impossible_counts(done: int, total: int) -> None:
    with pytest.raises(ValueError, match=rf"report_progress\({done}, {total}\): expected 0 <= done <= total and total >= 1"):
        report_progress(done, total)


def test_an_unwritable_progress_file_warns_once_and_the_step_goes_on(tmp_path: Path, monkeypatch, capsys) -> None:
    path = tmp_path / "no-such-folder" / "step.progress.jsonl"
    monkeypatch.setenv(PROGRESS_ENV, str(path))
    report_progress(1, 2)
    report_progress(2, 2)
    captured = capsys.readouterr()
    assert captured.out == "epoch 1/2\nepoch 2/2\n"
    assert captured.err == f"warning: cannot write the progress file {path}: No such file or directory; progress goes to this log only\n"


def test_run_reports_to_the_file_its_environment_names(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    ticker = catalog_of("tests.pipeline.toysteps").get("ticker")
    out, path = tmp_path / "out", tmp_path / "ticker.progress.jsonl"
    environ = {PATHS_ENV: json.dumps({"/opt/ml/processing/output/ticks": str(out)}), PROGRESS_ENV: str(path)}
    assert run(ticker, ["--ticks", "2", "--seconds", "0"], environ) == 0
    assert [json.loads(line)["done"] for line in path.read_text().splitlines()] == [1, 2]
    assert capsys.readouterr().out == "epoch 1/2: loss 1.000, score 0.500\nepoch 2/2: loss 0.500, score 1.000\n"


def test_engine_names_each_steps_progress_file_and_keeps_it_out_of_the_key(make_engine, state) -> None:
    assert PROGRESS_ENV in RUN_CONTEXT_ENV  # set by the engine for every step, like the run id
    pipeline = toy([{"step": "ticker", "config": {"ticks": 3, "seconds": 0}}])
    record = make_engine().run(pipeline)
    step = record.steps["ticker"]
    assert step.status == "done"
    assert step.progress == str(state.runs / record.run_id / "logs" / "ticker.progress.jsonl")
    assert [json.loads(line)["done"] for line in Path(step.progress).read_text().splitlines()] == [1, 2, 3]
    again = make_engine().run(pipeline)  # another run, another progress file: the same key
    assert again.steps["ticker"].status == "cached" and again.steps["ticker"].cache_key == step.cache_key
