"""Small named fixtures for the core: a state dir, an engine, the toy pipelines, a scratch step package."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skyops.pipeline.definition import Pipeline, load_pipeline, pipeline_from_dict
from skyops.pipeline.engine import LocalEngine, StateDir

HERE = Path(__file__).parent
PIPELINES = HERE / "pipelines"
SKYOPS_ROOT = Path(importlib.import_module("skyops").__file__).parent


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state")


@pytest.fixture
def make_engine(state: StateDir) -> Callable[..., LocalEngine]:
    def make(**kwargs: object) -> LocalEngine:
        roots = {"skyops": SKYOPS_ROOT, "tests": HERE.parent, **kwargs.pop("roots", {})}  # type: ignore[dict-item]
        return LocalEngine(state, code_roots=roots, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def numbers() -> Pipeline:
    """emit -> double -> total."""
    return load_pipeline(str(PIPELINES / "numbers.yaml"))


def toy(steps: list[dict], parameters: dict | None = None, name: str = "toy") -> Pipeline:
    """A pipeline of toy steps from plain dicts."""
    return pipeline_from_dict({"name": name, "catalog": "tests.pipeline.toysteps", "parameters": parameters or {}, "steps": steps})


STEP_TEMPLATE = """
from dataclasses import dataclass

from skyops.pipeline import JobKind, NodeType, Port, ScriptContract, StepConfig, StepSpec, processing_input, processing_output
from {package} import CATALOG

SPEC = StepSpec(step_type="{name}", node_type=NodeType.INTERNAL, inputs=(Port(name="src", kind="text", optional=True),), outputs=(Port(name="out", kind="text"),))
CONTRACT = ScriptContract(
    entry_point="{package}.{name}",
    job_kind=JobKind.PROCESSING,
    inputs={{"src": processing_input("src")}},
    outputs={{"out": processing_output("out")}},
    optional_env={{"SCRATCH_MODE": "plain"}},
)


@CATALOG.step(spec=SPEC, contract=CONTRACT)
def main(inputs, outputs, env, args):
{body}
"""


@pytest.fixture
def scratch_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Write a throw-away step catalog package on sys.path; `add(step, body)` adds a step to it."""
    import os

    root = tmp_path / "scratchpkgs"
    package = f"scratch_{tmp_path.name.replace('-', '_')}"
    pkg_dir = root / package
    pkg_dir.mkdir(parents=True)
    (pkg_dir / "__init__.py").write_text("from skyops.pipeline.catalog import Catalog\n\nCATALOG = Catalog(__name__)\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ["PYTHONPATH"]]))

    def add(name: str, body: str) -> Path:
        step_dir = pkg_dir / name
        step_dir.mkdir(exist_ok=True)
        (step_dir / "__init__.py").write_text("")
        (step_dir / "__main__.py").write_text(
            f"import sys\n\nfrom skyops.pipeline.runtime import run\nfrom {package}.{name}.script import main\n\nsys.exit(run(main))\n"
        )
        script = step_dir / "script.py"
        script.write_text(STEP_TEMPLATE.format(package=package, name=name, body=textwrap.indent(textwrap.dedent(body).strip(), "    ")))
        return script

    add.package = package  # type: ignore[attr-defined]
    add.root = root  # type: ignore[attr-defined]
    yield add
    for mod in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[mod]


def statuses(record) -> dict[str, str]:
    return {name: str(step.status) for name, step in record.steps.items()}


def read_output_text(record, step: str, port: str, file: str) -> str:
    return Path(record.steps[step].outputs[port]["path"], file).read_text()
