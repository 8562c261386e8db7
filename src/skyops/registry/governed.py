"""The governed registry: the one way to register, approve, reject, promote, roll back, delete or deploy.

    governed = GovernedRegistry(ModelRegistry(store, "drone-detector"), governance)   # MLflow
    governed = GovernedRegistry(PackageGroupStore(packages, "drone-detector"), governance)  # SageMaker
    governed.approve("alice", 3, reason="beats the champion on small objects")
    governed.promote("alice", 3)

Every action takes the actor (a name resolved by `roles.resolve_identity`, or a run's user) and goes
through `Governance.action`: the role is checked first (a denial is audited and raised before
anything happens), then the status rules (`skyops.registry.rules`, written once: only Approved
versions are promoted or deployed, ...), then the store is changed and the outcome audited; a rule
that refuses is audited as the action's failure. So calling this API directly, without the CLI, is
governed the same way. The store's own writes are private (`_set_status`, `_set_alias`, ...):
nothing outside the registry package calls them.

A store is anything with the `RegistryStore` shape: `skyops.registry.models.ModelRegistry` (MLflow,
with aliases) and `skyops.aws.model_packages.PackageGroupStore` (a SageMaker model package group: no
aliases, so promote, rollback and `deploy` are refused there; its champion is the newest Approved
version). The SageMaker store is given by the caller, since the registry package never imports the
AWS one (the layers contract).

A desired state can also be served by a `DeployTarget` (`deploy_to`): a SageMaker endpoint
(`skyops.aws.endpoint_deploy.EndpointDeployment`) serves an Approved version of the package group,
planned with reads only and then applied, under the same role check, status rule and audit.

An optional `observer` is told of every action that succeeded (a `Governed` record: the action, the
actor, the model and the audit record's details), after its outcome is audited; skyops.monitoring
turns these into events (approval requested or decided, deployment changed). The registry knows
nothing of events: the observer is a plain callable, and none is the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from skyops.errors import ConfigError, problems_error
from skyops.registry.gitops import DesiredState, desired_problems, version_problems, write_deployed
from skyops.registry.ledger import CHAMPION, PREVIOUS
from skyops.registry.roles import Action, Governance
from skyops.registry.rules import APPROVED, champion_rejected, no_aliases, no_rollback, not_approved, not_registrable, refuse

C = TypeVar("C", contravariant=True)  # what registering a version takes: models.Candidate, model_packages.PackageCandidate
REJECTED = "Rejected"
DEPLOY_HINT = "`skyops deploy plan` lists every problem; approve the version first, or put the registry back through skyops"


class RegistryStore(Protocol[C]):
    """The raw registry under a GovernedRegistry: public reads, private writes (statuses are plain strings)."""

    @property
    def name(self) -> str: ...  # the registered model (SageMaker: the model package group)

    @property
    def kind(self) -> str: ...  # for messages: "MLflow registry", "SageMaker model package group"

    @property
    def supports_aliases(self) -> bool: ...

    def resolve(self, version: int | str) -> int: ...  # a number or an alias -> the number; SkyopsError when none

    def status(self, version: int) -> str: ...

    def statuses(self) -> dict[int, str]: ...

    def aliases(self) -> dict[str, int]: ...

    def _register(self, candidate: C, status: str) -> tuple[int, bool]: ...  # (version, created)

    def _set_status(self, version: int, status: str, reason: str) -> None: ...

    def _set_alias(self, alias: str, version: int | None) -> None: ...

    def _delete(self, version: int) -> None: ...


class TargetPlan(Protocol):
    """What a deploy target would change: one line per change, none when it already serves the desired state;
    or, found while planning, why it cannot serve the version at all (`refusals`, e.g. a package without model data)."""

    @property
    def changes(self) -> Sequence[str]: ...

    @property
    def refusals(self) -> Sequence[str]: ...


P = TypeVar("P", bound=TargetPlan)


class DeployTarget(Protocol[P]):
    """Where a desired state is served (a SageMaker endpoint): `plan` only reads, `apply` makes the plan so.

    `apply` notes what it does in `record`, the audit record's details (JSON values), as it goes: when it
    raises part-way (an endpoint that SageMaker rolled back), the failed action is audited with what it did.
    """

    @property
    def kind(self) -> str: ...  # the details' `target`, e.g. "sagemaker"

    def problems(self, desired: DesiredState) -> list[str]: ...  # what keeps `desired` from being planned, found without a request

    def plan(self, desired: DesiredState) -> P: ...

    def apply(self, plan: P, record: MutableMapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Registered:
    """What `register` did: `created` False means these weights already were `version`, left untouched."""

    model: str
    version: int
    created: bool


@dataclass(frozen=True)
class StatusChange:
    model: str
    version: int
    before: str  # as stored: setting a status also repairs a damaged tag
    after: str


@dataclass(frozen=True)
class AliasMove:
    """A promotion or rollback: @champion is now `champion`; `replaced` is the champion before (None: there was none)."""

    model: str
    champion: int
    replaced: int | None


@dataclass(frozen=True)
class Governed:
    """An action that succeeded, as an observer sees it: `details` are its audit record's (version, from, previous, ...)."""

    action: Action
    actor: str
    model: str
    reason: str
    details: Mapping[str, Any]


Observer = Callable[[Governed], None]


class GovernedRegistry(Generic[C]):
    """Governed actions on one model's registry. See the module docstring.

    Args:
        store: the raw registry (ModelRegistry, PackageGroupStore).
        governance: the roles and the audit log every action goes through.
        observer: told of each action that succeeded, once its outcome is audited (None: nobody).
    """

    def __init__(self, store: RegistryStore[C], governance: Governance, *, observer: Observer | None = None) -> None:
        self.store = store
        self.governance = governance
        self.observer = observer

    @property
    def name(self) -> str:
        return self.store.name

    def register(self, actor: str, candidate: C, status: str, *, reason: str = "", details: Mapping[str, Any] | None = None) -> Registered:
        """Register a new version with `status` (PendingManualApproval or Rejected), or find the one these weights have.

        Args:
            details: kept in the audit record besides the version, status and whether it was created.
        """
        with self.governance.action(actor, Action.REGISTER, self.name, reason=reason) as act:
            act.details.update({**(details or {}), "status": str(status)})
            refuse(f"registration of {self.name}", [not_registrable(self.name, str(status))], hint="the registration decision sets it")
            version, created = self.store._register(candidate, str(status))
            act.details.update({"version": version, "created": created})
        self._observe(Action.REGISTER, actor, reason, act.details)
        return Registered(self.name, version, created)

    def approve(self, actor: str, version: int | str, *, reason: str = "") -> StatusChange:
        """Set a version Approved (the status the store keeps, e.g. SageMaker's ModelApprovalStatus)."""
        return self._change_status(actor, Action.APPROVE, version, APPROVED, reason)

    def reject(self, actor: str, version: int | str, *, reason: str = "") -> StatusChange:
        """Set a version Rejected; the @champion cannot be (rules.py, rule 4)."""
        return self._change_status(actor, Action.REJECT, version, REJECTED, reason)

    def promote(self, actor: str, version: int | str, *, reason: str = "") -> AliasMove:
        """Make an Approved version the @champion; the old champion becomes @previous. Promoting the champion
        again changes no alias but rewrites the champion pointer (the way back from a damaged one)."""
        number = self.store.resolve(version)
        with self.governance.action(actor, Action.PROMOTE, f"{self.name}:{number}", reason=reason) as act:
            self._require_aliases("promoted")
            refuse(self.name, [not_approved(self.name, number, self.store.status(number), "promoted")], hint=self._approve_hint(number))
            act.details["previous"] = old = self._move_champion(number)
        self._observe(Action.PROMOTE, actor, reason, {"version": number, **act.details})
        return AliasMove(self.name, number, old)

    def rollback(self, actor: str, *, reason: str = "") -> AliasMove:
        """Point @champion back at @previous (which must be Approved) and clear @previous."""
        with self.governance.action(actor, Action.ROLLBACK, f"{self.name}@{CHAMPION}", reason=reason) as act:
            self._require_aliases("rolled back")
            aliases = self.store.aliases()
            current, previous = aliases.get(CHAMPION), aliases.get(PREVIOUS)
            refuse(
                self.name,
                [no_rollback(self.name, current, previous)],
                hint="a rollback needs a promotion before it; see `skyops models history`",
            )
            assert current is not None and previous is not None  # no_rollback said so
            refuse(
                self.name,
                [not_approved(self.name, previous, self.store.status(previous), "rolled back to")],
                hint=self._approve_hint(previous),
            )
            self.store._set_alias(CHAMPION, previous)
            self.store._set_alias(PREVIOUS, None)
            act.details.update({"from": current, "to": previous})
        self._observe(Action.ROLLBACK, actor, reason, act.details)
        return AliasMove(self.name, previous, current)

    def delete(self, actor: str, version: int | str, *, reason: str = "") -> int:
        """Delete a version (its aliases go with it: a deleted champion leaves no pointer behind)."""
        number = self.store.resolve(version)
        with self.governance.action(actor, Action.DELETE, f"{self.name}:{number}", reason=reason):
            self.store._delete(number)
        self._observe(Action.DELETE, actor, reason, {"version": number})
        return number

    def deploy(
        self,
        actor: str,
        desired: DesiredState,
        state_dir: Path,
        *,
        changes: Sequence[str] = (),
        serve: Callable[[MutableMapping[str, Any]], None] | None = None,
    ) -> None:
        """Apply a desired state: make it live (`serve`), move its alias to its version (for @champion, a promotion),
        record it as deployed.

        Refused (and audited) when the version does not exist or is not Approved, or when the registry
        holds state the audit log does not explain (gitops.desired_problems lists them all).

        Args:
            state_dir: where the deployed record (deployments/<env>.json) is written.
            changes: what the plan said would change, kept in the audit record.
            serve: makes the version live (skyops.deploy_local: the local blue/green), given the audit record's
                details to fill; called only once the role and the rules allowed the deploy. When it raises (a
                version that failed its canary and was rolled back), the alias and the deployed record stay as
                they were and the failure is audited with what it put in the details.
        """
        if desired.model != self.name:
            raise ConfigError(
                f"{desired.source} is about model {desired.model!r}, not {self.name!r}", hint="deploy it with its own registry"
            )
        alias = desired.local_alias()
        with self.governance.action(actor, Action.DEPLOY, _deploy_target(desired), reason=f"apply {desired.source}") as act:
            act.details.update({"environment": desired.environment, "alias": alias, "version": desired.version})
            self._require_aliases("deployed")
            problems = desired_problems(desired, self.store, list(self.governance.audit.records()))
            refuse(f"the desired state {desired.source}", problems, hint=DEPLOY_HINT)
            act.details["changes"] = list(changes)
            if serve is not None:
                serve(act.details)
            if desired.version is None:
                self.store._set_alias(alias, None)
            elif alias == CHAMPION:
                act.details["previous"] = self._move_champion(desired.version)
            else:
                self.store._set_alias(alias, desired.version)
            write_deployed(state_dir, desired, actor)
        self._observe(Action.DEPLOY, actor, f"apply {desired.source}", act.details)

    def deploy_to(self, actor: str, desired: DesiredState, target: DeployTarget[P]) -> P:
        """Make `target` (a SageMaker endpoint) serve the desired version; returns the plan it followed.

        In this order, nothing written to AWS before step 4:
        1. the role, then the target's own checks of the settings, before any request: a denial is audited
           and raised (PermissionDenied); settings the target cannot take are a ConfigError, like a
           malformed environment file (nothing was attempted, so nothing is audited);
        2. the version exists in the store and is Approved (the store's reads), then the target's plan
           (reads only), whose `refusals` say what else keeps the target from serving the version (a
           package that records no model data); a refusal is audited as the action's failure
           (ConfigError). The audit log is not asked to explain the store (drift): a package group's
           versions are registered by the SageMaker pipeline and may be approved in SageMaker by whoever
           IAM allows, so CloudTrail is their record, not this machine's log;
        3. a plan with nothing to change is returned with nothing audited (as a local apply already in sync);
        4. the action: its intent (the target kind and the planned changes) audited, `target.apply`, then
           its outcome with what was done, or the error (a rollback, an AWS refusal part-way).
        """
        if desired.model != self.name:
            raise ConfigError(
                f"{desired.source} is about model {desired.model!r}, not {self.name!r}", hint="deploy it with its own registry"
            )
        subject = _deploy_target(desired)
        reason = f"apply {desired.source}"
        self.governance.authorize(actor, Action.DEPLOY, subject, reason=reason)  # no request is sent for a refused actor
        if found := target.problems(desired):
            raise problems_error(ConfigError, f"the desired state {desired.source}", found, hint="see deploy/environments/README.md")
        problems = version_problems(desired, self.store.statuses())
        plan = None if problems else target.plan(desired)
        if plan is not None:
            problems += plan.refusals
            if not problems and not plan.changes:
                return plan
        intended = {"target": target.kind, "changes": list(plan.changes) if plan is not None else []}
        with self.governance.action(actor, Action.DEPLOY, subject, reason=reason, intended=intended) as act:
            act.details.update({"environment": desired.environment, "version": desired.version, "target": target.kind})
            refuse(f"the desired state {desired.source}", problems, hint=DEPLOY_HINT)
            assert plan is not None  # planned whenever there was no problem
            act.details["changes"] = list(plan.changes)
            target.apply(plan, act.details)
        self._observe(Action.DEPLOY, actor, reason, act.details)
        return plan

    def _change_status(self, actor: str, action: Action, version: int | str, status: str, reason: str) -> StatusChange:
        number = self.store.resolve(version)
        with self.governance.action(actor, action, f"{self.name}:{number}", reason=reason) as act:
            act.details["from"] = before = self.store.status(number)
            if status == REJECTED and self.store.supports_aliases:
                champion = self.store.aliases().get(CHAMPION)
                refuse(
                    self.name, [champion_rejected(self.name, number, champion)], hint="skyops models rollback, or promote another version"
                )
            self.store._set_status(number, status, reason)
        self._observe(action, actor, reason, {"version": number, **act.details, "to": status})
        return StatusChange(self.name, number, before, status)

    def _observe(self, action: Action, actor: str, reason: str, details: Mapping[str, Any]) -> None:
        if self.observer is not None:
            self.observer(Governed(action, actor, self.name, reason, dict(details)))

    def _move_champion(self, version: int) -> int | None:
        """@champion -> version, the champion it replaces -> @previous; returns that one (None: there was none)."""
        old = self.store.aliases().get(CHAMPION)
        if old is not None and old != version:
            self.store._set_alias(PREVIOUS, old)
        self.store._set_alias(CHAMPION, version)  # also when unchanged: that rewrites the champion pointer
        return old

    def _require_aliases(self, doing: str) -> None:
        if not self.store.supports_aliases:
            refuse(self.name, [no_aliases(self.name, f"{self.store.kind} {self.name}", doing)], hint="skyops models approve N")

    def _approve_hint(self, version: int) -> str:
        return f"an ML Engineer approves it first: skyops models approve {version} --model {self.name}"


def _deploy_target(desired: DesiredState) -> str:
    """The audit target of an apply: '<model>:<version or none>@<environment>' (ledger.py reads it back)."""
    shown = "none" if desired.version is None else desired.version
    return f"{desired.model}:{shown}@{desired.environment}"
