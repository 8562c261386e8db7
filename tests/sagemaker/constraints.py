"""botocore's value constraints on a step's Arguments: length (min/max), pattern and enum of every literal.

botocore's own ParamValidator checks types, required members and minimum lengths only; SageMaker
checks the rest when the pipeline runs, which is too late. This walks the request shape of the
step's API call and checks every literal value against its member's `min`, `max`, `pattern` and
`enum`. Expressions (Get, Std:Join, Std:JsonGet) are checked only where their value is known at
compile time: a parameter's default, or a Std:Join of literals and parameters (with the defaults).

Patterns are Java regular expressions (SageMaker's services match a whole value with them);
`python_pattern` turns the few Java constructs botocore's SageMaker shapes use into Python's `re`:
  1. Unicode categories `\\p{L}`, `\\p{Z}`, ... become explicit ranges (Python's re has no \\p);
     `\\p{Alnum}` is Java's ASCII class [a-zA-Z0-9], `\\p{Print}` its printable ASCII [\\x20-\\x7e];
  2. a UTF-16 surrogate pair `\\uD800\\uDC00` becomes the one code point it encodes (\\U00010000), so
     `\\uD800\\uDC00-\\uDBFF\\uDFFF` is the range of the supplementary planes;
  3. a quantifier on the end anchor (`${1,128}`, which Java accepts and ignores) is dropped;
  4. an inline flag group that does not start the pattern (`a|(?i)b`, Budgets' BudgetName), which Java applies to
     the rest of its enclosing group, becomes a scoped group over that rest (`a|(?i:b)`): Python takes such flags
     only at the start.
Java's `.` also excludes \\r and \\u2028/\\u2029; no value here holds them, so that difference stays.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Mapping
from functools import cache
from typing import Any

from skyops.pipeline.config import to_argument
from skyops.pipeline.sagemaker.expressions import is_expression

_UNKNOWN = object()  # an expression whose value is known only when the pipeline runs
_SURROGATE_PAIR = re.compile(r"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})", re.IGNORECASE)
_CATEGORY = re.compile(r"\\p\{(\w+)\}")
_QUANTIFIED_END = re.compile(r"\$\{\d+(,\d*)?\}")
_POSIX = {"Alnum": "a-zA-Z0-9", "Alpha": "a-zA-Z", "Digit": "0-9", "Print": "\\x20-\\x7e"}
_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "structure": dict,
    "map": dict,
    "list": list,
    "string": str,
    "integer": int,
    "long": int,
    "float": (int, float),
    "double": (int, float),
}


@cache
def _category_ranges(major: str) -> str:
    """Every code point of a Unicode major category (L, N, Z, ...) as character-class ranges."""
    ranges: list[str] = []
    start = previous = -2
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code))[0] != major:
            continue
        if code != previous + 1:
            if start >= 0:
                ranges.append(_range(start, previous))
            start = code
        previous = code
    if start >= 0:
        ranges.append(_range(start, previous))
    return "".join(ranges)


def _range(first: int, last: int) -> str:
    return f"\\U{first:08x}" if first == last else f"\\U{first:08x}-\\U{last:08x}"


def python_pattern(java: str) -> str:
    """A Java regex of botocore's shapes, as a Python `re` pattern (see the module docstring)."""
    text = _SURROGATE_PAIR.sub(lambda m: f"\\U{0x10000 + ((int(m[1], 16) - 0xD800) << 10) + int(m[2], 16) - 0xDC00:08x}", java)
    text = _QUANTIFIED_END.sub("$", text)
    out, depth, i = [], 0, 0
    while i < len(text):
        if text[i] == "\\" and (m := _CATEGORY.match(text, i)):
            name = m[1]
            chars = _POSIX[name] if name in _POSIX else _category_ranges(name[0])
            out.append(chars if depth else f"[{chars}]")
            i = m.end()
            continue
        if text[i] == "\\":
            out.append(text[i : i + 2])
            i += 2
            continue
        if text[i] == "[":
            depth += 1
        elif text[i] == "]" and depth:
            depth -= 1
        out.append(text[i])
        i += 1
    return _scoped_flags("".join(out))


_INLINE_FLAGS = re.compile(r"\(\?([a-zA-Z]+)\)")


def _scoped_flags(text: str) -> str:
    """Rule 4: each `(?flags)` after the start, as `(?flags:...)` up to the end of its enclosing group."""
    while (m := _INLINE_FLAGS.search(text, 1)) is not None:
        depth, i, in_class = 0, m.end(), False
        while i < len(text):
            char = text[i]
            if char == "\\":
                i += 2
                continue
            if in_class:
                in_class = char != "]"
            elif char == "[":
                in_class = True
            elif char == "(":
                depth += 1
            elif char == ")":
                if depth == 0:
                    break
                depth -= 1
            i += 1
        text = f"{text[: m.start()]}(?{m[1]}:{text[m.end() : i]}){text[i:]}"
    return text


@cache
def _compiled(java: str) -> re.Pattern[str]:
    return re.compile(python_pattern(java))


def known_value(value: Any, parameters: Mapping[str, Any]) -> Any:
    """The value an expression has when the pipeline runs with the parameters' defaults, or _UNKNOWN."""
    if not is_expression(value):
        return value
    if "Get" in value:
        name = str(value["Get"]).removeprefix("Parameters.")
        return parameters[name] if value["Get"].startswith("Parameters.") and name in parameters else _UNKNOWN
    if "Std:Join" in value:
        parts = [known_value(v, parameters) for v in value["Std:Join"]["Values"]]
        return _UNKNOWN if any(p is _UNKNOWN for p in parts) else value["Std:Join"]["On"].join(to_argument(p) for p in parts)
    return _UNKNOWN  # Std:JsonGet reads a file written at run time


def constraint_problems(value: Any, shape: Any, path: str, parameters: Mapping[str, Any]) -> list[str]:
    """Every min/max/pattern/enum violation in `value` (a request member of `shape`), each naming its member path."""
    origin = ""
    if is_expression(value):
        resolved = known_value(value, parameters)
        if resolved is _UNKNOWN:
            return []
        get = value.get("Get", "")
        origin = f" (the default of parameter {get.removeprefix('Parameters.')})" if get else " (with the parameters' defaults)"
        value = to_argument(resolved) if shape.type_name == "string" else resolved
    kind, meta, problems = shape.type_name, shape.metadata, []
    if not isinstance(value, _PYTHON_TYPES.get(kind, object)) or (isinstance(value, bool) and kind != "boolean"):
        return []  # a wrong type: botocore's ParamValidator reports it
    if kind == "structure":
        for name, member in value.items():
            if name in shape.members:
                problems += constraint_problems(member, shape.members[name], f"{path}.{name}" if path else name, parameters)
        return problems
    if kind in ("list", "map", "string"):
        size = len(value)
        unit = "characters" if kind == "string" else "entries"
        if size < meta.get("min", 0) or size > meta.get("max", size):
            problems.append(f"{path}: {_show(value)}{origin} has {size} {unit}; botocore's {shape.name} takes {_bounds(meta)}")
    if kind == "list":
        for index, item in enumerate(value):
            problems += constraint_problems(item, shape.member, f"{path}[{index}]", parameters)
    elif kind == "map":
        for key, item in value.items():
            problems += constraint_problems(key, shape.key, f"{path} key {key!r}", parameters)
            problems += constraint_problems(item, shape.value, f"{path}.{key}", parameters)
    elif kind == "string":
        if "pattern" in meta and not _compiled(meta["pattern"]).fullmatch(value):
            problems.append(f"{path}: {_show(value)}{origin} does not match botocore's {shape.name} pattern {meta['pattern']}")
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {_show(value)}{origin} is not one of the values of botocore's {shape.name}")
    elif kind in ("integer", "long", "float", "double") and not meta.get("min", value) <= value <= meta.get("max", value):
        problems.append(f"{path}: {value}{origin} is outside botocore's {shape.name} range {_bounds(meta)}")
    return problems


def _bounds(meta: Mapping[str, Any]) -> str:
    if "max" in meta:
        return f"{meta.get('min', 0)}..{meta['max']}"
    return f">= {meta['min']}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
