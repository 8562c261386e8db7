"""Run records: typed in memory (RunStatus, StepStatus, GateResult), plain JSON in run.json, older records still read."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from skyops.pipeline.gates import GateResult
from skyops.pipeline.lineage import RunStatus, StepStatus, list_records, load_record, new_record, save_record

# A run.json as the engine wrote it before gate verdicts kept their message and guards.
OLDER_RECORD = {
    "run_id": "20250101-000000-abcdef",
    "pipeline": "p",
    "parameters": {"minimum": 5},
    "user": "ana",
    "host": "elsewhere",
    "started": 1.0,
    "steps": {"measure": {"name": "measure", "step_type": "measure", "status": "done"}},
    "status": "gated",
    "ended": 2.0,
    "gates": {"enough": {"passed": False, "details": ["metrics.total = 4 >= 5: FAILED"]}},
}


def test_a_record_round_trips_through_run_json(tmp_path: Path) -> None:
    record = new_record("r1", "p", {"x": 1}, {"a": "a"}, source="")
    record.status = RunStatus.GATED
    record.gates["g"] = GateResult(passed=False, details=("m = 1 >= 2: FAILED",), message="too low", guards=("b",))
    save_record(tmp_path, record)
    saved = json.loads((tmp_path / "r1" / "run.json").read_text())
    assert saved["status"] == "gated" and saved["gates"] == {
        "g": {"passed": False, "details": ["m = 1 >= 2: FAILED"], "message": "too low", "guards": ["b"]}
    }
    again = load_record(tmp_path, "r1")
    assert again.status is RunStatus.GATED and again.gates == record.gates
    assert again.steps["a"].status is StepStatus.PENDING


def test_a_record_written_before_the_types_reads_back(tmp_path: Path) -> None:
    (tmp_path / OLDER_RECORD["run_id"]).mkdir()
    (tmp_path / OLDER_RECORD["run_id"] / "run.json").write_text(json.dumps(OLDER_RECORD))
    record = load_record(tmp_path, "latest")
    assert record.status is RunStatus.GATED
    assert record.gates == {"enough": GateResult(passed=False, details=("metrics.total = 4 >= 5: FAILED",))}
    assert record.gates["enough"].message == "" and record.gates["enough"].guards == ()


def test_a_record_with_an_unknown_status_is_not_a_run(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "run.json").write_text(json.dumps({**OLDER_RECORD, "run_id": "x", "status": "exploded"}))
    assert list_records(tmp_path) == []


def test_a_running_record_whose_engine_is_gone_reads_killed(tmp_path: Path) -> None:
    record = new_record("r2", "p", {}, {"a": "a", "b": "b"}, source="")
    record.steps["a"].status = StepStatus.RUNNING
    record.pid, record.host = 2**22 + 1, socket.gethostname()  # above pid_max's default: no such process
    save_record(tmp_path, record)
    (again,) = list_records(tmp_path)
    assert again.status is RunStatus.KILLED
    assert (again.steps["a"].status, again.steps["b"].status) == (StepStatus.FAILED, StepStatus.SKIPPED)
