"""Command-line mistakes as skyops prints every error: one line saying what is wrong, one hint.

typer (0.29) bundles its own click as `typer._click`; a mistyped command line raises that click's
`UsageError`s (not `click.ClickException`, which belongs to the separate `click` package). Their
context (the command, the parameter, the rejected value) becomes a `CommandLineError` here, named
the way the user typed it: `--workers`, `DATASET`, never the Python argument behind it.

    error: --workers abc: expected an integer
    hint: e.g. --workers 2 (the default); see `skyops run --help`
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Sequence
from typing import Any

from typer import _click
from typer._click import exceptions as click_errors
from typer.core import TyperGroup, TyperOption, _TyperParameter

from skyops.errors import CommandLineError

# typer's own path checks raise plain messages: "dir '/tmp/x' does not exist." (no structured cause).
_PATH_PROBLEM = re.compile(r"^(?:file|dir|path) '(?P<value>.*)' (?P<problem>[^']+)\.$")
_PATH_WORDS = {"is a file": "is a file, not a folder", "is a directory": "is a folder, not a file"}

# pydantic error types typer's number and choice coercion raise -> what the value should have been.
_EXPECTED = {
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "bool_parsing": "expected true or false",
}
_BOUND = {"greater_than_equal": ("ge", ">="), "less_than_equal": ("le", "<="), "greater_than": ("gt", ">"), "less_than": ("lt", "<")}


class SkyopsGroup(TyperGroup):
    """A command group whose unknown sub-command is a `CommandLineError` naming the closest commands."""

    def resolve_command(self, ctx: _click.Context, args: list[str]) -> tuple[str | None, _click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and not ctx.resilient_parsing and self.get_command(ctx, name) is None:
            raise no_such_command(ctx, name)
        return super().resolve_command(ctx, args)


def no_such_command(ctx: _click.Context, name: str) -> CommandLineError:
    """`skyops data convrt` -> suggest `skyops data convert`; `skyops convert` -> `skyops data convert`."""
    from difflib import get_close_matches

    group = ctx.command
    path = ctx.command_path
    names = _visible_commands(ctx, group)
    close = [f"{path} {c}" for c in get_close_matches(name, names, n=3, cutoff=0.6)]
    if not close:  # a sub-command typed without its group
        nested = {
            f"{path} {g} {sub}": sub
            for g in names
            if isinstance(cmd := _command(ctx, group, g), TyperGroup)
            for sub in _visible_commands(ctx, cmd)
        }
        close = [full for full, sub in nested.items() if sub in get_close_matches(name, list(nested.values()), n=3, cutoff=0.8)][:3]
    if close:
        hint = f"did you mean {' or '.join(f'`{c}`' for c in close)}? `{path} --help` lists every command"
    else:
        hint = f"the commands are {', '.join(names)}; `{path} --help` says what each does"
    return CommandLineError(f"{path} has no command {name!r}", hint=hint)


def command_line_error(error: click_errors.UsageError, root: _click.Command, argv: Sequence[str]) -> CommandLineError:
    """One `CommandLineError` for a click usage error; `root` and `argv` locate the command when click did not."""
    ctx = error.ctx or _context_of(root, argv)
    path = ctx.command_path
    see = f"see `{path} --help`"
    if isinstance(error, click_errors.NoSuchOption):
        if error.possibilities:
            return CommandLineError(
                f"{path} has no option {error.option_name}", hint=f"did you mean {' or '.join(sorted(error.possibilities))}? {see}"
            )
        options = [_flag(p) for p in ctx.command.params if isinstance(p, TyperOption) and not p.hidden]
        known = f"its options are {', '.join(options)}" if options else "it has no options besides --help"
        return CommandLineError(f"{path} has no option {error.option_name}", hint=f"{known}; {see}")
    if isinstance(error, click_errors.MissingParameter) and error.param is not None:
        param = error.param
        return CommandLineError(
            f"{path}: missing {param.param_type_name} {_flag(param)}",
            hint=f"usage: {_usage(ctx)}" + (f"; {_flag(param)}: {_help(param)}" if _help(param) else "") + f"; {see}",
        )
    if isinstance(error, click_errors.BadParameter) and error.param is not None:
        return _bad_value(error, error.param, see)
    if isinstance(error, click_errors.BadOptionUsage):
        option = next((p for p in ctx.command.params if isinstance(p, TyperOption) and error.option_name in p.opts), None)
        if "requires" in error.message:  # "Option '--workers' requires an argument."
            return CommandLineError(f"{error.option_name} needs a value", hint=f"{_example(option, error.option_name)}{see}")
        if "does not take a value" in error.message:  # a flag given as --json=yes
            return CommandLineError(f"{error.option_name} is a flag and takes no value", hint=f"write {error.option_name} alone; {see}")
    message = error.format_message().rstrip(".")
    return CommandLineError(f"{path}: {message[:1].lower()}{message[1:]}", hint=f"usage: {_usage(ctx)}; {see}")


def _bad_value(error: click_errors.BadParameter, param: _TyperParameter, see: str) -> CommandLineError:
    """`--workers abc: expected an integer`, `DATASET /tmp/x: does not exist`, `--format png: expected one of ...`."""
    flag = _flag(param)
    value: Any = None
    cause = error.__cause__
    details = cause.errors() if cause is not None and hasattr(cause, "errors") else []  # pydantic's ValidationError
    if details:
        detail = details[0]
        value = detail.get("input")
        kind = detail.get("type", "")
        choices = _choices(param)
        if choices:
            what = f"expected one of {', '.join(choices)}"
        elif _non_finite(value):  # pydantic reads nan and inf as floats; a bound then rejects them
            what = "expected a finite number"
        elif kind in _BOUND:
            key, sign = _BOUND[kind]
            what = f"must be {sign} {detail.get('ctx', {}).get(key)}"
        else:
            what = _EXPECTED.get(kind) or str(detail.get("msg", error.message))
    elif m := _PATH_PROBLEM.match(error.message):
        value, what = m["value"], _PATH_WORDS.get(m["problem"], m["problem"])
    else:
        what = error.message.rstrip(".")
    shown = f"{flag} {shlex.quote(str(value))}" if value is not None else flag
    example = _example(param, flag) if isinstance(param, TyperOption) else ""
    about = "" if example or not _help(param) else f"{flag}: {_help(param)}; "
    return CommandLineError(f"{shown}: {what}", hint=f"{example}{about}{see}")


def _non_finite(value: Any) -> bool:
    try:
        return not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _flag(param: _TyperParameter) -> str:
    """How the user writes a parameter: its long option (`--workers`), or an argument's metavar (`DATASET`)."""
    if isinstance(param, TyperOption):
        return next((o for o in param.opts if o.startswith("--")), param.opts[0])
    return (param.metavar or param.name or "").upper()


def _help(param: _TyperParameter) -> str:
    text = str(getattr(param, "help", "") or "").strip().rstrip(".")
    return text[:1].lower() + text[1:]


def _choices(param: _TyperParameter) -> list[str]:
    descriptor = param.type_descriptor
    if not descriptor.is_choice:
        return []
    return [str(getattr(c, "value", c)) for c in descriptor.choices or ()]


def _example(param: _TyperParameter | None, flag: str) -> str:
    """'e.g. --workers 2 (the default); ' from the parameter's default or choices; '' when there is none."""
    if param is None:
        return ""
    choices = _choices(param)
    if choices:
        sample = next((c for c in choices if c not in ("auto", str(param.default))), choices[0])
        return f"e.g. {flag} {sample}; "
    default = param.default
    if isinstance(default, (int, float, str)) and not isinstance(default, bool) and default != "":
        return f"e.g. {flag} {shlex.quote(str(default))} (the default); "
    return ""


def _usage(ctx: _click.Context) -> str:
    return ctx.get_usage().removeprefix("Usage: ").strip()


def _visible_commands(ctx: _click.Context, group: _click.Command) -> list[str]:
    if not isinstance(group, TyperGroup):
        return []
    return [name for name in group.list_commands(ctx) if (cmd := group.get_command(ctx, name)) is not None and not cmd.hidden]


def _command(ctx: _click.Context, group: _click.Command, name: str) -> _click.Command | None:
    return group.get_command(ctx, name) if isinstance(group, TyperGroup) else None


def _context_of(root: _click.Command, argv: Sequence[str]) -> _click.Context:
    """The context of the deepest command `argv` names (click leaves some parse errors without one)."""
    ctx = _click.Context(root, info_name="skyops")
    for token in argv:
        sub = _command(ctx, ctx.command, token)
        if sub is None:
            if token.startswith("-"):
                continue  # an option of the current command
            break
        ctx = _click.Context(sub, info_name=token, parent=ctx)
    return ctx
