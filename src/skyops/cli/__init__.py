"""The `skyops` command. Thin: each area's commands live in their own module and import lazily.

Exit codes: 0 success (also `skyops` or `skyops <group>` alone, which print their help); 1 a run,
step or check failed; 2 a usage or config error (unknown command or option, bad value, bad
parameter). Errors that skyops raises on purpose, command-line mistakes included, print as one
`error:` line plus a `hint:` line; anything unexpected keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from skyops.cli import audit_cmd, data_cmd, deploy_cmd, experiments_cmd, models_cmd, pipeline_cmd, run_cmd, runs_cmd, sagemaker_cmd
from skyops.cli.usage import SkyopsGroup

app = typer.Typer(
    name="skyops",
    help="MLOps for YOLO11 object detection on drone imagery: one pipeline, run locally or on SageMaker.\n\n"
    "Start with `skyops run` (the default pipeline on embedded defaults), then `skyops runs show latest`.",
    cls=SkyopsGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
app.command("run")(run_cmd.run)
app.add_typer(pipeline_cmd.app, name="pipeline")
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(data_cmd.app, name="data")
app.add_typer(experiments_cmd.app, name="experiments")
app.command("ui")(experiments_cmd.ui)
app.add_typer(models_cmd.app, name="models")
app.add_typer(deploy_cmd.app, name="deploy")
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(sagemaker_cmd.app, name="sagemaker")


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
