"""The stacks' outputs, kept in the state folder, as the SageMaker engine's default settings.

    outputs = fetch_outputs(Stacks(guard), env, guard.check())     # DescribeStacks of both stacks; None: no core stack
    save_outputs(state_dir, outputs)                              # .skyops/infra/<env>.json (atomic)
    sagemaker_defaults(outputs)                                   # {"SKYOPS_SAGEMAKER_BUCKET": ..., ...}

`skyops sagemaker compile|upsert` read these under the environment: an option or a `SKYOPS_SAGEMAKER_*` variable
still wins. `compile` sends nothing, so it reads the kept copy only; `upsert` looks the core stack up when no copy of
this profile and region is kept. `skyops infra deploy` and `outputs` rewrite the copy, `destroy` removes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import skyops
from skyops.aws.infra import InfraEnvironment
from skyops.pipeline.hashing import write_json_atomic
from skyops.statefile import read_json_state, shape_problems

if TYPE_CHECKING:
    from skyops.aws.infra_stacks import Stacks
    from skyops.aws.session import AwsGuard, GuardReport

ENV_PREFIX = "SKYOPS_SAGEMAKER_"  # skyops.pipeline.sagemaker.settings reads these
# Core stack output -> the SageMaker setting it provides.
SETTINGS_FROM_OUTPUTS = {"BucketName": "BUCKET", "PipelineExecutionRoleArn": "ROLE_ARN"}


@dataclass(frozen=True)
class InfraOutputs:
    """The outputs of an environment's stacks, as read from CloudFormation with `profile` in `region`."""

    environment: str
    profile: str
    region: str
    core: Mapping[str, str]
    studio: Mapping[str, str]
    read_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "profile": self.profile,
            "region": self.region,
            "core": dict(self.core),
            "studio": dict(self.studio),
            "read_at": self.read_at,
        }


def outputs_path(state_dir: Path, env: InfraEnvironment) -> Path:
    return state_dir / "infra" / f"{env.name}.json"


def fetch_outputs(stacks: Stacks, env: InfraEnvironment, report: GuardReport) -> InfraOutputs | None:
    """Both stacks' outputs (DescribeStacks), or None when the core stack does not exist or has none yet."""
    core = stacks.describe(env.core_stack)
    if core is None or not core.outputs:
        return None
    studio = stacks.describe(env.studio_stack)
    return InfraOutputs(
        environment=env.name,
        profile=report.profile,
        region=report.region,
        core=dict(core.outputs),
        studio=dict(studio.outputs) if studio is not None else {},
        read_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def save_outputs(state_dir: Path, outputs: InfraOutputs) -> Path:
    path = outputs_path(state_dir, InfraEnvironment(outputs.environment))
    write_json_atomic(path, outputs.to_json())
    return path


def forget_outputs(state_dir: Path, env: InfraEnvironment) -> None:
    outputs_path(state_dir, env).unlink(missing_ok=True)


def kept_outputs(state_dir: Path, env: InfraEnvironment) -> InfraOutputs | None:
    """The copy `deploy` or `outputs` kept, or None. A damaged copy is a StateFileError naming the file."""
    path = outputs_path(state_dir, env)
    if not path.exists():
        return None

    def text(value: Any) -> bool:
        return isinstance(value, str)

    def table(value: Any) -> bool:
        return isinstance(value, dict)

    def problems(value: Any) -> list[str]:
        fields = [(key, text, "a string") for key in ("environment", "profile", "region", "read_at")]
        return shape_problems(value, [*fields, ("core", table, "an object"), ("studio", table, "an object")])

    data = read_json_state(
        path,
        what="kept stack outputs",
        expected='a JSON object {"environment", "profile", "region", "core", "studio", "read_at"}',
        hint=f"read them again: skyops infra outputs --env {env.name} (or delete the file)",
        problems=problems,
    )
    return InfraOutputs(
        environment=data["environment"],
        profile=data["profile"],
        region=data["region"],
        core={str(k): str(v) for k, v in data["core"].items()},
        studio={str(k): str(v) for k, v in data["studio"].items()},
        read_at=data["read_at"],
    )


def sagemaker_defaults(outputs: InfraOutputs | None) -> dict[str, str]:
    """`SKYOPS_SAGEMAKER_*` values the stack provides: bucket, pipeline role, region and the image of this skyops version."""
    if outputs is None:
        return {}
    found = {ENV_PREFIX + setting: outputs.core[key] for key, setting in SETTINGS_FROM_OUTPUTS.items() if outputs.core.get(key)}
    found[ENV_PREFIX + "REGION"] = outputs.region
    if repository := outputs.core.get("ImageRepositoryUri"):
        found[ENV_PREFIX + "IMAGE_URIS"] = json.dumps({outputs.region: f"{repository}:{skyops.__version__}"})
    return found


def stack_settings(guard: AwsGuard, state_dir: Path, env: InfraEnvironment) -> dict[str, str]:
    """The defaults of `sagemaker_defaults` for the guard's profile and region: the kept copy when it is theirs, else
    the core stack looked up (and kept). {} when the environment has no core stack there."""
    return sagemaker_defaults(stack_outputs(guard, state_dir, env))


def stack_outputs(guard: AwsGuard, state_dir: Path, env: InfraEnvironment) -> InfraOutputs | None:
    """The environment's outputs for the guard's profile and region: the kept copy when it is theirs, else the core
    stack looked up (DescribeStacks) and kept. None when the environment has no core stack there."""
    from skyops.aws.infra_stacks import Stacks

    report = guard.check()
    kept = kept_outputs(state_dir, env)
    if kept is not None and (kept.profile, kept.region) == (report.profile, report.region):
        return kept
    found = fetch_outputs(Stacks(guard), env, report)
    if found is not None:
        save_outputs(state_dir, found)
    return found
