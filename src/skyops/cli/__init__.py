"""The `skyops` command. Thin: each area's commands live in their own module and import lazily.

Errors that skyops raises on purpose print as one line plus a hint (exit 2 for usage and config,
1 for failed runs); anything unexpected keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from skyops.cli import audit_cmd, data_cmd, deploy_cmd, experiments_cmd, models_cmd, pipeline_cmd, run_cmd, runs_cmd, sagemaker_cmd

app = typer.Typer(
    name="skyops",
    help="MLOps for YOLO11 object detection on drone imagery: one pipeline, run locally or on SageMaker.\n\n"
    "Start with `skyops run` (the default pipeline on embedded defaults), then `skyops runs show latest`.",
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
    import click

    from skyops.errors import SkyopsError

    try:
        app(args=argv, prog_name="skyops", standalone_mode=False)
    except SkyopsError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
