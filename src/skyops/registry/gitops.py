"""GitOps: the desired model version per environment lives in git; `apply` makes it so.

    deploy/environments/production.yaml      environment, model, alias, version (desired); target and its settings
    <state>/deployments/production.json      what was last applied (actual), for the local target

`load_desired` checks the file's types (a model name, a known alias, a positive version or null, a
target: `local` by default, or `sagemaker` with its endpoint's settings, `skyops.targets`);
`desired_problems` checks it against the registry and the audit log: the version exists and is
Approved, and the model's registry holds nothing the audit log does not explain (drift.py). `plan`
compares desired and deployed (and the registry's alias); `skyops deploy plan` refuses, one line per
problem, what apply would refuse. Applying is a governed action: `GovernedRegistry.deploy` checks the
role and the same problems, moves the alias (for @champion the old one becomes @previous), writes the
deployed record (atomically) and audits it. Applying twice changes nothing. A rollback is
`git revert` of the file, then `apply`. An environment with a `local:` section (skyops.serving.local_target)
is also served on this machine: the CLI gives the deploy a `serve` hook, skyops.deploy_local's blue/green,
which runs before the alias moves; without the section, apply is bookkeeping plus aliases.

With `target: sagemaker` the environment is a SageMaker endpoint, applied through
`GovernedRegistry.deploy_to` (`skyops.aws.endpoint_deploy`): the endpoint itself says what it serves,
so no deployed record is written, and the model's package group has no aliases to move.

The deployed record is a copy of what the last apply did, so it is checked on read against the
registry (the version exists) and the audit log (the last succeeded apply to that environment named
the same model and version). A damaged or contradicted record stops `plan` with a `StateFileError`
naming both sides; `apply` treats it as unknown and rewrites it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyops.errors import ConfigError, StateFileError, problems_error
from skyops.pipeline.hashing import write_json_atomic
from skyops.registry.audit import AuditRecord
from skyops.registry.drift import RegistryState, registry_drift
from skyops.registry.ledger import MODEL_NAME, deployments
from skyops.registry.lookup import RegistryLookup
from skyops.registry.models import ALIASES, ModelRegistry
from skyops.registry.rules import not_approved
from skyops.serving.local_target import LocalTarget, parse_local
from skyops.statefile import is_text, is_version, read_json_state, shape_problems
from skyops.targets import SageMakerTarget, Target, parse_sagemaker

ENVIRONMENTS = Path("deploy") / "environments"
RECORD = 'a JSON object {"environment", "model", "alias", "version": positive integer or null, ...}, as `skyops deploy apply` writes it'
KEYS = ("environment", "model", "alias", "version")
TARGET_KEYS = ("target", "sagemaker", "local")  # optional: where the version is served (default local); `local:` serves it on this machine
FORMAT_HINT = "see deploy/environments/README.md for the format"


@dataclass(frozen=True, kw_only=True)
class DesiredState:
    environment: str
    model: str
    alias: str | None  # the registry alias a local environment follows; None for a SageMaker endpoint (no aliases there)
    version: int | None  # None: nothing deployed
    source: str
    target: Target = Target.LOCAL
    sagemaker: SageMakerTarget | None = None  # the endpoint's settings when target is sagemaker
    local: LocalTarget | None = None  # the `local:` section, defaults filled in; None: not served on this machine

    def local_alias(self) -> str:
        """The alias a local environment follows (load_desired guarantees one); ConfigError for a SageMaker one."""
        if self.target is not Target.LOCAL or self.alias is None:
            raise ConfigError(
                f"{self.source} deploys to target {self.target}, which has no registry alias to move",
                hint="apply it with `skyops deploy apply`, which deploys a SageMaker target through GovernedRegistry.deploy_to",
            )
        return self.alias


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
    """The desired state of `environment`, its types checked (every problem at once).

    Raises:
        ConfigError: an environment name that is not a plain name, no such file, not YAML, a missing or
            unknown key, a model that is not a name, an unknown alias, a version that is not a positive
            integer or null (`true` is not a version), an `environment` that is not the file's name, an
            unknown target, or target settings of the wrong type or range (skyops.targets); an
            alias is required for the local target and refused for sagemaker (no aliases there).
    """
    folder = project_dir / ENVIRONMENTS
    known = sorted(p.stem for p in folder.glob("*.yaml"))
    if not MODEL_NAME.fullmatch(environment):
        raise ConfigError(
            f"environment {environment!r} is not a name; expected letters, digits, '.', '_' or '-', e.g. production",
            hint=f"environments: {', '.join(known) or 'none'}",
        )
    path = folder / f"{environment}.yaml"
    if not path.is_file():
        raise ConfigError(f"no desired state for environment {environment!r} at {path}", hint=f"environments: {', '.join(known) or 'none'}")
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({type(exc).__name__})", hint=FORMAT_HINT) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(KEYS)}, found {type(data).__name__}", hint=FORMAT_HINT)
    target = _target(data.get("target", Target.LOCAL.value))
    required = [k for k in KEYS if k != "alias" or target is not Target.SAGEMAKER]
    problems = [f"missing key {k!r}" for k in required if k not in data]
    problems += [f"unknown key {k!r}; expected {', '.join(KEYS + TARGET_KEYS)}" for k in data if k not in KEYS + TARGET_KEYS]
    model, alias, version = data.get("model"), data.get("alias"), data.get("version")
    if "model" in data and not (isinstance(model, str) and MODEL_NAME.fullmatch(model)):
        problems.append(f"model {model!r} is not a model name; expected e.g. drone-detector")
    sagemaker = None
    if target is None:
        problems.append(f"target {data['target']!r} is not one of {', '.join(Target)}")
    elif target is Target.SAGEMAKER:
        if "alias" in data:
            problems.append(
                f"alias {alias!r} does not apply to target sagemaker: a model package group has no aliases, "
                f"the endpoint serves the version named here; remove the alias"
            )
        sagemaker = parse_sagemaker(data.get("sagemaker"), problems)
    else:
        if "alias" in data and alias not in ALIASES:
            problems.append(f"alias {alias!r} is not one of {', '.join(ALIASES)}")
        if "sagemaker" in data:
            problems.append("sagemaker settings are given but the target is local; set `target: sagemaker`, or remove them")
    if "version" in data and version is not None and not (isinstance(version, int) and not isinstance(version, bool) and version >= 1):
        problems.append(f"version {version!r} is not a positive integer or null")
    if "environment" in data and data["environment"] != environment:
        problems.append(f"environment {data['environment']!r} differs from the file name {environment!r}")
    if "local" in data and target is Target.SAGEMAKER:
        problems.append("key 'local' serves a version on this machine; a target: sagemaker environment is served by its endpoint")
    local = parse_local(data["local"], environment, problems) if "local" in data and target is not Target.SAGEMAKER else None
    if problems:
        raise problems_error(ConfigError, f"the desired state {path}", problems, hint=FORMAT_HINT)
    return DesiredState(
        environment=environment,
        model=str(model),
        alias=None if target is Target.SAGEMAKER else str(alias),
        version=version,
        source=str(path),
        target=target or Target.LOCAL,
        sagemaker=sagemaker,
        local=local,
    )


def desired_problems(desired: DesiredState, registry: RegistryState, records: Sequence[AuditRecord]) -> list[str]:
    """What makes `apply` refuse `desired`, one line each: a version the registry lacks or that is not Approved,
    and registry state of the model the audit log does not explain. Empty: apply may proceed."""
    problems = registry_drift(registry, records) + version_problems(desired, registry.statuses())
    return [p for p in problems if p]


def version_problems(desired: DesiredState, statuses: Mapping[int, str]) -> list[str]:
    """Why `desired.version` cannot be deployed, one line (empty when it exists and is Approved, or is null).

    Args:
        statuses: version -> stored status of the model (`RegistryStore.statuses()`).
    """
    if desired.version is None:
        return []
    status = statuses.get(desired.version)
    if status is None:
        known = ", ".join(f"v{v}" for v in sorted(statuses)) or "none"
        return [f"{desired.model} has no version {desired.version} (versions: {known})"]
    return [p for p in [not_approved(desired.model, desired.version, status, "deployed")] if p]


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


def plan(
    desired: DesiredState, registry: ModelRegistry, state_dir: Path, records: Sequence[AuditRecord], *, rewrite_damaged: bool = False
) -> Plan:
    """What `apply` would change to reach `desired`.

    Args:
        records: the audit log's records, which the deployed record is checked against.
        rewrite_damaged: treat a damaged deployed record as unknown (apply's view: it rewrites it)
            instead of raising StateFileError (plan's view: say so and stop).
    """
    try:
        deployed, damaged = _checked_record(desired.environment, registry, state_dir, records), ""
    except StateFileError as e:
        if not rewrite_damaged:
            raise
        deployed, damaged = None, e.message
    current = registry.by_alias(desired.local_alias())
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
        changes.append(f"@{desired.local_alias()}: {_v(alias_version)} -> {_v(desired.version)}")
    return Plan(desired=desired, deployed=deployed_version, alias_points_to=alias_version, changes=changes, damaged=damaged)


def write_deployed(state_dir: Path, desired: DesiredState, actor: str) -> None:
    """Record (atomically) that `desired` was applied by `actor`; called by the governed deploy (local target)."""
    record = {
        "environment": desired.environment,
        "model": desired.model,
        "alias": desired.local_alias(),
        "version": desired.version,
        "source": desired.source,
        "applied_by": actor,
        "applied_at": time.time(),
    }
    write_json_atomic(deployed_path(state_dir, desired.environment), record)


def _checked_record(environment: str, registry: ModelRegistry, state_dir: Path, records: Sequence[AuditRecord]) -> dict[str, Any] | None:
    """The deployed record, checked against the registry (its version exists) and the audit log (the last apply agrees)."""
    deployed = read_deployed(state_dir, environment)
    if deployed is None:
        return None
    path = deployed_path(state_dir, environment)
    hint = f"run `skyops deploy apply --env {environment}`: it deploys the desired version and rewrites the record"
    says = f"{deployed['model']} {_v(deployed['version'])}"
    if deployed["version"] is not None and RegistryLookup(registry.store.uri).version(deployed["model"], deployed["version"]) is None:
        raise StateFileError(f"deployed record {path} names {says}, which the registry does not have", hint=hint)
    audited = deployments(records).get(environment)
    if audited is None:
        raise StateFileError(f"deployed record {path} says {says}; the audit log has no apply to {environment}", hint=hint)
    if (audited.model, audited.version) != (deployed["model"], deployed["version"]):
        raise StateFileError(
            f"deployed record {path} says {says}; the audit log's last apply to {environment} says "
            f"{audited.model} {_v(audited.version)} (seq {audited.seq})",
            hint=hint,
        )
    return deployed


def _target(value: Any) -> Target | None:
    return Target(value) if isinstance(value, str) and value in tuple(Target) else None


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
