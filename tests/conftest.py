"""Session-wide test setup: step processes must import `tests.*`, and no test touches real AWS."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture(autouse=True, scope="session")
def _test_environment() -> None:
    # Step processes are started by the engine with the test's environment: let them import tests.*
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    # Never reach a real AWS endpoint from a test, whatever the developer's shell has.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    os.environ["AWS_MAX_ATTEMPTS"] = "1"


DEADLINE_VARIABLE = "SKYOPS_TEST_DEADLINE"  # epoch seconds; .ci/run sets it for the slow tests it runs on what time is left


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Past the deadline, a test that has not started is skipped, saying so, instead of overrunning CI's limit."""
    deadline = os.environ.get(DEADLINE_VARIABLE)
    if deadline and time.time() > float(deadline):
        pytest.skip(f"{DEADLINE_VARIABLE} passed: the time budget of this run was used before this test started")


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS
