"""The `skyops` command. Thin: each area's commands live in their own module, imported when used.

The command group knows every command by name (`COMMANDS`) and imports a command's module only
when that command runs, or when `--help` lists them all: `skyops run` does not pay for the
registry, SageMaker or data commands' imports (benchmarks/engine_overhead.py measures the start).

Exit codes: 0 success (also `skyops` or `skyops <group>` alone, which print their help); 1 a run,
step or check failed; 2 a usage or config error (unknown command or option, bad value, bad
parameter). Errors that skyops raises on purpose, command-line mistakes included, print as one
`error:` line plus a `hint:` line; anything unexpected keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import typer

from skyops.cli.usage import SkyopsGroup

# name -> (module, attribute): a function (one command) or a typer.Typer (a group of commands),
# in the order `skyops --help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("skyops.cli.run_cmd", "run"),
    "ui": ("skyops.cli.experiments_cmd", "ui"),
    "pipeline": ("skyops.cli.pipeline_cmd", "app"),
    "runs": ("skyops.cli.runs_cmd", "app"),
    "data": ("skyops.cli.data_cmd", "app"),
    "experiments": ("skyops.cli.experiments_cmd", "app"),
    "models": ("skyops.cli.models_cmd", "app"),
    "deploy": ("skyops.cli.deploy_cmd", "app"),
    "audit": ("skyops.cli.audit_cmd", "app"),
    "sagemaker": ("skyops.cli.sagemaker_cmd", "app"),
}
# How every command behaves: plain help (no rich markup), plain tracebacks, no completion install.
_SETTINGS: dict[str, Any] = {"pretty_exceptions_enable": False, "add_completion": False, "rich_markup_mode": None}


def _build(name: str, target: Callable[..., Any] | typer.Typer) -> Any:
    """The click command typer makes of `target` under `name`, with the settings the root gives its commands."""
    holder = typer.Typer(**_SETTINGS)
    holder.callback()(_no_options)  # a group even with one command, so `name` is kept as given
    if isinstance(target, typer.Typer):
        holder.add_typer(target, name=name)
    else:
        holder.command(name)(target)
    return typer.main.get_command(holder).commands[name]  # type: ignore[attr-defined]


def _no_options() -> None:
    """The root takes no options of its own: it only dispatches to the commands."""


class _LazyCommands(Mapping[str, Any]):
    """`COMMANDS` as the click group's command table: a command is built on first lookup."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            module, attribute = COMMANDS[name]
            self._built[name] = _build(name, getattr(importlib.import_module(module), attribute))
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class _Skyops(SkyopsGroup):
    """The root group: commands come from `COMMANDS`, imported on use (their names need no import)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _LazyCommands()  # type: ignore[assignment]

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)


app = typer.Typer(
    name="skyops",
    help="MLOps for YOLO11 object detection on drone imagery: one pipeline, run locally or on SageMaker.\n\n"
    "Start with `skyops run` (the default pipeline on embedded defaults), then `skyops runs show latest`.",
    no_args_is_help=True,
    cls=_Skyops,
    **_SETTINGS,
)
app.callback()(_no_options)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    # typer bundles its own click: its exceptions are not those of the `click` package.
    from typer._click import exceptions as click_errors

    from skyops.errors import SkyopsError

    args = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            code = app(args=args, prog_name="skyops", standalone_mode=False)
        except click_errors.NoArgsIsHelpError as e:  # `skyops`, `skyops data`: the help, as asked
            print(e.ctx.get_help())
            code = 0
        except click_errors.UsageError as e:
            from skyops.cli.usage import command_line_error

            raise command_line_error(e, typer.main.get_command(app), args) from None
    except SkyopsError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        sys.exit(e.exit_code)
    except click_errors.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    # Without standalone mode typer returns the code of a `typer.Exit` (and 0 after --help)
    # instead of exiting: `raise typer.Exit(1)` in a command must still exit 1.
    if isinstance(code, int) and code:
        sys.exit(code)
