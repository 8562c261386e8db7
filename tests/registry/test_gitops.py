"""`skyops deploy plan` refuses, one line per problem, a desired state that apply would refuse: wrong types,
a version that does not exist or is not Approved; and a refused apply is audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyops.errors import ConfigError
from skyops.registry.audit import AuditLog
from skyops.registry.gitops import load_desired

from .conftest import cli, register_version


def write(project: Path, text: str, env: str = "production") -> Path:
    path = project / f"deploy/environments/{env}.yaml"
    path.write_text(text)
    return path


def test_version_true_is_not_a_version(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(project, "environment: production\nmodel: drone-detector\nalias: champion\nversion: true\n")
    code, out, err = cli(capsys, "deploy", "plan")
    assert code == 2 and out == "" and "vTrue" not in err
    assert err.splitlines() == [
        f"error: 1 problem in the desired state {path}:",
        "  - version True is not a positive integer or null",
        "hint: see deploy/environments/README.md for the format",
    ]


def test_every_type_problem_is_named_at_once(project: Path) -> None:
    path = write(project, "environment: prod\nmodel: ../../etc\nalias: latest\nversion: '3'\nverison: 3\n")
    with pytest.raises(ConfigError) as error:
        load_desired(project, "production")
    assert error.value.problems == [
        "alias 'latest' is not one of staging, champion, previous",
        "environment 'prod' differs from the file name 'production'",
        "model '../../etc' is not a model name; expected e.g. drone-detector",
        "unknown key 'verison'; expected environment, model, alias, version, local",
        "version '3' is not a positive integer or null",
    ]
    assert error.value.message.startswith(f"5 problems in the desired state {path}:")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- a list\n", "expected a mapping with keys environment, model, alias, version, found list"),
        ("just text\n", "expected a mapping with keys environment, model, alias, version, found str"),
        ("{unclosed: [\n", "not valid YAML (ParserError)"),
    ],
)
def test_a_desired_state_that_is_not_a_mapping_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    path = write(project, text)
    code, _, err = cli(capsys, "deploy", "plan")
    assert code == 2 and err.splitlines() == [f"error: {path}: {problem}", "hint: see deploy/environments/README.md for the format"]


def test_an_environment_is_a_name_not_a_path(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "secret.yaml").write_text("environment: x\n")
    code, _, err = cli(capsys, "deploy", "plan", "--env", "../../secret")
    assert code == 2 and err.splitlines()[0] == (
        "error: environment '../../secret' is not a name; expected letters, digits, '.', '_' or '-', e.g. production"
    )


def test_plan_refuses_a_version_that_does_not_exist_or_is_pending(
    project: Path, store_dir: Path, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    version = register_version(store_dir, model, 0.3)
    path = write(project, f"environment: production\nmodel: {model}\nalias: champion\nversion: 9\n")
    code, out, err = cli(capsys, "deploy", "plan")
    assert code == 2 and out == ""
    assert err.splitlines()[:2] == [
        f"error: 1 problem in the desired state {path} (apply would refuse it):",
        f"  - {model} has no version 9 (versions: v{version})",
    ]
    write(project, f"environment: production\nmodel: {model}\nalias: champion\nversion: {version}\n")
    code, _, err = cli(capsys, "deploy", "plan")
    assert code == 2
    assert err.splitlines()[1] == f"  - {model} v{version} is PendingManualApproval, not Approved: only an Approved version may be deployed"
    assert err.splitlines()[2].startswith("hint: approve the version first (skyops models approve N)")


def test_an_apply_of_a_pending_version_is_audited_whoever_tries(
    project: Path, store_dir: Path, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    version = register_version(store_dir, model, 0.3)
    write(project, f"environment: production\nmodel: {model}\nalias: champion\nversion: {version}\n")
    assert cli(capsys, "deploy", "apply", "--as", "bob")[0] == 2  # no role: denied
    assert cli(capsys, "deploy", "apply", "--as", "alice")[0] == 2  # the role, a pending version: refused
    target = f"{model}:{version}@production"
    assert [(r.actor, r.action, r.target, r.outcome) for r in AuditLog(store_dir / "audit.log").outcomes()][-2:] == [
        ("bob", "deploy", target, "denied"),
        ("alice", "deploy", target, "failed"),
    ]
