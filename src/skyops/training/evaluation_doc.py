"""The evaluation document: its JSON Schema, validation, and atomic publication.

The schema (`evaluation_schema.json` beside this file, JSON Schema draft 2020-12, shipped as package
data) is described field by field in docs/evaluation-schema.md. Version 1.1 added the COCO metrics,
the slices, the confusion matrix and the worst images; a 1.0 document (an older champion's) is still
read and validated as 1.0.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from skyops.errors import DataValidationError, problems_error

SCHEMA_VERSION = "1.1"  # what this version writes
READABLE_VERSIONS = ("1.0", "1.1")  # what it reads (a champion's document may be older)
SCHEMA_RESOURCE = "evaluation_schema.json"


@cache
def load_schema() -> dict[str, Any]:
    """The evaluation document's JSON Schema (draft 2020-12), shipped as package data."""
    schema: dict[str, Any] = json.loads(resources.files("skyops.training").joinpath(SCHEMA_RESOURCE).read_text())
    return schema


def validate_evaluation(doc: Any, *, subject: str = "evaluation document") -> None:
    """Check `doc` against the schema, and that every number is finite; report every failing path.

    Raises:
        DataValidationError: one line per problem, e.g. "metrics.map50: 'high' is not of type 'number'".
    """
    from jsonschema import Draft202012Validator  # only needed when validating

    validator = Draft202012Validator(load_schema())
    problems = [f"{_json_path(error.absolute_path)}: {error.message}" for error in validator.iter_errors(doc)]
    problems += [f"{path}: {value!r} is not a finite number (JSON has no NaN or Infinity)" for path, value in _non_finite(doc, [])]
    if problems:
        raise problems_error(
            DataValidationError,
            subject,
            problems,
            hint=f"build it with skyops.training.evaluate.evaluate (schema {SCHEMA_VERSION}, see docs/evaluation-schema.md)",
        )


def write_evaluation(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate `doc` and write it as JSON to `path` atomically (temp file in the same folder, then rename)."""
    validate_evaluation(doc)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_path(parts: Any) -> str:
    """deque(['per_class', 0, 'ap50']) -> 'per_class[0].ap50'; the root is '<document>'."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "<document>"


def _non_finite(value: Any, at: list[str | int]) -> list[tuple[str, float]]:
    if isinstance(value, float) and not np.isfinite(value):
        return [(_json_path(at), value)]
    if isinstance(value, Mapping):
        return [found for key, item in value.items() for found in _non_finite(item, [*at, str(key)])]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _non_finite(item, [*at, i])]
    return []
