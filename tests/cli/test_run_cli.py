"""`skyops run` and `skyops runs show` as a user meets them: parameter errors, the closing summary, the lineage."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "tests" / "pipeline" / "pipelines" / "numbers.yaml"
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def skyops(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    """The real command in a child process, its output a pipe (not a terminal), as in CI logs."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["SKYOPS_STATE_DIR"] = str(state)
    return subprocess.run([sys.executable, "-m", "skyops", *args], env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_a_nan_parameter_is_refused_before_anything_runs(tmp_path: Path) -> None:
    done = skyops("run", "-p", "min_map50=nan", state=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: --param min_map50=nan: expected a finite number, got 'nan'\nhint: min_map50 is a float parameter\n"
    assert not (tmp_path / "runs").exists()


def test_every_steps_config_problems_come_at_once(tmp_path: Path) -> None:
    done = skyops("run", "-p", "image_size=100", "-p", "images=0", "-p", "max_invalid_fraction=2", state=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines() == [
        "error: 3 problems in the step configs of pipeline 'drone-detection':",
        "  - step 'ingest' config: synth_images: 0 must be >= 1",
        "  - step 'train' config: imgsz: 100 is not a multiple of 32 (the model's largest stride); use 128",
        "  - step 'validate' config: max_invalid_fraction: 2.0 must be <= 1",
        "hint: the values come from --param image_size, --param images, --param max_invalid_fraction; change them or the pipeline YAML",
    ]


def test_the_summary_off_a_terminal_is_a_plain_table(tmp_path: Path) -> None:
    assert skyops("run", str(NUMBERS), state=tmp_path).returncode == 0
    done = skyops("run", str(NUMBERS), "--explain-cache", state=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("step "))
    assert lines[header - 1].endswith(" of numbers: succeeded") and lines[header].split() == ["step", "status", "time", "cache"]
    rows = lines[header + 1 : header + 4]
    assert [row.split()[:2] for row in rows] == [["emit", "cached"], ["double", "cached"], ["total", "cached"]]
    assert all(re.search(r"  hit [0-9a-f]{12}$", row) for row in rows), rows
    assert len({row.index("hit ") for row in rows} | {lines[header].index("cache")}) == 1  # columns aligned
    assert lines[header + 4].startswith("lineage: skyops runs show ")
    assert not set("│┃━┏") & set(done.stdout)


def long_folder(tmp_path: Path) -> Path:
    """A state folder whose paths are far longer than the 80 columns rich assumes off a terminal."""
    return tmp_path / ("state-folder-with-a-long-name-" * 3)


def test_a_failed_steps_log_path_stays_on_one_line(tmp_path: Path) -> None:
    from skyops.pipeline.lineage import load_record

    state = long_folder(tmp_path)
    env_offset = {"TOY_OFFSET": "not-a-number"}  # the toy `double` step fails on it
    done = subprocess.run(
        [sys.executable, "-m", "skyops", "run", str(NUMBERS)],
        env={**{k: v for k, v in os.environ.items() if k != "COLUMNS"}, "SKYOPS_STATE_DIR": str(state), **env_offset},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stderr
    record = load_record(state / "runs", "latest")
    assert len(record.steps["double"].log) > 160
    assert f"double exited with code 1; log: {record.steps['double'].log}" in done.stdout.splitlines()
    assert f"next       skyops runs show {record.run_id}  ·  skyops models list  ·  skyops ui" in done.stdout.splitlines()


def test_runs_list_rows_are_never_wrapped_off_a_terminal(tmp_path: Path) -> None:
    user = "a-user-name-long-enough-to-push-the-row-past-eighty-columns"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"SKYOPS_STATE_DIR": str(tmp_path), "SKYOPS_USER": user}
    subprocess.run([sys.executable, "-m", "skyops", "run", str(NUMBERS)], env=env, check=True, capture_output=True, timeout=300, cwd=ROOT)
    listing = skyops("runs", "list", state=tmp_path).stdout
    row = next(line for line in listing.splitlines() if "numbers" in line)
    assert user in row and "3 done" in row


def test_runs_show_lists_steps_in_run_order(tmp_path: Path) -> None:
    assert skyops("run", str(NUMBERS), state=tmp_path).returncode == 0
    shown = skyops("runs", "show", "latest", state=tmp_path).stdout
    assert [line.split()[1] for line in shown.splitlines() if line.startswith("- ")] == ["emit", "double", "total"]


@pytest.mark.parametrize("terminal", [False, True], ids=["plain", "rich"])
def test_result_paths_print_whole_and_literally(tmp_path: Path, capsys, terminal: bool) -> None:
    import json

    from rich.console import Console

    from skyops.cli.output import Output, stdout_output
    from skyops.cli.results import print_results
    from skyops.pipeline.lineage import new_record

    outputs = long_folder(tmp_path) / "[bold]outputs"  # brackets are rich markup unless escaped
    outputs.mkdir(parents=True)
    (outputs / "training.json").write_text(
        json.dumps(
            {
                "epochs_completed": 3,
                "device": "cpu",
                "mlflow_run_id": "abc123",
                "experiment": "drone-detection",
                "names": ["car"],
                "data_fingerprint": "f" * 64,
                "seconds": 1.0,
                "imgsz": 64,
            }
        )
    )
    metrics = {"map50": 0.5, "map50_95": 0.25, "precision": 0.6, "recall": 0.4}
    (outputs / "evaluation.json").write_text(
        json.dumps({"metrics": metrics, "dataset": {"split": "test", "images": 8}, "model": {"weights_sha256": "a" * 64}})
    )
    record = new_record("run-1", "drone-detection", {}, {"train": "train"}, "")
    record.steps["train"].outputs = {"model": {"path": str(outputs), "digest": "d"}}
    # Off a terminal (as under pytest) plain text; on one, rich (a wide console here, so nothing wraps).
    out = Output(Console(force_terminal=True, width=1000)) if terminal else stdout_output()
    assert (out.console is not None) == terminal
    print_results(out, record)
    lines = [ANSI.sub("", line) for line in capsys.readouterr().out.splitlines()]
    assert f"model      {outputs / 'best.pt'}  (3 epochs on cpu)" in lines
    assert f"evaluation {outputs / 'evaluation.json'}" in lines
