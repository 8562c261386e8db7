"""Typed step configs: frozen dataclasses, coerced from YAML values or command-line strings.

Configs are plain dataclasses rather than pydantic models on purpose: a step's subprocess parses its
config on every run, and importing pydantic there would cost more than the rest of the step's
framework overhead together (see docs/adr/0002-step-configs-are-dataclasses.md).

    @dataclass(frozen=True, kw_only=True)
    class TrainConfig(StepConfig):
        epochs: Annotated[int, Range(ge=1)] = 15
        optimizer: Literal["SGD", "AdamW", "auto"] = "auto"
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Literal, get_args, get_origin

from skyops.errors import ConfigError, problems_error


@dataclasses.dataclass(frozen=True, kw_only=True)
class StepConfig:
    """Base of every step config. Subclasses are `@dataclass(frozen=True, kw_only=True)`."""

    def problems(self) -> list[str]:
        """Cross-field checks; return one message per problem (none by default)."""
        return []


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds for a number field: `Annotated[float, Range(ge=0, le=1)]`."""

    ge: float | None = None
    le: float | None = None
    gt: float | None = None

    def problem(self, value: float) -> str | None:
        if self.ge is not None and value < self.ge:
            return f"must be >= {self.ge}"
        if self.gt is not None and value <= self.gt:
            return f"must be > {self.gt}"
        if self.le is not None and value > self.le:
            return f"must be <= {self.le}"
        return None


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(value: Any, tp: Any) -> Any:
    """Convert `value` (a YAML value or a command-line string) to type `tp`, or raise ValueError.

    A choice (Literal, Enum) also matches ignoring case when exactly one choice does; a float must
    be finite.
    """
    origin = get_origin(tp)
    if origin is typing.Annotated:
        base, *meta = get_args(tp)
        result = coerce(value, base)
        for m in meta:
            if isinstance(m, Range) and (msg := m.problem(result)):
                raise ValueError(f"{result!r} {msg}")
        return result
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        is_null = value is None or (isinstance(value, str) and value.lower() in ("", "none", "null"))
        if is_null and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(" or ".join(errors))
    if origin is Literal:
        choices = get_args(tp)
        for choice in choices:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        if (folded := _casefold_match(value, choices)) is not None:
            return folded
        raise ValueError(f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
    if origin in (tuple, list, Sequence):
        if isinstance(value, str):
            value = _json(value, "a JSON list")
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        (item_tp, *_rest) = get_args(tp) or (Any,)
        return tuple(coerce(v, item_tp) for v in value)
    if origin in (dict, Mapping):
        if isinstance(value, str):
            value = _json(value, "a JSON object")
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a mapping, got {value!r}")
        _, val_tp = get_args(tp) or (str, Any)
        return {str(k): coerce(v, val_tp) for k, v in value.items()}
    if tp is Any:
        return value
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(value)
        except ValueError:
            if (folded := _casefold_match(value, tuple(tp))) is not None:
                return folded
            raise ValueError(f"expected one of {', '.join(repr(m.value) for m in tp)}, got {value!r}") from None
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
        if not math.isfinite(number):  # nan passes every range check (nan < 0 and nan > 1 are both False)
            raise ValueError(f"expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (dict, list, tuple)):
            raise ValueError(f"expected a string, got {value!r}")
        return "" if value is None else str(value)
    raise ValueError(f"unsupported config type {tp!r}")


def _casefold_match(value: Any, choices: Sequence[Any]) -> Any:
    """The one choice that equals `value` ignoring case ('COCO' -> 'coco'), else None."""
    if not isinstance(value, str):
        return None
    found = [c for c in choices if str(getattr(c, "value", c)).casefold() == value.casefold()]
    return found[0] if len(found) == 1 else None


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"expected {what}, got {text!r}") from None


def config_fields(cls: type[StepConfig]) -> dict[str, Any]:
    """Field name -> resolved type annotation."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def build_config(cls: type[StepConfig], values: Mapping[str, Any], *, where: str) -> StepConfig:
    """Build a config from raw values, collecting every problem into one ConfigError.

    Args:
        cls: the step's config class.
        values: field name -> raw value (YAML value or string).
        where: names the place for error messages, e.g. "step 'train' config".
    """
    fields = config_fields(cls)
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    problems = [f"unknown key {k!r} (known: {', '.join(sorted(fields)) or 'none'})" for k in values if k not in fields]
    problems += [f"{k}: required, no default" for k in sorted(required - set(values))]
    kwargs = {}
    for name, value in values.items():
        if name in fields:
            try:
                kwargs[name] = coerce(value, fields[name])
            except ValueError as e:
                problems.append(f"{name}: {e}")
    if not problems:
        config = cls(**kwargs)
        problems = config.problems()
        if not problems:
            return config
    raise problems_error(ConfigError, where, problems, hint="fix the values in the pipeline YAML or --param")


def config_to_dict(config: StepConfig) -> dict[str, Any]:
    """JSON-ready dict of a config (enums as values, tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=_plain, sort_keys=True))


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_argument(value: Any) -> str:
    """One config value as a command-line string that `coerce` reads back."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, sort_keys=True)


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    """`["--epochs", "3", "--lr0=0.01"]` -> {"epochs": "3", "lr0": "0.01"} (dashes become underscores)."""
    result: dict[str, str] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        item = items[i]
        if not item.startswith("--"):
            raise ConfigError(f"unexpected argument {item!r}: expected --name value pairs")
        if "=" in item:
            key, value = item[2:].split("=", 1)
            i += 1
        elif i + 1 < len(items):
            key, value = item[2:], items[i + 1]
            i += 2
        else:
            raise ConfigError(f"argument {item!r} has no value")
        result[key.replace("-", "_")] = value
    return result
