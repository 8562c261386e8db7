"""Small named fixtures for tuning: a state folder shared by the module's studies (the data steps run once), a space file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Tiny data: 12 synthetic 64 px scenes; every trial shares these values.
TINY = ("-p", "images=12", "-p", "image_size=64")


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tune-state")


def env_for(state: Path) -> dict[str, str]:
    return {**os.environ, "SKYOPS_STATE_DIR": str(state), "PYTHONPATH": os.pathsep.join(sys.path), "NO_COLOR": "1"}


def skyops(state: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`skyops ARGS` in a process of its own (a pruned trial stops its run with a signal to that process)."""
    return subprocess.run(
        [sys.executable, "-m", "skyops", *args], cwd=ROOT, env=env_for(state), capture_output=True, text=True, timeout=timeout
    )


def space_file(folder: Path, text: str) -> Path:
    path = folder / "space.tune.yaml"
    path.write_text(textwrap.dedent(text))
    return path
