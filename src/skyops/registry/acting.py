"""Under which governance an action runs: the project's roles file and the state folder's audit log.

Kept apart and small because the train step imports it: a step's cache key covers the code it
imports, and training should not re-run because the registry's own code changed.
"""

from __future__ import annotations

from pathlib import Path

from skyops.registry.roles import Governance
from skyops.settings import load_settings

AUDIT_FILE = "audit.log"  # in the state folder


def governance_for(project_dir: Path, state_dir: Path) -> Governance:
    """The governance of a project: its roles file, and the audit log of its state folder."""
    return Governance(project_dir, state_dir / AUDIT_FILE)


def run_governance(state_dir: Path) -> Governance:
    """The governance a pipeline step acts under, as the user who started the run (its SKYOPS_USER).

    The roles are those of the project `skyops run` was started in: SKYOPS_PROJECT_DIR, else its
    working folder, which every step process inherits (read through `load_settings`, as the CLI
    reads them). The audit log is the run's state folder's. In a SageMaker job there is no roles file
    and the user is the job's: IAM decided who may start the pipeline, and the check allows what a
    data scientist may do.
    """
    return governance_for(load_settings().project_dir, state_dir)
