"""`skyops run` and `skyops runs show` as a user meets them: parameter errors, the closing summary, the lineage."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = ROOT / "tests" / "pipeline" / "pipelines" / "numbers.yaml"


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
