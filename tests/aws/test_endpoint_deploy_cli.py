"""`skyops deploy plan|apply|status` for an environment with `target: sagemaker`, in-process against the moto server:
what plan says, apply doing it once, status showing what runs where, and the refusals as one line each."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from skyops.aws.model_packages import ModelPackages, PackageGroupStore
from skyops.aws.session import AwsGuard
from skyops.registry.audit import AuditLog
from skyops.registry.governed import GovernedRegistry
from skyops.registry.roles import ROLES_FILE, Governance
from tests.clirun import cli

from .conftest import Faults, MotoServer
from .endpoint_world import ENDPOINT, ERRORS, GROUP, IMAGE, LATENCY, RESOURCE, ROLE, ROLES

PRODUCTION = f"""\
environment: production
model: {GROUP}
version: VERSION
target: sagemaker
sagemaker:
  endpoint: {ENDPOINT}
  instance_type: INSTANCE_TYPE
  capture: {{s3_uri: s3://skyops-capture/production, percentage: 25}}
  autoscaling: {{min_instances: 1, max_instances: 3, target_invocations_per_instance: 90}}
"""
STAGING = f"environment: staging\nmodel: {GROUP}\nalias: staging\nversion: null\n"


@pytest.fixture
def project(moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with production on SageMaker (v1 approved by alice) and staging local; the role from the environment."""
    (tmp_path / ROLES_FILE).write_text(ROLES)
    (tmp_path / "deploy" / "environments").mkdir(parents=True)
    (tmp_path / "deploy" / "environments" / "staging.yaml").write_text(STAGING)
    desire(tmp_path, 1)
    monkeypatch.setenv("SKYOPS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("SKYOPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SKYOPS_SAGEMAKER_ROLE_ARN", ROLE)
    monkeypatch.delenv("SKYOPS_USER", raising=False)
    packages = ModelPackages(AwsGuard())
    packages.ensure_group(GROUP)
    packages._register(GROUP, "s3://skyops-models/run1/model.tar.gz", IMAGE)
    governed = GovernedRegistry(PackageGroupStore(packages, GROUP), Governance(tmp_path, tmp_path / "state" / "audit.log"))
    governed.approve("alice", 1, reason="good")
    return tmp_path


def desire(project: Path, version: int, instance_type: str = "ml.m5.large") -> None:
    (project / "deploy" / "environments" / "production.yaml").write_text(
        PRODUCTION.replace("VERSION", str(version)).replace("INSTANCE_TYPE", instance_type)
    )


def test_plan_apply_again_and_status(project: Path, moto: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    code, planned, err = cli(capsys, "deploy", "plan", "--env", "production")
    assert code == 0, err
    lines = planned.splitlines()
    model, config = lines[0].split(" ")[3].rstrip(":"), lines[1].split(" ")[4].rstrip(":")  # named <endpoint>-v<version>-<hash>
    assert re.fullmatch(rf"{ENDPOINT}-v1-[0-9a-f]{{8}}", model) and re.fullmatch(rf"{ENDPOINT}-v1-[0-9a-f]{{8}}", config)
    assert lines == [
        f"~ create model {model}: {GROUP} v1 (arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/1, "
        "model data s3://skyops-models/run1/model.tar.gz)",
        f"~ create endpoint config {config}: 1 x ml.m5.large, capture 25% to s3://skyops-capture/production",
        f"~ create endpoint {ENDPOINT} serving {GROUP} v1",
        f"~ put alarm {ERRORS}: Invocation5XXErrors Average > 0.01 for 2 x 60 s",
        f"~ put alarm {LATENCY}: ModelLatency Average > 1000 ms for 2 x 60 s",
        f"~ register autoscaling of {RESOURCE}: 1..3 instances",
        f"~ put scaling policy {ENDPOINT}-invocations-per-instance: target 90 invocations per instance per minute",
    ]

    code, applied, err = cli(capsys, "deploy", "apply", "--env", "production", "--as", "alice")
    assert code == 0, err
    assert applied.splitlines() == [line.replace("~ ", "applied: ", 1) for line in planned.splitlines()]
    code, again, _ = cli(capsys, "deploy", "apply", "--env", "production", "--as", "alice")
    assert (code, again) == (0, f"production: nothing to do, already SageMaker endpoint {ENDPOINT} serving {GROUP} v1\n")
    assert (
        cli(capsys, "deploy", "plan", "--env", "production")[1]
        == f"production: in sync (SageMaker endpoint {ENDPOINT} serving {GROUP} v1)\n"
    )

    code, shown, _ = cli(capsys, "deploy", "status")
    lines = shown.splitlines()
    assert code == 0 and lines[:6] == [
        f"production: SageMaker endpoint {ENDPOINT}: InService",
        f"  serving     {GROUP} v1 (arn:aws:sagemaker:eu-west-1:123456789012:model-package/{GROUP}/1); desired v1",
        f"  config      {config}: ml.m5.large, 1 instance now",
        "  capture     25% to s3://skyops-capture/production",
        "  scaling     1..3 instances, target 90 invocations per instance per minute",
        f"  alarms      {ERRORS} OK, {LATENCY} OK",
    ]
    assert re.fullmatch(rf"  last apply  \S+ by alice: {GROUP}:1@production succeeded", lines[6])
    staging = project / "deploy" / "environments" / "staging.yaml"  # a local environment: skyops.deploy_local.status's line
    assert lines[7:] == [f"staging     not served on this machine ({staging} has no local: section)"]
    audited = [(r.actor, r.action, r.target, r.outcome) for r in AuditLog(project / "state" / "audit.log").outcomes()]
    assert audited[-1] == ("alice", "deploy", f"{GROUP}:1@production", "succeeded") and len(audited) == 2  # approve, one apply


def test_plan_names_every_problem_apply_would_refuse(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    desire(project, 2, instance_type="ml.m5.huge")
    code, out, err = cli(capsys, "deploy", "plan", "--env", "production")
    assert code == 2 and out == ""
    assert err.splitlines()[:3] == [
        f"error: 2 problems in the desired state {project}/deploy/environments/production.yaml (apply would refuse it):",
        f"  - {GROUP} has no version 2 (versions: v1)",
        "  - sagemaker.instance_type 'ml.m5.huge' is not an instance type SageMaker endpoints take (botocore's "
        "ProductionVariantInstanceType); e.g. ml.m5.large, ml.c5.xlarge, ml.g4dn.xlarge",
    ]


def test_a_data_scientist_s_apply_is_refused_before_any_request(
    project: Path, moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = len(moto.requests)
    code, out, err = cli(capsys, "deploy", "apply", "--env", "production", "--as", "bob")
    assert code == 2 and out == "" and err.startswith(f"error: bob (role data-scientist) may not deploy {GROUP}:1@production")
    assert len(moto.requests) == sent
    code, out, err = cli(capsys, "deploy", "status", "--env", "production")
    assert (code, out.splitlines()[0]) == (0, f"production: SageMaker endpoint {ENDPOINT}: none (desired {GROUP} v1)")


def test_another_aws_profile_is_one_line_and_no_request(
    project: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "other")
    sent = len(moto.requests)
    for command in (("plan",), ("apply", "--as", "alice"), ("status",)):
        code, out, err = cli(capsys, "deploy", *command, "--env", "production")
        assert code == 2 and out == "" and err.startswith("error: 1 problem in the AWS guard for profile 'ab' (refused before any request)")
    assert len(moto.requests) == sent


def test_a_claimed_identity_without_a_role_is_refused_before_any_request(
    project: Path, moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sent = len(moto.requests)
    code, out, err = cli(capsys, "deploy", "apply", "--env", "production", "--as", "mallory")
    assert (code, out) == (2, "")
    assert err.startswith(
        f"error: mallory (role none, default_role of skyops-roles.yaml) may not deploy {GROUP}:1@production: deploy needs the role"
    )
    assert len(moto.requests) == sent
    last = list(AuditLog(project / "state" / "audit.log").outcomes())[-1]
    assert (last.actor, last.role, last.action, last.outcome) == ("mallory", "none", "deploy", "denied")


def test_a_version_without_model_data_is_named_by_plan_and_refused_by_apply(
    project: Path, moto: MotoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    packages = ModelPackages(AwsGuard())
    arn = packages.sagemaker.create_model_package(ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval")[
        "ModelPackageArn"
    ]
    GovernedRegistry(PackageGroupStore(packages, GROUP), Governance(project, project / "state" / "audit.log")).approve(
        "alice", 2, reason="ok"
    )
    desire(project, 2)
    refusal = (
        f"  - {GROUP} v2 has nothing to serve: its package {arn} records no ModelDataUrl (its model.tar.gz) and no inference Image; "
        "register the model with its model.tar.gz and image (the pipeline's RegisterModel step does), approve that version and name it here"
    )
    code, out, err = cli(capsys, "deploy", "plan", "--env", "production")
    assert (code, out, err.splitlines()[1]) == (2, "", refusal)
    code, out, err = cli(capsys, "deploy", "apply", "--env", "production", "--as", "alice")
    assert (code, out, err.splitlines()[0]) == (2, "", f"error: {refusal[4:]}")
    assert "CreateModel" not in moto.operations


def test_a_failed_apply_is_shown_by_status_with_what_it_made_and_applying_again_finishes(
    project: Path, moto: MotoServer, faults: Faults, capsys: pytest.CaptureFixture[str]
) -> None:
    from moto.sagemaker.responses import SageMakerResponse

    faults.fail(SageMakerResponse, "create_endpoint")
    code, out, err = cli(capsys, "deploy", "apply", "--env", "production", "--as", "alice")
    assert (code, out) == (1, "")
    error, hint = err.splitlines()
    assert error.startswith(
        f"error: deploying {GROUP} v1 to SageMaker endpoint {ENDPOINT} stopped part-way: CreateEndpoint {ENDPOINT} failed"
    )
    assert hint.startswith("hint: what was made stays")
    code, shown, _ = cli(capsys, "deploy", "status", "--env", "production")
    lines = shown.splitlines()
    assert code == 0 and lines[0] == f"production: SageMaker endpoint {ENDPOINT}: none (desired {GROUP} v1)"
    assert re.fullmatch(
        rf"  last apply  \S+ by alice: {GROUP}:1@production failed: EndpointIncomplete: deploying {GROUP} v1 .* stopped part-way: .*",
        lines[2],
    )
    assert re.fullmatch(
        rf"  made then    CreateModel {ENDPOINT}-v1-\w+, CreateEndpointConfig {ENDPOINT}-v1-\w+, PutMetricAlarm {ERRORS}, PutMetricAlarm {LATENCY}",
        lines[3],
    )
    faults.heal()
    code, applied, err = cli(capsys, "deploy", "apply", "--env", "production", "--as", "alice")
    assert code == 0, err
    assert applied.splitlines()[0] == f"applied: create endpoint {ENDPOINT} serving {GROUP} v1"
    assert cli(capsys, "deploy", "status", "--env", "production")[1].splitlines()[0].endswith(": InService")


def test_status_names_an_apply_that_began_and_has_no_outcome(project: Path, moto: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    from skyops.registry.roles import Action

    governance = Governance(project, project / "state" / "audit.log")
    governance.begin("alice", Action.DEPLOY, f"{GROUP}:1@production", intended={"target": "sagemaker", "changes": []})  # then killed
    lines = cli(capsys, "deploy", "status", "--env", "production")[1].splitlines()
    assert re.fullmatch(
        rf"  last apply  \S+ by alice: {GROUP}:1@production has no outcome \(stopped part-way\?\): `skyops deploy plan` shows "
        r"what is left, `skyops audit verify` the open intent",
        lines[2],
    )
