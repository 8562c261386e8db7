"""requirements-runtime.lock: the dev lock's pins of what skyops[aws] needs, current, and free of dev tools."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from tools.runtime_lock import DEV_LOCK, ROOT, RUNTIME_LOCK, LockError, closure, read_pins, runtime_lock_text

# Tools that must never reach the image (issue 10), besides whatever pyproject's dev extra lists.
DEV_TOOLS = {"pytest", "hypothesis", "ruff", "mypy", "import-linter", "moto", "cfn-lint", "nbclient", "nbformat", "ipykernel"}


def test_every_runtime_pin_is_the_dev_locks_pin() -> None:
    runtime, dev = read_pins(RUNTIME_LOCK), read_pins(DEV_LOCK)
    assert runtime, "the runtime lock is empty"
    assert {name: version for name, version in runtime.items() if dev.get(name) != version} == {}


def test_no_dev_tool_is_in_the_runtime_lock() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    dev = {canonicalize_name(Requirement(r).name) for r in extras["dev"]} | DEV_TOOLS
    runtime = set(read_pins(RUNTIME_LOCK))
    assert runtime & dev == set()
    assert [name for name in runtime if name.startswith("types-")] == []
    assert {"pluggy", "iniconfig", "jupyter-client"} & runtime == set()  # what only the test tools need goes too


def test_the_runtime_lock_is_current() -> None:
    # Fails after a change of pyproject's dependencies or the dev lock: run `make lock` and commit.
    assert RUNTIME_LOCK.read_text() == runtime_lock_text()


def test_the_runtime_lock_holds_every_runtime_dependency_and_what_they_need() -> None:
    runtime = read_pins(RUNTIME_LOCK)
    assert {"ultralytics", "torch", "mlflow", "boto3", "click"} <= set(runtime)  # dependencies and the aws extra
    assert {"sqlalchemy", "setuptools", "nvidia-cublas"} <= set(runtime)  # needed by mlflow, torch, torch's cuda-toolkit[cublas]


def test_an_extra_brings_its_own_requirements() -> None:
    pins = read_pins(DEV_LOCK)
    assert set(closure([Requirement("cuda-toolkit")], pins)) == {"cuda-toolkit"}
    assert set(closure([Requirement("cuda-toolkit[cublas]")], pins)) == {"cuda-toolkit", "nvidia-cublas", "nvidia-cuda-nvrtc"}


def write_project(root: Path, dependencies: list[str], lock: str) -> Path:
    root.mkdir()
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (root / "pyproject.toml").write_text(f'[project]\nname = "x"\ndependencies = [{deps}]\n[project.optional-dependencies]\naws = []\n')
    (root / DEV_LOCK.name).write_text(lock)
    return root


def test_a_dependency_without_a_pin_is_an_error(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", ["rich", "pyyaml"], "rich==15.0.0\nmarkdown-it-py==4.3.0\nmdurl==0.1.2\nPygments==2.21.0\n")
    with pytest.raises(LockError, match=r"pyyaml \(required by pyproject\.toml\) has no pin in requirements-lock\.txt"):
        runtime_lock_text(root)


def test_a_pin_the_venv_does_not_have_is_an_error(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", ["pyyaml"], "PyYAML==5.1\n")
    with pytest.raises(LockError, match=r"pyyaml is installed at 6\.0\.3, pinned at 5\.1: run `make install` first"):
        runtime_lock_text(root)


def test_a_line_that_is_not_a_pin_is_an_error(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", ["pyyaml"], "PyYAML>=6\n")
    with pytest.raises(LockError, match=r"requirements-lock\.txt:1: 'PyYAML>=6' is not a name==version pin"):
        runtime_lock_text(root)


def test_a_pin_outside_a_requirements_range_is_an_error(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", ["pyyaml<6"], "PyYAML==6.0.3\n")
    with pytest.raises(LockError, match=r"pyyaml==6\.0\.3 does not meet pyproject\.toml's requirement pyyaml<6"):
        runtime_lock_text(root)
