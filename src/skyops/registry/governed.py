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
aliases, so promote, rollback and deploy are refused there; its champion is the newest Approved
version). The SageMaker store is given by the caller, since the registry package never imports the
AWS one (the layers contract).

An optional `observer` is told of every action that succeeded (a `Governed` record: the action, the
actor, the model and the audit record's details), after its outcome is audited; skyops.monitoring
turns these into events (approval requested or decided, deployment changed). The registry knows
nothing of events: the observer is a plain callable, and none is the default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from skyops.errors import ConfigError
from skyops.registry.gitops import DesiredState, desired_problems, write_deployed
from skyops.registry.ledger import CHAMPION, PREVIOUS
from skyops.registry.roles import Action, Governance
from skyops.registry.rules import APPROVED, champion_rejected, no_aliases, no_rollback, not_approved, not_registrable, refuse

C = TypeVar("C", contravariant=True)  # what registering a version takes: models.Candidate, model_packages.PackageCandidate
REJECTED = "Rejected"


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

    def deploy(self, actor: str, desired: DesiredState, state_dir: Path, *, changes: Sequence[str] = ()) -> None:
        """Apply a desired state: move its alias to its version (for @champion, a promotion), record it as deployed.

        Refused (and audited) when the version does not exist or is not Approved, or when the registry
        holds state the audit log does not explain (gitops.desired_problems lists them all).

        Args:
            state_dir: where the deployed record (deployments/<env>.json) is written.
            changes: what the plan said would change, kept in the audit record.
        """
        if desired.model != self.name:
            raise ConfigError(
                f"{desired.source} is about model {desired.model!r}, not {self.name!r}", hint="deploy it with its own registry"
            )
        shown = "none" if desired.version is None else desired.version
        target = f"{desired.model}:{shown}@{desired.environment}"
        with self.governance.action(actor, Action.DEPLOY, target, reason=f"apply {desired.source}") as act:
            act.details.update({"environment": desired.environment, "alias": desired.alias, "version": desired.version})
            self._require_aliases("deployed")
            problems = desired_problems(desired, self.store, list(self.governance.audit.records()))
            refuse(
                f"the desired state {desired.source}",
                problems,
                hint="`skyops deploy plan` lists every problem; approve the version first, or put the registry back through skyops",
            )
            if desired.version is None:
                self.store._set_alias(desired.alias, None)
            elif desired.alias == CHAMPION:
                act.details["previous"] = self._move_champion(desired.version)
            else:
                self.store._set_alias(desired.alias, desired.version)
            write_deployed(state_dir, desired, actor)
            act.details["changes"] = list(changes)
        self._observe(Action.DEPLOY, actor, f"apply {desired.source}", act.details)

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
