"""`skyops demo gitops`: the GitOps story end to end on a throwaway project (skyops.demo.gitops, docs/demo-gitops.md).

Thin: the options are checked here; the story, its data and its project live in skyops.demo, imported when the
command runs. Exit 0 when every step held (the rolled-back v1 serving, the audit log verified); 1 with one line
naming the step that did not; 2 for bad options; 130 after Ctrl-C (143 after SIGTERM), every server stopped.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

from skyops.cli.params import IntegerRange
from skyops.cli.usage import SkyopsGroup
from skyops.demo.gitops import STEPS, Options  # light: the story's modules import their heavy parts when they run

app = SkyopsGroup("demo", help="Stories skyops plays on a throwaway project, every part real.", no_args_is_help=True)

IMAGE_STRIDE = 32  # YOLO11's largest stride: training sizes are multiples of it


def _steps_help() -> str:
    """The story's steps, one per line (`\\b` keeps click from rewrapping them)."""
    width = max(len(name) for name, _ in STEPS)
    return "\b\nThe steps:\n" + "\n".join(f"  {name.ljust(width)}  {what}" for name, what in STEPS)


@app.command(epilog=_steps_help())
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Make the demo project here (a new or empty folder; kept). Default: a temporary folder, removed at the end.",
)
@click.option("--keep", is_flag=True, help="Keep the temporary project (its git log, audit log, runs) to look at afterwards.")
@click.option("--images", type=IntegerRange(min=60, max=5000), default=Options.images, help="Synthetic scenes in each training dataset.")
@click.option("--epochs", type=IntegerRange(min=1, max=300), default=Options.epochs, help="Training epochs of v1 and v2.")
@click.option(
    "--image-size",
    type=IntegerRange(min=64, max=640),
    default=Options.image_size,
    help=f"Scene and training size in pixels (a multiple of {IMAGE_STRIDE}).",
)
def gitops(workdir: Path | None, keep: bool, images: int, epochs: int, image_size: int) -> None:
    """Train v1, approve, promote, serve; new data, retrain v2, gate, approve, promote through a git commit; drifted
    traffic, alert, a slice regression; `git revert` + apply rolls back to v1; the audit log verifies.

    Each step prints the command a person would type, then its outcome; a summary table ends it. Every part is
    real: training, the MLflow registry, the audit log, git commits, blue/green servers on 127.0.0.1, the drift
    check. Your own repository is never touched: the demo makes a project of its own.
    """
    from skyops.demo.gitops import play
    from skyops.demo.stage import DemoFailed, Interrupted, Stage, sigterm_as_interrupt
    from skyops.errors import ConfigError

    if image_size % IMAGE_STRIDE:
        raise ConfigError(
            f"--image-size {image_size}: expected a multiple of {IMAGE_STRIDE}",
            hint=f"e.g. --image-size {image_size // IMAGE_STRIDE * IMAGE_STRIDE or 64}",
        )
    from skyops.demo.project import check_workdir, shipped_pipelines

    if workdir is not None:
        check_workdir(workdir.resolve())
    shipped_pipelines()  # the demo needs skyops' pipelines: refused before anything starts
    temporary = workdir is None
    project = Path(tempfile.mkdtemp(prefix="skyops-demo-")) / "drone-project" if workdir is None else workdir.resolve()
    stage = Stage(project)
    wall, cpu = time.monotonic(), _cpu_seconds()
    failed: BaseException | None = None
    try:
        with sigterm_as_interrupt():
            play(stage, Options(images=images, epochs=epochs, image_size=image_size))
    except (KeyboardInterrupt, Interrupted) as e:
        failed = e
    except DemoFailed as e:
        failed = e
    finally:
        stopped = stage.stop_everything()
    print("\nsummary")
    for line in stage.table():
        print(f"  {line}")
    print(f"took {time.monotonic() - wall:.0f} s wall, {_cpu_seconds() - cpu:.0f} s CPU (this process and its children)")
    if stopped:
        print(f"stopped {len(stopped)} processes the demo started: {', '.join(stopped)}")
    if temporary and not keep and failed is None:
        shutil.rmtree(project.parent, ignore_errors=True)
    else:
        print(f"the demo project is kept at {project}")
    if isinstance(failed, (KeyboardInterrupt, Interrupted)):
        print(f"error: the demo was interrupted after {len(stage.rows)} steps; every server it started is stopped", file=sys.stderr)
        sys.exit(143 if isinstance(failed, Interrupted) else 130)
    if failed is not None:
        raise failed


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
