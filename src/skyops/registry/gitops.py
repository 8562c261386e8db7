"""GitOps: the desired model version per environment lives in git; `apply` makes it so.

    deploy/environments/production.yaml      environment, model, alias, version (desired)
    <state>/deployments/production.json      what was last applied (actual)

`plan` compares the two (and the registry's alias); `apply` refuses versions that are not
Approved, moves the alias (for @champion the old one becomes @previous), records the deployed
state (atomically) and audits it. Applying twice changes nothing. A rollback is `git revert` of the
file, then `apply`. Serving reads the deployed state; until a server runs, apply is bookkeeping plus
aliases. A damaged deployed record (not JSON, wrong shape, a version the registry no longer has)
stops `plan` with a `StateFileError`; `apply` treats it as unknown and rewrites it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from skyops.errors import ConfigError, StateFileError
from skyops.pipeline.hashing import write_json_atomic
from skyops.registry.lookup import RegistryLookup
from skyops.registry.models import ALIASES, ApprovalStatus, ModelRegistry
from skyops.registry.roles import Action, Governance
from skyops.statefile import is_text, is_version, read_json_state, shape_problems

ENVIRONMENTS = Path("deploy") / "environments"
RECORD = 'a JSON object {"environment", "model", "alias", "version": positive integer or null, ...}, as `skyops deploy apply` writes it'


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
    damaged: str = ""  # why the deployed record was ignored (apply rewrites it); '' when it was sound

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
    """The record of the last `apply` to `environment`, None when there is none.

    Raises:
        StateFileError: the record is unreadable, not JSON, or not of the shape apply writes.
    """
    path = deployed_path(state_dir, environment)
    if not path.exists():
        return None
    return read_json_state(
        path,
        what=f"deployed record of environment {environment!r}",
        expected=RECORD,
        hint=f"run `skyops deploy apply --env {environment}`: it rewrites the record from the desired state",
        problems=_record_problems,
    )


def plan(desired: DesiredState, registry: ModelRegistry, state_dir: Path, *, rewrite_damaged: bool = False) -> Plan:
    """What `apply` would change to reach `desired`.

    Args:
        rewrite_damaged: treat a damaged deployed record as unknown (apply's view: it rewrites it)
            instead of raising StateFileError (plan's view: say so and stop).
    """
    try:
        deployed, damaged = _checked_record(desired.environment, registry, state_dir), ""
    except StateFileError as e:
        if not rewrite_damaged:
            raise
        deployed, damaged = None, e.message
    current = registry.by_alias(desired.alias)
    same_model = deployed is not None and deployed["model"] == desired.model
    deployed_version = deployed["version"] if deployed is not None and same_model else None
    alias_version = current.version if current else None
    changes = []
    if damaged:
        changes.append(f"{desired.environment}: rewrite the damaged record: {damaged}")
    if desired.version != deployed_version or (deployed is not None and not same_model):
        now = _v(deployed_version) if deployed is None or same_model else f"{deployed['model']} {_v(deployed['version'])}"
        changes.append(f"{desired.environment}: deploy {desired.model} {_v(desired.version)} (now {now})")
    if desired.version != alias_version:
        changes.append(f"@{desired.alias}: {_v(alias_version)} -> {_v(desired.version)}")
    return Plan(desired=desired, deployed=deployed_version, alias_points_to=alias_version, changes=changes, damaged=damaged)


def _checked_record(environment: str, registry: ModelRegistry, state_dir: Path) -> dict[str, Any] | None:
    """The deployed record, checked against the registry: it must name a version that exists."""
    deployed = read_deployed(state_dir, environment)
    if deployed is None or deployed["version"] is None:
        return deployed
    if RegistryLookup(registry.store.uri).version(deployed["model"], deployed["version"]) is None:
        raise StateFileError(
            f"deployed record {deployed_path(state_dir, environment)} names {deployed['model']} v{deployed['version']}, "
            "which the registry does not have",
            hint=f"run `skyops deploy apply --env {environment}`: it deploys the desired version and rewrites the record",
        )
    return deployed


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


def _record_problems(value: Any) -> list[str]:
    def version_or_null(v: Any) -> bool:
        return v is None or is_version(v)

    return shape_problems(
        value,
        [
            ("environment", is_text, "an environment name"),
            ("model", is_text, "a model name"),
            ("alias", is_text, "an alias"),
            ("version", version_or_null, "a positive integer or null"),
        ],
    )


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"
