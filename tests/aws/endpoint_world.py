"""The world of the SageMaker endpoint tests: an Approved-or-not package group behind the governed API, the
endpoint deployment over the same guard, and helpers to register, deploy and read what was sent and audited."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyops.aws.endpoint_deploy import EndpointDeployment
from skyops.aws.model_packages import ModelPackages, PackageCandidate, PackageGroupStore
from skyops.aws.session import AwsGuard
from skyops.registry.audit import AuditLog
from skyops.registry.gitops import DesiredState
from skyops.registry.governed import GovernedRegistry
from skyops.registry.roles import ROLES_FILE, Governance
from skyops.targets import Alarms, Autoscaling, Canary, Capture, SageMakerTarget, Target

from .conftest import CheckedRequests, MotoServer

GROUP = "drone-detector"
ENDPOINT = "drone-detector-production"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/skyops:1"
ROLE = "arn:aws:iam::123456789012:role/skyops-sagemaker"
ROLES = "default_role: none\nusers: {alice: ml-engineer, bob: data-scientist}\n"
ERRORS, LATENCY = f"{ENDPOINT}-invocation-5xx-errors", f"{ENDPOINT}-model-latency"
RESOURCE = f"endpoint/{ENDPOINT}/variant/AllTraffic"
SETTINGS = SageMakerTarget(
    endpoint=ENDPOINT,
    role_arn=ROLE,
    instance_type="ml.m5.large",
    instance_count=2,
    capture=Capture(s3_uri="s3://skyops-capture/production", percentage=20),
    canary=Canary(size_percent=50, wait_seconds=600, termination_wait_seconds=300, max_execution_seconds=3600),
    alarms=Alarms(max_5xx_rate=0.02, max_latency_ms=800.0, period_seconds=60, evaluation_periods=3),
    autoscaling=Autoscaling(min_instances=2, max_instances=4, target_invocations_per_instance=120.0),
)
READS = {"ListModelPackages", "DescribeModelPackage", "DescribeEndpoint", "DescribeEndpointConfig", "DescribeModel"}
READS |= {"DescribeAlarms", "DescribeScalableTargets", "DescribeScalingPolicies"}


def desired(version: int | None, settings: SageMakerTarget = SETTINGS) -> DesiredState:
    source = "deploy/environments/production.yaml"
    return DesiredState(
        environment="production", model=GROUP, alias=None, version=version, source=source, target=Target.SAGEMAKER, sagemaker=settings
    )


@dataclass
class World:
    """A package group with the governed API over it, the endpoint deployment, and the moto server they talk to."""

    moto: MotoServer
    packages: ModelPackages
    governed: GovernedRegistry[PackageCandidate]
    deployment: EndpointDeployment
    checked: CheckedRequests

    def version(self, run: int, *, approve: bool = True) -> int:
        """Register run `run`'s model (pending), approved by alice unless told otherwise; its version number."""
        arn = self.packages._register(GROUP, f"s3://skyops-models/run{run}/model.tar.gz", IMAGE, description=f"run {run}")
        number = self.packages.describe(arn).version
        if approve:
            self.governed.approve("alice", number, reason=f"run {run} is good")
        return number

    def audited(self) -> list[tuple[str, str, str, str]]:
        return [(r.actor, r.action, r.target, str(r.outcome)) for r in AuditLog(self.governed.governance.audit.path).outcomes()]

    def last_record(self) -> Any:
        return list(AuditLog(self.governed.governance.audit.path).outcomes())[-1]

    def sent_since(self, mark: int) -> list[str]:
        return self.moto.operations[mark:]


def deployed(world: World, version: int, settings: SageMakerTarget = SETTINGS) -> None:
    world.governed.deploy_to("alice", desired(version, settings), world.deployment)


def make_world(moto: MotoServer, guard: AwsGuard, checked: CheckedRequests, project: Path) -> World:
    """The `world` fixture's world (tests/aws/conftest.py): group drone-detector, alice ml-engineer, bob data-scientist."""
    (project / ROLES_FILE).write_text(ROLES)
    packages = ModelPackages(guard)
    packages.ensure_group(GROUP)
    governed = GovernedRegistry(PackageGroupStore(packages, GROUP), Governance(project, project / "audit.log"))
    return World(moto, packages, governed, EndpointDeployment(packages, poll_seconds=0.01), checked)
