"""Project settings: where state lives, which tracking store and AWS profile to use.

Read from the environment (SKYOPS_PROJECT_DIR, SKYOPS_STATE_DIR, SKYOPS_AWS_PROFILE, SKYOPS_TRACKING_URI),
once per command. Nothing here imports a heavy library.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

# The project's names, declared once here and imported wherever a default is needed.
DEFAULT_AWS_PROFILE = "ab"
DEFAULT_PIPELINE = "drone-detection"  # what `skyops run`, `skyops sagemaker ...` use without a NAME
DEFAULT_MODEL = "drone-detector"  # the registered model (a model package group on SageMaker)
DEFAULT_EXPERIMENT = "drone-detection"  # the MLflow experiment training runs are tracked in
DEFAULT_CATALOG = "skyops.steps"  # the step catalog of a pipeline file that names none


@dataclass(frozen=True)
class Settings:
    """Args:
    project_dir: the project root (the folder holding `pipelines/`); default: current folder.
    state_dir: the engine's state (`.skyops/` under the project by default, or SKYOPS_STATE_DIR).
    aws_profile: the only AWS profile skyops will use (SKYOPS_AWS_PROFILE, default 'ab').
    """

    project_dir: Path
    state_dir: Path
    aws_profile: str = DEFAULT_AWS_PROFILE
    tracking_uri: str = ""

    @cached_property
    def pipeline_dirs(self) -> tuple[Path, ...]:
        return (self.project_dir / "pipelines",)


def load_settings(project_dir: Path | None = None) -> Settings:
    project = (project_dir or Path(os.environ.get("SKYOPS_PROJECT_DIR") or Path.cwd())).resolve()
    state = Path(os.environ.get("SKYOPS_STATE_DIR") or project / ".skyops").resolve()
    return Settings(
        project_dir=project,
        state_dir=state,
        aws_profile=os.environ.get("SKYOPS_AWS_PROFILE", DEFAULT_AWS_PROFILE),
        tracking_uri=os.environ.get("SKYOPS_TRACKING_URI", ""),
    )
