"""GitOps: the desired model version per environment lives in git; `apply` makes it so.

    deploy/environments/production.yaml      environment, model, alias, version (desired)
    <state>/deployments/production.json      what was last applied (actual)

`plan` compares the two (and the registry's alias); `apply` refuses versions that are not
Approved, moves the alias (for @champion the old one becomes @previous), records the deployed
state and audits it. Applying twice changes nothing. A rollback is `git revert` of the file, then
`apply`. Serving reads the deployed state; until a server runs, apply is bookkeeping plus aliases.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from skyops.errors import ConfigError
from skyops.pipeline.hashing import write_json_atomic
from skyops.registry.models import ALIASES, ApprovalStatus, ModelRegistry
from skyops.registry.roles import Action, Governance

ENVIRONMENTS = Path("deploy") / "environments"


@dataclass(frozen=True, kw_only=True)
class DesiredState:
    environment: str
    model: str
    alias: str
    version: int | None  # None: nothing deployed
    source: str


@dataclass(frozen=True, kw_only=True)
class Plan:
    desired: DesiredState
    deployed: int | None  # version last applied to this environment
    alias_points_to: int | None  # the registry alias now
    changes: list[str]

    @property
    def in_sync(self) -> bool:
        return not self.changes


def load_desired(project_dir: Path, environment: str) -> DesiredState:
    path = project_dir / ENVIRONMENTS / f"{environment}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (project_dir / ENVIRONMENTS).glob("*.yaml"))
        raise ConfigError(f"no desired state for environment {environment!r} at {path}", hint=f"environments: {', '.join(known) or 'none'}")
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    problems = [f"missing key {k!r}" for k in ("environment", "model", "alias", "version") if k not in data]
    if not problems and data["alias"] not in ALIASES:
        problems.append(f"alias {data['alias']!r} is not one of {', '.join(ALIASES)}")
    if not problems and data["version"] is not None and not (isinstance(data["version"], int) and data["version"] >= 1):
        problems.append(f"version {data['version']!r} must be a positive integer or null")
    if not problems and data["environment"] != environment:
        problems.append(f"environment {data['environment']!r} differs from the file name {environment!r}")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems), hint="see deploy/environments/README.md for the format")
    return DesiredState(
        environment=environment, model=str(data["model"]), alias=str(data["alias"]), version=data["version"], source=str(path)
    )


def deployed_path(state_dir: Path, environment: str) -> Path:
    return state_dir / "deployments" / f"{environment}.json"


def read_deployed(state_dir: Path, environment: str) -> dict[str, Any] | None:
    path = deployed_path(state_dir, environment)
    return json.loads(path.read_text()) if path.is_file() else None


def plan(desired: DesiredState, registry: ModelRegistry, state_dir: Path) -> Plan:
    deployed = read_deployed(state_dir, desired.environment)
    current = registry.by_alias(desired.alias)
    deployed_version = deployed["version"] if deployed else None
    alias_version = current.version if current else None
    changes = []
    if desired.version != deployed_version:
        changes.append(f"{desired.environment}: deploy {desired.model} v{desired.version} (now {_v(deployed_version)})")
    if desired.version != alias_version:
        changes.append(f"@{desired.alias}: {_v(alias_version)} -> {_v(desired.version)}")
    return Plan(desired=desired, deployed=deployed_version, alias_points_to=alias_version, changes=changes)


def apply(the_plan: Plan, registry: ModelRegistry, governance: Governance, actor: str, state_dir: Path) -> Plan:
    """Reconcile; a no-op when in sync. Raises PermissionDenied or ConfigError before changing anything."""
    desired = the_plan.desired
    if the_plan.in_sync:
        return the_plan
    target = f"{desired.model}:{desired.version}@{desired.environment}"
    if desired.version is not None:
        version = registry.get(desired.version)
        if version.status is not ApprovalStatus.APPROVED:
            raise ConfigError(
                f"{desired.source} asks for {desired.model} v{desired.version}, which is {version.status.value}, not Approved",
                hint=f"an ML Engineer approves it first: skyops models approve {desired.version} --reason ...",
            )
    with governance.action(actor, Action.DEPLOY, target, reason=f"apply {desired.source}") as act:
        if desired.version is None:
            registry.set_alias(desired.alias, None)
        elif desired.alias == "champion":
            old = registry.promote(desired.version)
            act.details["previous"] = old.version if old else None
        else:
            registry.set_alias(desired.alias, desired.version)
        record = {**asdict(desired), "applied_by": actor, "applied_at": time.time()}
        write_json_atomic(deployed_path(state_dir, desired.environment), record)
        act.details["changes"] = the_plan.changes
    return plan(desired, registry, state_dir)


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"
