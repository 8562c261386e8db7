"""OMP_WAIT_POLICY: PASSIVE for skyops and the steps it starts, unless the user chose (skyops/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import os, skyops; print(os.environ.get('OMP_WAIT_POLICY'))"


def _policy(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_importing_skyops_makes_openmp_threads_wait_passively() -> None:
    assert _policy() == "PASSIVE"


def test_a_policy_the_user_set_is_kept() -> None:
    assert _policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
