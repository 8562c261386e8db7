"""Command-line mistakes as skyops prints every error: one line saying what is wrong, one hint.

A mistyped command line raises one of click's `UsageError`s. Their context (the command, the
parameter, and for skyops' parameter types the rejected value and what was expected: `params.py`)
becomes a `CommandLineError` here, named the way the user typed it: `--workers`, `DATASET`, never
the Python argument behind it.

    error: --workers abc: expected an integer
    hint: e.g. --workers 2 (the default); see `skyops run --help`
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

import click

from skyops.cli.params import BadValue
from skyops.errors import CommandLineError

# click's wording of the errors it raises as plain `UsageError`s.
_EXTRA_ARGUMENTS = re.compile(r"^Got unexpected extra arguments? \((?P<args>.*)\)$")


class SkyopsGroup(click.Group):
    """A command group that lists its commands in the order they were added (click sorts them by name),
    and whose unknown sub-command is a `CommandLineError` naming the closest commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and not ctx.resilient_parsing and self.get_command(ctx, name) is None:
            raise no_such_command(ctx, name)
        return super().resolve_command(ctx, args)


def no_such_command(ctx: click.Context, name: str) -> CommandLineError:
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
            if isinstance(cmd := _command(ctx, group, g), click.Group)
            for sub in _visible_commands(ctx, cmd)
        }
        close = [full for full, sub in nested.items() if sub in get_close_matches(name, list(nested.values()), n=3, cutoff=0.8)][:3]
    if close:
        hint = f"did you mean {' or '.join(f'`{c}`' for c in close)}? `{path} --help` lists every command"
    else:
        hint = f"the commands are {', '.join(names)}; `{path} --help` says what each does"
    return CommandLineError(f"{path} has no command {name!r}", hint=hint)


def command_line_error(error: click.UsageError, root: click.Command, argv: Sequence[str]) -> CommandLineError:
    """One `CommandLineError` for a click usage error; `root` and `argv` locate the command when click did not."""
    ctx = error.ctx or _context_of(root, argv)
    path = ctx.command_path
    see = f"see `{path} --help`"
    if isinstance(error, click.NoSuchOption):
        if error.possibilities:
            return CommandLineError(
                f"{path} has no option {error.option_name}", hint=f"did you mean {' or '.join(sorted(error.possibilities))}? {see}"
            )
        options = [_flag(p) for p in ctx.command.params if isinstance(p, click.Option) and not p.hidden]
        known = f"its options are {', '.join(options)}" if options else "it has no options besides --help"
        return CommandLineError(f"{path} has no option {error.option_name}", hint=f"{known}; {see}")
    if isinstance(error, click.MissingParameter) and error.param is not None:
        param = error.param
        return CommandLineError(
            f"{path}: missing {param.param_type_name} {_flag(param)}",
            hint=f"usage: {_usage(ctx)}" + (f"; {_flag(param)}: {_help(param)}" if _help(param) else "") + f"; {see}",
        )
    if isinstance(error, click.BadParameter) and error.param is not None:
        return _bad_value(error, error.param, see)
    if isinstance(error, click.BadOptionUsage):
        option = next((p for p in ctx.command.params if isinstance(p, click.Option) and error.option_name in p.opts), None)
        if "requires" in error.message:  # "Option '--workers' requires an argument."
            return CommandLineError(f"{error.option_name} needs a value", hint=f"{_example(option, error.option_name)}{see}")
        if "does not take a value" in error.message:  # a flag given as --json=yes
            return CommandLineError(f"{error.option_name} is a flag and takes no value", hint=f"write {error.option_name} alone; {see}")
    message = error.format_message().rstrip(".")
    if m := _EXTRA_ARGUMENTS.match(message):
        message = f"got unexpected extra argument(s) ({m['args']})"
    return CommandLineError(f"{path}: {message[:1].lower()}{message[1:]}", hint=f"usage: {_usage(ctx)}; {see}")


def _bad_value(error: click.BadParameter, param: click.Parameter, see: str) -> CommandLineError:
    """`--workers abc: expected an integer`, `DATASET /tmp/x: does not exist`, `--format png: expected one of ...`."""
    flag = _flag(param)
    if isinstance(error, BadValue):
        shown, what = f"{flag} {shlex.quote(str(error.value))}", error.expected
    else:  # a check of click's own (no value kept)
        shown, what = flag, error.message.rstrip(".")
    example = _example(param, flag) if isinstance(param, click.Option) else ""
    about = "" if example or not _help(param) else f"{flag}: {_help(param)}; "
    return CommandLineError(f"{shown}: {what}", hint=f"{example}{about}{see}")


def _flag(param: click.Parameter) -> str:
    """How the user writes a parameter: its long option (`--workers`), or an argument's metavar (`DATASET`)."""
    if isinstance(param, click.Option):
        return next((o for o in param.opts if o.startswith("--")), param.opts[0])
    return (param.metavar or param.name or "").upper()


def _help(param: click.Parameter) -> str:
    text = str(getattr(param, "help", "") or "").strip().rstrip(".")
    return text[:1].lower() + text[1:]


def _choices(param: click.Parameter) -> list[str]:
    return [str(c) for c in param.type.choices] if isinstance(param.type, click.Choice) else []


def _example(param: click.Parameter | None, flag: str) -> str:
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


def _usage(ctx: click.Context) -> str:
    return ctx.get_usage().removeprefix("Usage: ").strip()


def _visible_commands(ctx: click.Context, group: click.Command) -> list[str]:
    if not isinstance(group, click.Group):
        return []
    return [name for name in group.list_commands(ctx) if (cmd := group.get_command(ctx, name)) is not None and not cmd.hidden]


def _command(ctx: click.Context, group: click.Command, name: str) -> click.Command | None:
    return group.get_command(ctx, name) if isinstance(group, click.Group) else None


def _context_of(root: click.Command, argv: Sequence[str]) -> click.Context:
    """The context of the deepest command `argv` names (click leaves some parse errors without one)."""
    ctx = click.Context(root, info_name="skyops")
    for token in argv:
        sub = _command(ctx, ctx.command, token)
        if sub is None:
            if token.startswith("-"):
                continue  # an option of the current command
            break
        ctx = click.Context(sub, info_name=token, parent=ctx)
    return ctx
