"""A wrong or missing AWS profile: every `skyops infra` command (and the stack lookup of `skyops sagemaker upsert`)
refuses with one error and sends nothing: zero requests at the moto server, zero connections at the listener that
stands in for the instance metadata service and the container credentials endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.aws.conftest import CountingListener, MotoServer

from .conftest import COST_CENTER, OWNER, Cli

COMMANDS = {
    "deploy": ("infra", "deploy", "--owner", OWNER, "--cost-center", COST_CENTER),
    "status": ("infra", "status"),
    "outputs": ("infra", "outputs"),
    "destroy, dry run": ("infra", "destroy"),
    "destroy --yes": ("infra", "destroy", "--yes"),
    "check-access": ("infra", "check-access"),
    "upload-notebooks": ("infra", "upload-notebooks", "--source", "{notebooks}"),
    "sagemaker upsert, no settings": ("sagemaker", "upsert"),
}
PROFILES = {
    "missing profile": ({"SKYOPS_AWS_PROFILE": "nosuch"}, "nosuch", "profile 'nosuch' is not defined"),
    "another profile in AWS_PROFILE": ({"AWS_PROFILE": "other"}, "ab", "$AWS_PROFILE=other names another profile than 'ab'"),
}


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_or_missing_profile_sends_nothing(
    command: str,
    profile: str,
    cli: Cli,
    moto: MotoServer,
    listener: CountingListener,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notebooks = tmp_path / "notebooks"
    (notebooks / "data-scientist").mkdir(parents=True)
    (notebooks / "data-scientist" / "explore.ipynb").write_text('{"cells": [], "nbformat": 4, "nbformat_minor": 5, "metadata": {}}')
    env, guarded, problem = PROFILES[profile]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = cli(*(arg.format(notebooks=notebooks) for arg in COMMANDS[command]))
    assert code == 2, out + err
    assert err.startswith(f"error: 1 problem in the AWS guard for profile '{guarded}' (refused before any request):\n"), err
    assert problem in err
    assert moto.requests == [] and listener.connections() == []
