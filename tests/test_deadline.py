"""SKYOPS_TEST_DEADLINE: tests not started by then are skipped with the reason (tests/conftest.py, .ci/run)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = "def test_one():\n    assert True\n\n\ndef test_two():\n    assert True\n"


def _run(tmp_path: Path, deadline: float | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "SKYOPS_TEST_DEADLINE"}
    if deadline is not None:
        env["SKYOPS_TEST_DEADLINE"] = str(deadline)
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--confcutdir", str(ROOT / "tests"), "-c", os.devnull]
    command += ["-p", "tests.conftest", str(tmp_path / "test_sample.py")]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_tests_run_before_the_deadline(tmp_path: Path) -> None:
    done = _run(tmp_path, time.time() + 3600)
    assert "2 passed" in done.stdout, done.stdout


def test_tests_after_the_deadline_are_skipped_with_the_reason(tmp_path: Path) -> None:
    done = _run(tmp_path, time.time() - 1)
    assert "2 skipped" in done.stdout, done.stdout
    assert "SKYOPS_TEST_DEADLINE passed: the time budget of this run was used before this test started" in done.stdout
