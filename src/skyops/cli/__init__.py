"""The `skyops` command. Thin: each area's commands live in their own module, imported when used.

The command group knows every command by name (`COMMANDS`) and imports a command's module only
when that command runs, or when `--help` lists them all: `skyops run` does not pay for the
registry, SageMaker or data commands' imports (benchmarks/engine_overhead.py measures the start).

Errors that skyops raises on purpose print as one line plus a hint (exit 2 for usage and config,
1 for failed runs); a command line that does not parse prints typer's usage message (exit 2);
anything unexpected keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import typer
from typer.core import TyperGroup

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


class _Skyops(TyperGroup):
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
    """Console entry point; always ends with SystemExit (0 on success)."""
    from skyops.errors import SkyopsError

    try:
        # Standalone: typer prints usage errors (exit 2) and turns Exit and Ctrl-C into exit codes.
        # typer vendors its own click, so click's exception classes would not catch them here.
        app(args=argv, prog_name="skyops")
    except SkyopsError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        sys.exit(e.exit_code)
