"""Small named fixtures of the governance tests: an audit log, a filled one, a project with a role file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from skyops.registry.audit import AuditLog, Outcome
from skyops.registry.roles import ROLES_FILE, Governance

TEAM_ROLES = """\
default_role: data-scientist
users:
  alice: ml-engineer
  bob: data-scientist
  root: admin
  mallory: none
"""


@pytest.fixture
def audit_log(tmp_path: Path) -> AuditLog:
    """An empty audit log in a folder that does not exist yet."""
    return AuditLog(tmp_path / "state" / "audit.jsonl")


@pytest.fixture
def filled_log(audit_log: AuditLog) -> AuditLog:
    """Five records, seq 0-4: alice approves v0..v4 of model m."""
    for version in range(5):
        audit_log.append(
            actor="alice",
            role="ml-engineer",
            action="approve",
            target=f"model m v{version}",
            outcome=Outcome.SUCCEEDED,
            reason=f"note {version}",
            details={"version": version},
        )
    return audit_log


@pytest.fixture
def write_roles(tmp_path: Path) -> Callable[[str], Path]:
    """write_roles(yaml_text) -> a project folder whose skyops-roles.yaml holds that text."""

    def write(text: str) -> Path:
        project = tmp_path / "project"
        project.mkdir(exist_ok=True)
        (project / ROLES_FILE).write_text(text, encoding="utf-8")
        return project

    return write


@pytest.fixture
def governance(write_roles: Callable[[str], Path], audit_log: AuditLog) -> Governance:
    """alice ml-engineer, bob data-scientist, root admin, mallory none; anyone else a data scientist."""
    return Governance(write_roles(TEAM_ROLES), audit_log)
