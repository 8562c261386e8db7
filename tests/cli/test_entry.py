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
    assert (
        listed
        == list(COMMANDS)
        == [
            "run",
            "tune",
            "ui",
            "pipeline",
            "runs",
            "data",
            "experiments",
            "models",
            "serve",
            "monitor",
            "deploy",
            "audit",
            "roles",
            "sagemaker",
            "infra",
            "cost",
            "demo",
        ]
    )


def test_a_group_runs_its_subcommand(tmp_path: Path) -> None:
    done = skyops("pipeline", "check", str(NUMBERS), state=tmp_path, probe=True)
    assert done.returncode == 0 and done.stdout.startswith("ok: 3 steps aligned"), done.stderr
    assert imported(done) == {"skyops.cli.pipeline_cmd"}


def test_help_shows_each_arguments_default_and_each_options_default_and_range(tmp_path: Path) -> None:
    run_help = skyops("run", "--help", state=tmp_path).stdout
    assert "[NAME]  Pipeline name (pipelines/NAME.yaml) or path to a pipeline file." in run_help
    assert "[default: drone-detection]" in run_help and "[default: 2; x>=1]" in run_help
    convert_help = " ".join(skyops("data", "convert", "--help", state=tmp_path).stdout.split())  # unwrapped
    assert "Usage: skyops data convert [OPTIONS] SOURCE TARGET" in convert_help
    assert "SOURCE Dataset folder (or COCO JSON / Ground Truth manifest). [required]" in convert_help
    assert (
        "-f, --format [auto|visdrone|coco|voc|groundtruth|yolo|dota|dior] The source's format (any case); auto detects it. [default: auto]"
        in (convert_help)
    )
    assert "--keep-ignored / --no-keep-ignored" in convert_help and "[default: no- keep-ignored]" in convert_help
    assert "--classes TEXT Comma-separated target class names (default: the source's). --keep-ignored" in convert_help  # no '""'
