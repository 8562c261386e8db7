"""The demo's throwaway project: a git repository with pipelines/, deploy/environments/ and skyops-roles.yaml.

It is made in a folder of its own (empty or new), never in the user's repository. The pipelines are the ones
skyops ships beside its sources; the roles file names the two people of the story.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import skyops
from skyops.errors import ConfigError

DATA_SCIENTIST = "dana"  # trains and registers
ML_ENGINEER = "emil"  # approves, promotes, deploys, rolls back
MODEL = "drone-detector"

ROLES = f"""\
# Who may do what in the demo project (skyops roles show).
default_role: none
users:
  {DATA_SCIENTIST}: data-scientist
  {ML_ENGINEER}: ml-engineer
"""

# The golden-set check: one model evaluated against another on a split both were never trained on, with the
# evaluate step's per-slice comparison (what the register step's max_slice_regression gate reads).
SLICE_CHECK = """\
name: slice-check
description: Evaluate a candidate against a reference model on a golden test split, slice by slice.
catalog: skyops.steps
parameters:
  candidate: {type: string, default: "", description: "the candidate's train output folder (best.pt)"}
  reference: {type: string, default: "", description: "the reference model's train output folder"}
  splits: {type: string, default: "", description: "a split step's output whose test split is the golden set"}
  image_size: {type: integer, default: 128, description: "evaluation size in pixels"}
steps:
  - step: evaluate
    inputs:
      model: ${candidate}
      champion: ${reference}
      splits: ${splits}
    config:
      imgsz: ${image_size}
      min_slice_instances: 10
"""


def environment_file(name: str, version: int | None, port: int) -> str:
    """deploy/environments/<name>.yaml: the version @alias follows, served on this machine at `port`."""
    alias = "champion" if name == "production" else "staging"
    return (
        f"environment: {name}\nmodel: {MODEL}\nalias: {alias}\nversion: {'null' if version is None else version}\n"
        f"local:\n  port: {port}\n  ready_seconds: 300\n  drain_seconds: 5\n"
    )


def free_port() -> int:
    """A port nothing listens on now (the router binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shipped_pipelines() -> Path:
    """The pipelines/ folder beside skyops' sources (a source checkout or an editable install)."""
    folder = Path(skyops.__file__).resolve().parents[2] / "pipelines"
    if not (folder / "drone-detection.yaml").is_file():
        raise ConfigError(
            f"the demo needs skyops' pipelines folder, not found at {folder}",
            hint="run the demo from a source checkout of skyops (pip install -e .)",
        )
    return folder


def git(project: Path, *args: str) -> str:
    """`git ARGS` in the project; its stdout. A failure is a ConfigError with git's own message."""
    done = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"git {' '.join(args)} failed in {project}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def check_workdir(project: Path) -> None:
    """Refuse a folder that holds anything: the demo writes a project of its own and never touches another.

    Raises:
        ConfigError: `project` is a file or a folder that is not empty.
    """
    if project.exists() and (not project.is_dir() or any(project.iterdir())):
        raise ConfigError(
            f"--workdir {project}: expected a new or empty folder, found {'a file' if not project.is_dir() else 'a folder with files in it'}",
            hint="the demo makes a project of its own: name a new or empty folder, or leave --workdir out",
        )


def make_project(project: Path, port: int) -> None:
    """Create the project in `project` (missing or empty) and commit it."""
    check_workdir(project)
    (project / "pipelines").mkdir(parents=True, exist_ok=True)
    for name in ("drone-detection.yaml", "monitor.yaml"):
        shutil.copy(shipped_pipelines() / name, project / "pipelines" / name)
    (project / "pipelines" / "slice-check.yaml").write_text(SLICE_CHECK)
    environments = project / "deploy" / "environments"
    environments.mkdir(parents=True)
    (environments / "production.yaml").write_text(environment_file("production", None, port))
    (environments / "staging.yaml").write_text(environment_file("staging", None, free_port()))
    (project / "skyops-roles.yaml").write_text(ROLES)
    (project / ".gitignore").write_text(".skyops/\ndata/\ncaptures/\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "config", "user.name", "skyops demo")
    git(project, "config", "user.email", "demo@skyops.invalid")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "a drone-detection project")


def set_version(project: Path, environment: str, version: int) -> None:
    """Change `version:` in the environment's file (what a person edits in a pull request)."""
    path = project / "deploy" / "environments" / f"{environment}.yaml"
    lines = [f"version: {version}" if line.startswith("version:") else line for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")
