"""Small named fixtures of the demo tests: a clean environment for the demo's processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo_env() -> dict[str, str]:
    """The caller's environment without skyops settings, with this worktree's sources first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYOPS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH", "")])])
    return env
