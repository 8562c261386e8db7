"""Registry state the audit log does not explain: a status or alias set outside skyops.

Anyone who can write the MLflow store can set `@champion` or the approval tag with MLflow's own
client or UI, past every role check. `registry_drift` compares what the registry holds now with
what the succeeded governed actions imply (`skyops.registry.ledger.replay`) and names every
difference, both sides: "drone-detector @champion is on v3 in the registry, but the audit log's
last promote says v2 (seq 17)". `skyops deploy plan` and `apply` refuse while there is any, and
`skyops audit verify` reports it (`store_drift` covers every model of a store).

The way back is a governed action, which records what it does: approve or reject the version again,
promote the intended champion, or delete a version nobody registered through skyops.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from skyops.registry.acting import AUDIT_FILE
from skyops.registry.audit import AuditLog, AuditRecord
from skyops.registry.ledger import model_of, replay, succeeded
from skyops.registry.lookup import RegistryLookup
from skyops.registry.models import ModelRegistry
from skyops.training.tracking import TrackingStore
from skyops.training.uris import store_uri


class RegistryState(Protocol):
    """What drift reads of a registry: its model's name, every version's stored status, its aliases."""

    @property
    def name(self) -> str: ...

    def statuses(self) -> dict[int, str]: ...

    def aliases(self) -> dict[str, int]: ...


def registry_drift(registry: RegistryState, audit_records: Iterable[AuditRecord]) -> list[str]:
    """Every way the registry's versions, statuses and aliases of one model differ from the audit log (empty: none).

    Args:
        registry: the model's registry (ModelRegistry).
        audit_records: the audit log's records, in order (AuditLog.records()); only succeeded ones count.
    """
    name = registry.name
    audited = replay(audit_records, name)
    statuses, aliases = registry.statuses(), registry.aliases()
    problems = []
    for version in sorted(statuses):
        if version not in audited.registered:
            problems.append(f"{name} v{version} is in the registry, but the audit log has no register of it")
            continue
        fact = audited.statuses[version]
        if statuses[version] != fact.value:
            problems.append(f"{name} v{version} is {statuses[version]} in the registry, but {fact.says(str(fact.value))}")
    for version in sorted(set(audited.registered) - set(statuses)):
        fact = audited.registered[version]
        problems.append(f"{name} v{version} is not in the registry, but the audit log registered it (seq {fact.seq}) and never deleted it")
    for alias in sorted(set(aliases) | set(audited.aliases)):
        have, want = aliases.get(alias), audited.alias(alias)
        if have != want:
            now = "is on no version" if have is None else f"is on v{have}"
            problems.append(f"{name} @{alias} {now} in the registry, but {audited.describe_alias(alias)}")
    return problems


def store_drift(registries: Sequence[RegistryState], audit_records: Iterable[AuditRecord]) -> list[str]:
    """registry_drift of every model of a store, and of models the audit log has succeeded actions on but the store lacks.

    Args:
        registries: one registry per model the store has (`models_of_store`), plus any the caller wants checked.
        audit_records: the audit log's records, in order.
    """
    records = list(audit_records)
    problems = [line for registry in registries for line in registry_drift(registry, records)]
    known = {registry.name for registry in registries}
    audited = {model_of(r.target) for r in succeeded(records) if r.action in ("register", "promote", "deploy")}
    for model in sorted(m for m in audited - known if m is not None):
        state = replay(records, model)
        if state.registered:
            problems.append(f"model {model} is not in the registry, but the audit log registered versions of it")
    return problems


@dataclass(frozen=True)
class LocalDrift:
    """What `skyops audit verify` says of the local registry: the drift, and the models it did not judge."""

    problems: list[str]
    ungoverned: list[str]  # models in the store that this audit log never acted on (another project's, or MLflow's own)


def local_drift(state_dir: Path, tracking_uri: str = "") -> LocalDrift:
    """store_drift of the local registry against the state folder's audit log, for `skyops audit verify`.

    The models judged are those the log has acted on (any record naming them): what skyops governs
    in this project. A model in the store that the log never named is listed as ungoverned, not
    judged: an MLflow store may be shared with work skyops does not govern. A store that does not
    exist is not created: then only models the audit log registered versions of are reported.
    """
    records = list(AuditLog(state_dir / AUDIT_FILE).records())
    governed = {m for m in (model_of(r.target) for r in records) if m is not None}
    registries: list[RegistryState] = []
    ungoverned: list[str] = []
    if RegistryLookup(store_uri(state_dir, tracking_uri)).store_exists:
        store = TrackingStore.local(state_dir, tracking_uri)
        names, token = [], None
        while True:
            page = store.client.search_registered_models(page_token=token)
            names += [model.name for model in page]
            token = page.token
            if not token:
                break
        registries = [ModelRegistry(store, name) for name in sorted(names) if name in governed]
        ungoverned = sorted(name for name in names if name not in governed)
    return LocalDrift(store_drift(registries, records), ungoverned)
