"""Fixtures of the doc tests: a fresh project for a page's runnable commands, with no AWS configuration."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.clirun import cli
from tests.docs.doc_blocks import ROOT

PROJECT_FILES = ("pipelines", "deploy", "skyops-roles.yaml")  # what a checkout gives a user, besides the code


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a fresh project's empty MLflow store is kept once made (by the first page that needs it)."""
    return tmp_path_factory.mktemp("empty-store")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A fresh copy of the project's definitions, as a user's checkout would have them, and no AWS setup."""
    root = tmp_path / "project"
    root.mkdir()
    for name in PROJECT_FILES:
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    monkeypatch.chdir(root)
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(root))
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(root / ".skyops"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    for name in ("SKYOPS_USER", "SKYOPS_AWS_PROFILE", "SKYOPS_INFRA_ENV", "SKYOPS_TRACKING_URI", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("SKYOPS_SAGEMAKER_")]:
        monkeypatch.delenv(name)
    template = empty_store / "mlflow.db"
    if not template.exists():
        code, _, err = cli(capsys, "models", "list")  # creates the store, as any first registry command does
        assert code == 0, err
        shutil.copy(root / ".skyops" / "mlflow.db", template)
    else:
        (root / ".skyops").mkdir()
        shutil.copy(template, root / ".skyops" / "mlflow.db")
    return root
