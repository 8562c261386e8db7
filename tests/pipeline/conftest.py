"""Small named fixtures for the core: a state dir, an engine, the toy pipelines, a scratch step package."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from skyops.pipeline.definition import Pipeline, load_pipeline, pipeline_from_dict
from skyops.pipeline.engine import LocalEngine, StateDir
from skyops.pipeline.lineage import RunRecord
from skyops.pipeline.lineage import list_records as _list_records

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


class InProcessLauncher:
    """Runs a step's script in the engine's own process (in its worker thread), the way
    `python -m` would, minus the process: fast enough for many property-based examples."""

    def __init__(self) -> None:
        self.stopped = False

    def launch(self, module: str, argv: tuple[str, ...], env: dict[str, str], log, warm: str = "") -> int:
        from skyops.pipeline.launch import STOPPED
        from skyops.pipeline.runtime import run

        if self.stopped:
            return STOPPED
        definition = importlib.import_module(f"{module}.script").main
        try:
            return run(definition, argv, env)
        except Exception as e:  # what `python -m` does with an uncaught exception: report it, exit 1
            log.write(f"{type(e).__name__}: {e}\n".encode())
            return 1

    def terminate(self) -> None:
        self.stopped = True

    def close(self) -> None:
        pass


def run_within(engine: LocalEngine, pipeline: Pipeline, seconds: float = 120, **kwargs: object):
    """engine.run(...), failing the test if it has not returned after `seconds` (a hang, not slowness)."""
    import threading

    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["record"] = engine.run(pipeline, **kwargs)  # type: ignore[arg-type]
        except BaseException as e:
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"run() of {pipeline.name!r} did not return within {seconds} s: the scheduler hangs")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["record"]


def wait_for(predicate: Callable[[], object], what: str, seconds: float = 60) -> object:
    """Poll until `predicate()` is truthy; fail the test naming `what` if it never is."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail(f"{what} never happened")


TRAINER_YAML = """name: training
catalog: tests.pipeline.toysteps
parameters:
  tag: {type: string, default: a}
steps:
  - step: trainer
    config: {tag: '${tag}', epochs: 2, hold: true}
"""


@pytest.fixture
def training(tmp_path: Path) -> Path:
    path = tmp_path / "training.yaml"
    path.write_text(TRAINER_YAML)
    return path


def start_run(pipeline: Path, state: Path, *args: str) -> subprocess.Popen[str]:
    """`skyops run PIPELINE ARGS...` on `state`, in the background (wide output: no wrapped tables)."""
    return subprocess.Popen(
        [sys.executable, "-m", "skyops", "run", str(pipeline), *args],
        env={**os.environ, "SKYOPS_STATE_DIR": str(state), "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def training_folders(state: Path) -> dict[str, Path]:
    """tag -> checkpoint folder of each trainer execution that has started."""
    folders = state / "checkpoints"
    return {(f / "tag").read_text(): f for f in folders.iterdir() if (f / "pid").is_file()} if folders.is_dir() else {}


def records(state: Path) -> list[RunRecord]:
    return _list_records(state / "runs")


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    return out


def statuses(record) -> dict[str, str]:
    return {name: str(step.status) for name, step in record.steps.items()}


def read_output_text(record, step: str, port: str, file: str) -> str:
    return Path(record.steps[step].outputs[port]["path"], file).read_text()
