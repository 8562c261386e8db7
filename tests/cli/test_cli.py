"""The `skyops` command as a user meets it: fast help, one-line errors with hints, browsing runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "tests" / "pipeline" / "pipelines" / "numbers.yaml"
HEAVY = ("torch", "ultralytics", "mlflow", "boto3", "botocore", "fastapi", "cv2", "matplotlib", "pydantic", "numpy", "typer")
# Runs `skyops ARGS` in this interpreter, then lists every module it imported, on stderr.
PROBE = """
import sys
from skyops.cli import main
try:
    main(sys.argv[1:])
finally:
    print("modules:", " ".join(sorted(sys.modules)), file=sys.stderr)
"""


def skyops(*args: str, state: Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state), "COLUMNS": "200"}  # wide tables: no wrapped cells
    done = subprocess.run([sys.executable, "-m", "skyops", *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    if check and done.returncode:
        pytest.fail(f"skyops {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def imported_by(*args: str, state: Path) -> set[str]:
    """The modules `skyops ARGS` imports (off a terminal: its output is a pipe)."""
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state)}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stderr.splitlines() if line.startswith("modules:"))
    return set(line.removeprefix("modules:").split())


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_help_imports_no_heavy_library_nor_rich(tmp_path: Path) -> None:
    loaded = top_level(imported_by("--help", state=tmp_path))
    assert loaded.isdisjoint({*HEAVY, "rich"}), sorted(loaded & {*HEAVY, "rich"})


def test_a_cached_run_imports_only_what_it_uses(tmp_path: Path) -> None:
    """No heavy library; off a terminal no rich (plain lines); no SageMaker compiler; no
    `importlib.metadata` (and its `email`) when no step names a library; no `socket`."""
    skyops("run", str(NUMBERS), state=tmp_path, check=True)
    modules = imported_by("run", str(NUMBERS), state=tmp_path)
    loaded = top_level(modules)
    assert loaded.isdisjoint({*HEAVY, "rich", "email", "socket"}), sorted(loaded & {*HEAVY, "rich", "email", "socket"})
    assert not {m for m in modules if m.startswith(("skyops.pipeline.sagemaker", "importlib.metadata"))}


def test_config_error_is_one_line_and_a_hint_with_exit_2(tmp_path: Path) -> None:
    done = skyops("run", str(NUMBERS), "--param", "count=lots", state=tmp_path)
    assert done.returncode == 2
    assert done.stderr == "error: --param count=lots: expected an integer, got 'lots'\nhint: count is an integer parameter\n"


def test_unknown_pipeline_names_known_ones(tmp_path: Path) -> None:
    done = skyops("pipeline", "explain", "no-such-pipeline", state=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: no pipeline 'no-such-pipeline' in ")
    assert (
        done.stderr.splitlines()[-1]
        == "hint: known pipelines: drone-detection, drone-detection-tiled, monitor; or pass a path to a .yaml file"
    )


def test_explain_prints_every_edge_and_why(tmp_path: Path) -> None:
    out = skyops("pipeline", "explain", str(NUMBERS), state=tmp_path, check=True).stdout
    assert "  emit.numbers -> double.numbers  (only upstream numbers output matching by name)" in out
    assert "  double.doubled -> total.values  (only upstream numbers output matching by alias 'values')" in out
    assert "  count (integer) = 3  how many numbers" in out


def test_check_passes_for_aligned_steps(tmp_path: Path) -> None:
    out = skyops("pipeline", "check", str(NUMBERS), state=tmp_path, check=True).stdout
    assert out.startswith("ok: 3 steps aligned")


def test_runs_list_and_show_browse_lineage(tmp_path: Path) -> None:
    skyops("run", str(NUMBERS), state=tmp_path, check=True)
    listing = skyops("runs", "list", state=tmp_path, check=True).stdout
    assert "numbers" in listing and "3 done" in listing
    shown = json.loads(skyops("runs", "show", "latest", "--json", state=tmp_path, check=True).stdout)
    assert shown["status"] == "succeeded" and set(shown["steps"]) == {"emit", "double", "total"}
    text = skyops("runs", "show", shown["run_id"][:15], state=tmp_path, check=True).stdout
    assert f"run {shown['run_id']}  pipeline numbers  succeeded" in text
    assert "    in  numbers: emit.numbers  sha256 " in text


def test_explain_cache_says_why(tmp_path: Path) -> None:
    skyops("run", str(NUMBERS), state=tmp_path, check=True)
    out = skyops("run", str(NUMBERS), "-p", "factor=5", "--explain-cache", state=tmp_path, check=True).stdout
    assert "config changed (factor: 2 -> 5)" in out and "hit " in out


@pytest.mark.slow
def test_ui_serves_mlflow_on_the_projects_store(tmp_path: Path) -> None:
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SKYOPS_STATE_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyops", "ui", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline, page = time.time() + 120, ""
        while time.time() < deadline and not page:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
            except OSError:
                time.sleep(0.5)
        assert "<!doctype html>" in page.lower()
        assert (tmp_path / "mlflow.db").is_file()
    finally:
        proc.terminate()
        proc.wait(30)
