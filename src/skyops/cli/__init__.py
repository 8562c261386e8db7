"""The `skyops` command. Thin: each area's commands live in their own module, imported when used.

The command group knows every command by name (`COMMANDS`) and imports a command's module only
when that command runs, or when `--help` lists them all: `skyops run` does not pay for the
registry, SageMaker or data commands' imports (benchmarks/engine_overhead.py measures the start).
The commands are plain click (docs/adr/0007-click-not-typer.md says why not typer).

Exit codes: 0 success (also `skyops` or `skyops <group>` alone, which print their help); 1 a run,
step or check failed; 2 a usage or config error (unknown command or option, bad value, bad
parameter). Errors that skyops raises on purpose, command-line mistakes included, print as one
`error:` line plus a `hint:` line; anything unexpected keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from skyops.cli.usage import SkyopsGroup

# name -> (module, attribute): a click command or group, in the order `skyops --help` lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("skyops.cli.run_cmd", "run"),
    "tune": ("skyops.cli.tune_cmd", "tune"),
    "ui": ("skyops.cli.experiments_cmd", "ui"),
    "pipeline": ("skyops.cli.pipeline_cmd", "app"),
    "runs": ("skyops.cli.runs_cmd", "app"),
    "data": ("skyops.cli.data_cmd", "app"),
    "experiments": ("skyops.cli.experiments_cmd", "app"),
    "models": ("skyops.cli.models_cmd", "app"),
    "serve": ("skyops.cli.serve_cmd", "serve"),
    "monitor": ("skyops.cli.monitor_cmd", "app"),
    "deploy": ("skyops.cli.deploy_cmd", "app"),
    "audit": ("skyops.cli.audit_cmd", "app"),
    "roles": ("skyops.cli.roles_cmd", "app"),
    "sagemaker": ("skyops.cli.sagemaker_cmd", "app"),
    "infra": ("skyops.cli.infra_cmd", "app"),
    "cost": ("skyops.cli.cost_cmd", "app"),
    "demo": ("skyops.cli.demo_cmd", "app"),
}


class _Skyops(SkyopsGroup):
    """The root group: commands come from `COMMANDS`, imported on use (their names need no import)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command), f"COMMANDS[{cmd_name!r}] is not a click command: {command!r}"
        return command


app = _Skyops(
    name="skyops",
    help="MLOps for YOLO11 object detection on drone imagery: one pipeline, run locally or on SageMaker.\n\n"
    "Start with `skyops run` (the default pipeline on embedded defaults), then `skyops runs show latest`.",
    no_args_is_help=True,
    context_settings={"show_default": True},  # every command's help shows its options' defaults
)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    from skyops.errors import SkyopsError

    args = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            code = app.main(args=args, prog_name="skyops", standalone_mode=False)
        except click.exceptions.NoArgsIsHelpError as e:  # `skyops`, `skyops data`: the help, as asked
            print(e.ctx.get_help())
            code = 0
        except click.UsageError as e:
            from skyops.cli.usage import command_line_error

            raise command_line_error(e, app, args) from None
    except SkyopsError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        sys.exit(e.exit_code)
    except click.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    # Without standalone mode click returns the code of `ctx.exit(code)` (and 0 after --help)
    # instead of exiting: `ctx.exit(1)` in a command must still exit 1.
    if isinstance(code, int) and code:
        sys.exit(code)
