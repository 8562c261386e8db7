"""Notebook fixtures: the committed notebooks, and `execute`: one run headless with nbclient on new parameters."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
DATA_SCIENTIST = NOTEBOOKS / "data-scientist" / "explore-train-compare.ipynb"
ML_ENGINEER = NOTEBOOKS / "ml-engineer" / "pipeline-deploy-monitor.ipynb"
END_TO_END = NOTEBOOKS / "ml-engineer" / "end-to-end-demo.ipynb"
ALL = (DATA_SCIENTIST, ML_ENGINEER, END_TO_END)
CELL_TIMEOUT_S = 7200  # one cell may run two trainings (the ML Engineer notebook) on a loaded 2-core machine


def parameters_source(values: dict[str, Any]) -> str:
    return "\n".join(f"{name} = {value!r}" for name, value in values.items()) + "\n"


def execute(path: Path, values: dict[str, Any], *, stop_before: str | None = None) -> Any:
    """Run the notebook at `path` in a python3 kernel of this interpreter (ipykernel), from its own folder, with its
    `parameters` cell replaced by `values`; `stop_before`: drop the cells from the first markdown cell starting with it.
    Returns the executed notebook (nbformat node). A cell that raises fails with nbclient's CellExecutionError."""
    import nbformat
    from nbclient import NotebookClient

    book = nbformat.read(path, as_version=4)
    [parameters] = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
    parameters.source = parameters_source(values)
    if stop_before is not None:
        cut = next(i for i, c in enumerate(book.cells) if c.cell_type == "markdown" and c.source.startswith(stop_before))
        book.cells = book.cells[:cut]
    NotebookClient(book, kernel_name="python3", timeout=CELL_TIMEOUT_S, resources={"metadata": {"path": str(path.parent)}}).execute()
    return book


def parameters(path: Path) -> dict[str, Any]:
    """The notebook's own defaults: the literal assignments of its `parameters` cell."""
    import ast

    import nbformat

    [cell] = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    return {
        t.id: ast.literal_eval(n.value)
        for n in ast.parse(cell.source).body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }


def free_port() -> int:
    """A port nothing listens on now (the kernel picks it), for a deployment that must not meet another server."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def streams(book: Any) -> str:
    """Everything the executed notebook printed (stdout and stderr streams), in order."""
    return "".join(o.get("text", "") for c in book.cells for o in c.get("outputs", []) if o.output_type == "stream")


def outputs(book: Any, kind: str) -> list[Any]:
    """Every output of `kind`: 'error', or a MIME type of display data ('image/png', 'text/html')."""
    found = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            is_error = kind == "error" and output.output_type == "error"
            if is_error or (output.output_type in ("display_data", "execute_result") and kind in output.get("data", {})):
                found.append(output)
    return found


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """The kernel inherits this environment: no project, state or identity of the developer's shell; src importable."""
    for name in ("SKYOPS_PROJECT_DIR", "SKYOPS_STATE_DIR", "SKYOPS_TRACKING_URI", "SKYOPS_USER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' temporary projects land here, removed with it
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    yield tmp_path


Execute = Callable[..., Any]
