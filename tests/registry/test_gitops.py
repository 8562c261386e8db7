"""`skyops deploy plan` refuses, one line per problem, a desired state that apply would refuse: wrong types,
a version that does not exist or is not Approved; and a refused apply is audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyops.errors import ConfigError
from skyops.registry.audit import AuditLog, Outcome
from skyops.registry.gitops import load_desired
from skyops.registry.ledger import deployments, replay
from skyops.targets import Target

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
        "unknown key 'verison'; expected environment, model, alias, version, target, sagemaker, local",
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


SAGEMAKER_ENV = """\
environment: production
model: drone-detector
version: 3
target: sagemaker
sagemaker:
  endpoint: drone-detector-production
  instance_type: ml.c5.xlarge
  capture: {s3_uri: s3://skyops-capture/production, percentage: 10}
  canary: {size_percent: 20, wait_seconds: 900}
"""


def test_a_sagemaker_environment_names_its_endpoint_and_no_alias(project: Path) -> None:
    path = write(project, SAGEMAKER_ENV)
    desired = load_desired(project, "production")
    assert (desired.target, desired.alias, desired.version, desired.source) == (Target.SAGEMAKER, None, 3, str(path))
    assert desired.sagemaker is not None and desired.sagemaker.endpoint == "drone-detector-production"
    assert (desired.sagemaker.instance_type, desired.sagemaker.capture.percentage, desired.sagemaker.canary.wait_seconds) == (
        "ml.c5.xlarge",
        10,
        900,
    )
    assert desired.sagemaker.canary.termination_wait_seconds == 300  # the default
    with pytest.raises(ConfigError, match=r"deploys to target sagemaker, which has no registry alias to move$"):
        desired.local_alias()  # so the local deploy (alias moves, deployed record) refuses it


@pytest.mark.parametrize("local", ["{port: 8080}", "{port: -1, nonsense: 1}"])
def test_a_local_section_with_target_sagemaker_is_refused_as_one_problem(
    project: Path, capsys: pytest.CaptureFixture[str], local: str
) -> None:
    """An endpoint is served by SageMaker, not on this machine: `local:` there is refused, and not parsed (its own problems unsaid)."""
    path = write(project, SAGEMAKER_ENV + f"local: {local}\n")
    code, out, err = cli(capsys, "deploy", "plan", "--env", "production")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"error: 1 problem in the desired state {path}:",
        "  - key 'local' serves a version on this machine; a target: sagemaker environment is served by its endpoint",
        "hint: see deploy/environments/README.md for the format",
    ]


@pytest.mark.parametrize(("env", "alias", "port"), [("staging", "staging", 8081), ("production", "champion", 8080)])
def test_the_shipped_environment_files_parse(tmp_path: Path, env: str, alias: str, port: int) -> None:
    """deploy/environments/*.yaml as committed: a local environment with no version yet, served on this machine."""
    shipped = Path(__file__).resolve().parents[2] / "deploy" / "environments" / f"{env}.yaml"
    project = tmp_path / "project"
    (project / "deploy" / "environments").mkdir(parents=True)
    (project / "deploy" / "environments" / f"{env}.yaml").write_bytes(shipped.read_bytes())
    desired = load_desired(project, env)
    assert (desired.target, desired.model, desired.alias, desired.version) == (Target.LOCAL, "drone-detector", alias, None)
    assert desired.local is not None and desired.local.port == port


def test_a_file_without_target_is_local_as_before(project: Path) -> None:
    write(project, "environment: production\nmodel: drone-detector\nalias: champion\nversion: null\n")
    desired = load_desired(project, "production")
    assert (desired.target, desired.alias, desired.sagemaker) == (Target.LOCAL, "champion", None)


def test_target_problems_are_named_with_the_others(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        project, SAGEMAKER_ENV.replace("version: 3\n", "version: 3\nalias: champion\n").replace("wait_seconds: 900", "wait_seconds: -1")
    )
    code, out, err = cli(capsys, "deploy", "plan")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"error: 2 problems in the desired state {path}:",
        "  - alias 'champion' does not apply to target sagemaker: a model package group has no aliases, the endpoint serves the "
        "version named here; remove the alias",
        "  - sagemaker.canary.wait_seconds: -1 is not an integer from 0 to 3600",
        "hint: see deploy/environments/README.md for the format",
    ]
    write(project, "environment: production\nmodel: drone-detector\nalias: champion\nversion: 1\nsagemaker: {endpoint: e}\n")
    with pytest.raises(ConfigError) as local:
        load_desired(project, "production")
    assert local.value.problems == ["sagemaker settings are given but the target is local; set `target: sagemaker`, or remove them"]
    write(project, "environment: production\nmodel: drone-detector\nversion: 1\ntarget: kubernetes\n")
    with pytest.raises(ConfigError) as unknown:
        load_desired(project, "production")
    assert unknown.value.problems == ["missing key 'alias'", "target 'kubernetes' is not one of local, sagemaker"]
    write(project, "environment: production\nmodel: drone-detector\nversion: 1\ntarget: sagemaker\n")
    with pytest.raises(ConfigError) as bare:
        load_desired(project, "production")
    assert bare.value.problems == [
        "sagemaker: expected a mapping with keys endpoint, role_arn, instance_type, instance_count, capture, canary, alarms, "
        "autoscaling, found nothing"
    ]


def test_an_apply_to_a_sagemaker_endpoint_moves_no_alias_and_is_not_a_local_deployment(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    common = {"actor": "alice", "role": "ml-engineer", "action": "deploy", "outcome": Outcome.SUCCEEDED}
    log.append(**common, target="drone-detector:1@production", details={"environment": "production", "alias": "champion", "version": 1})
    log.append(
        **common,
        target="drone-detector:3@production",
        details={"environment": "production", "version": 3, "target": "sagemaker", "endpoint": "e", "served_before": 1},
    )
    records = list(log.records())
    found = deployments(records)["production"]
    assert (found.model, found.version) == ("drone-detector", 1)  # the local record is checked against the local apply
    assert replay(records, "drone-detector").alias("champion") == 1  # the SageMaker apply set no alias
