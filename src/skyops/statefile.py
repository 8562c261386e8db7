"""Reading the JSON files skyops keeps for itself, so a damaged one is one clear error, not a traceback.

State files (the champion pointer, a deployment record, a step's training/evaluation/registration
record) are written atomically, but a disk can fill, a person can edit one, a copy can be cut short.
`read_json_state` turns every way of being wrong into a `StateFileError` that names the file, says
what it should hold and how to recover; it never echoes the file's content (only JSON type names).

    data = read_json_state(path, what="champion pointer", expected=POINTER, hint="...",
                           problems=lambda v: shape_problems(v, [("version", is_version, "a positive integer")]))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from skyops.errors import StateFileError

Check = Callable[[Any], bool]
Field = tuple[str, Check, str]  # key, check, what the check expects ("a positive integer")


def read_json_state(path: Path, *, what: str, expected: str, hint: str, problems: Callable[[Any], list[str]] | None = None) -> Any:
    """The parsed content of `path`, or StateFileError when it is unreadable, empty, not JSON or of the wrong shape.

    Args:
        path: the file (its absence is the caller's business: this raises for it too).
        what: what the file is, for the message: "champion pointer".
        expected: what it should hold, for the message: 'a JSON object {"model", "version", "weights"}'.
        hint: how to recover, one sentence.
        problems: the shape check; returns what is wrong with the parsed value (empty: nothing).
    """
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise _error(what, path, f"cannot be read ({e.strerror or type(e).__name__})", expected, hint) from None
    if not raw.strip():
        raise _error(what, path, "is empty", expected, hint)
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _error(what, path, "is not UTF-8 text", expected, hint) from None
    except json.JSONDecodeError as e:
        raise _error(what, path, f"is not JSON ({e.msg} at line {e.lineno} column {e.colno})", expected, hint) from None
    found = problems(value) if problems else []
    if found:
        raise _error(what, path, "has the wrong shape: " + "; ".join(found), expected, hint)
    return value


def shape_problems(value: Any, fields: Sequence[Field], *, at: str = "") -> list[str]:
    """What keeps `value` from being an object with `fields` (extra keys are allowed).

    Args:
        at: where `value` sits in the document, as a key prefix ("metrics."), for nested objects.
    """
    if not isinstance(value, dict):
        return [f"{repr(at.rstrip('.')) if at else 'it'} holds {json_type(value)}, not an object"]
    found = []
    for key, check, expectation in fields:
        if key not in value:
            found.append(f"{at + key!r} is missing")
        elif not check(value[key]):
            found.append(f"{at + key!r} is {json_type(value[key])}, not {expectation}")
    return found


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type ('a string', 'null', ...): safe to print, unlike the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    return "an array" if isinstance(value, list) else "an object"


def is_text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def is_version(value: Any) -> bool:
    """A registry version number: a positive integer (JSON has no other way to say it)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _error(what: str, path: Path, problem: str, expected: str, hint: str) -> StateFileError:
    return StateFileError(f"{what} {path} {problem}; expected {expected}", hint=hint)
