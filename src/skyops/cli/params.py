"""Click parameter types that say what they expected, for `usage.py` to print in the user's words.

click's own types refuse a value with a sentence ("'abc' is not a valid integer.") and keep neither
the value nor the rule. These subclasses keep click's parsing and help (`INTEGER RANGE`,
`[x>=1]`, `[auto|coco|...]`) and raise `BadValue`, which carries both:

    --workers abc: expected an integer
    --max-invalid nan: expected a finite number     (click's FloatRange lets nan through)
    DATASET /tmp/x: is a file, not a folder
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click


class BadValue(click.BadParameter):
    """A value its parameter's type refused: `value` as typed, and `expected` (what it should be)."""

    def __init__(self, value: Any, expected: str, ctx: click.Context | None, param: click.Parameter | None) -> None:
        super().__init__(f"{value}: {expected}", ctx, param)
        self.value = value
        self.expected = expected


class Argument(click.Argument):
    """A positional argument whose help row ends with its default, or `[required]`, as an option's does."""

    def make_metavar(self, ctx: click.Context) -> str:
        if self.metavar is None:
            return super().make_metavar(ctx)
        # click prints a metavar it is given as is: mark it optional (`[RUN]`) or repeatable (`RUN...`) as it marks its own.
        return (self.metavar if self.required else f"[{self.metavar}]") + ("..." if self.nargs != 1 else "")

    def get_help_record(self, ctx: click.Context) -> tuple[str, str]:
        name, text = super().get_help_record(ctx)
        if self.required:
            extra = "required"
        elif isinstance(self.default, str) and self.default:
            extra = f"default: {self.default}"
        else:
            return name, text
        return name, f"{text}  [{extra}]" if text else f"[{extra}]"


def argument(*decls: str, **attrs: Any) -> Any:
    """`click.argument` whose help row shows the argument's default or `[required]`."""
    return click.argument(*decls, cls=Argument, **attrs)


class Integer(click.types.IntParamType):
    """Any integer."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            raise BadValue(value, "expected an integer", ctx, param) from None


class IntegerRange(click.IntRange):
    """An integer within closed bounds (`IntegerRange(min=1)`)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number = Integer().convert(value, param, ctx)
        try:
            return super().convert(number, param, ctx)
        except click.BadParameter:
            raise BadValue(value, _outside(self, number), ctx, param) from None


class FiniteRange(click.FloatRange):
    """A finite number within closed bounds: nan and inf are refused (click's FloatRange lets nan pass)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BadValue(value, "expected a number", ctx, param) from None
        if not math.isfinite(number):
            raise BadValue(value, "expected a finite number", ctx, param)
        try:
            return super().convert(number, param, ctx)
        except click.BadParameter:
            raise BadValue(value, _outside(self, number), ctx, param) from None


def _outside(bounds: click.IntRange | click.FloatRange, number: float) -> str:
    """`must be >= 1` or `must be <= 1.0`: the bound `number` crossed, in the number's own type."""
    kind = type(number)
    if bounds.min is not None and (number < bounds.min or (bounds.min_open and number == bounds.min)):
        return f"must be {'>' if bounds.min_open else '>='} {kind(bounds.min)}"
    assert bounds.max is not None, f"{number} is within {bounds._describe_range()}"
    return f"must be {'<' if bounds.max_open else '<='} {kind(bounds.max)}"


class Choice(click.Choice[str]):
    """One of fixed strings; `case_sensitive=False` reads `COCO` as `coco`."""

    def __init__(self, choices: Sequence[str], case_sensitive: bool = True) -> None:
        super().__init__(choices, case_sensitive=case_sensitive)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            raise BadValue(value, f"expected one of {', '.join(self.choices)}", ctx, param) from None


class Matching(click.ParamType):
    """A string a regular expression accepts whole (e.g. a CloudFormation parameter's AllowedPattern), or '' when
    `empty_ok` (the option's way of saying "none"); `expected` says in words what it accepts."""

    name = "text"

    def __init__(self, pattern: re.Pattern[str], expected: str, *, empty_ok: bool = False) -> None:
        self.pattern = pattern
        self.expected = expected
        self.empty_ok = empty_ok

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if (text == "" and self.empty_ok) or self.pattern.fullmatch(text):
            return text
        raise BadValue(value, f"expected {self.expected}", ctx, param)


class ExistingPath(click.Path):
    """A path that must exist (a folder only, with `file_okay=False`); read as a `pathlib.Path`."""

    def __init__(self, *, file_okay: bool = True, dir_okay: bool = True) -> None:
        super().__init__(exists=True, file_okay=file_okay, dir_okay=dir_okay, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as e:
            if not os.path.exists(value):
                problem = "does not exist"
            elif not self.file_okay and os.path.isfile(value):
                problem = "is a file, not a folder"
            elif not self.dir_okay and os.path.isdir(value):
                problem = "is a folder, not a file"
            elif not os.access(value, os.R_OK):
                problem = "is not readable"
            else:
                problem = e.message.rstrip(".")
            raise BadValue(value, problem, ctx, param) from None
