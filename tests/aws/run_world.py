"""A real, tiny finished run to push and pull: four toy steps of tests.pipeline.toysteps on the local engine.

    emit (numbers.txt: 1 2 3) -> copy (double with factor 1: the same bytes) -> total (total.txt: 6);  writer (best.pt, notes.txt)

Five files in four output folders, four distinct contents: emit's and copy's numbers.txt are one object.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from skyops.pipeline.definition import pipeline_from_dict
from skyops.pipeline.engine import LocalEngine, StateDir
from skyops.pipeline.lineage import RunRecord, RunStatus

TESTS = Path(__file__).resolve().parents[1]
SKYOPS = Path(importlib.import_module("skyops").__file__).parent  # type: ignore[arg-type]

PIPELINE = {
    "name": "published",
    "catalog": "tests.pipeline.toysteps",
    "steps": [
        {"step": "emit"},
        {"name": "copy", "step": "double", "config": {"factor": 1}, "inputs": {"numbers": "emit.numbers"}},
        {"step": "total", "inputs": {"values": "copy.doubled"}},
        {"step": "writer"},
    ],
}
FILES = {  # step/port/path -> bytes, as the run writes them
    "emit/numbers/numbers.txt": b"1\n2\n3\n",
    "copy/doubled/numbers.txt": b"1\n2\n3\n",
    "total/total/total.txt": b"6\n",
    "writer/model/best.pt": b"weights\n",
    "writer/model/notes.txt": b"trained\n",
}
OBJECTS = len(set(FILES.values()))
OBJECT_BYTES = sum(map(len, set(FILES.values())))  # 24: what a first push uploads


def make_run(state: Path) -> RunRecord:
    """Run the pipeline in `state`; its (succeeded) record."""
    engine = LocalEngine(StateDir(state), code_roots={"skyops": SKYOPS, "tests": TESTS})
    record = engine.run(pipeline_from_dict(PIPELINE))
    assert record.status is RunStatus.SUCCEEDED, [(s.name, s.status, s.error) for s in record.steps.values()]
    return record


def output_files(record: RunRecord) -> dict[str, bytes]:
    """step/port/path -> bytes of every file the record's outputs hold (in the cache)."""
    found = {}
    for name, step in record.steps.items():
        for port, output in step.outputs.items():
            folder = Path(output["path"])
            found.update({f"{name}/{port}/{p.relative_to(folder).as_posix()}": p.read_bytes() for p in folder.rglob("*") if p.is_file()})
    return found


def pulled_files(folder: Path) -> dict[str, bytes]:
    """step/port/path -> bytes of every file a pull wrote, its manifest.json left out."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"
    }


def manifest_json(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    assert isinstance(value, dict)
    return value
