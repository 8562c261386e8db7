"""The `skyops` entry point: every command listed, each imported only when used, usage errors in one message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from skyops.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "tests" / "pipeline" / "pipelines" / "numbers.yaml"
# Runs `skyops ARGS` in this interpreter, then names the command modules it imported, on stderr.
PROBE = """
import sys
from skyops.cli import main
try:
    main(sys.argv[1:])
finally:
    print("imported:", " ".join(sorted(m for m in sys.modules if m.startswith("skyops.cli.") and m.endswith("_cmd"))), file=sys.stderr)
"""


def skyops(*args: str, state: Path, probe: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKYOPS_STATE_DIR": str(state), "COLUMNS": "200"}
    command = [sys.executable, "-c", PROBE] if probe else [sys.executable, "-m", "skyops"]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)


def imported(done: subprocess.CompletedProcess[str]) -> set[str]:
    line = next(line for line in done.stderr.splitlines() if line.startswith("imported:"))
    return set(line.removeprefix("imported:").split())


def test_run_imports_no_other_commands_module(tmp_path: Path) -> None:
    done = skyops("run", str(NUMBERS), state=tmp_path, probe=True)
    assert done.returncode == 0, done.stderr
    assert imported(done) == {"skyops.cli.run_cmd"}


def test_help_lists_every_command_in_order(tmp_path: Path) -> None:
    done = skyops("--help", state=tmp_path)
    assert done.returncode == 0
    listed = [line.split()[0] for line in done.stdout.split("Commands:\n")[1].splitlines() if line.startswith("  ")]
    assert listed == list(COMMANDS) == ["run", "ui", "pipeline", "runs", "data", "experiments", "models", "deploy", "audit", "sagemaker"]


def test_a_group_runs_its_subcommand(tmp_path: Path) -> None:
    done = skyops("pipeline", "check", str(NUMBERS), state=tmp_path, probe=True)
    assert done.returncode == 0 and done.stdout.startswith("ok: 3 steps aligned"), done.stderr
    assert imported(done) == {"skyops.cli.pipeline_cmd"}
