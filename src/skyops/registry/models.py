"""The model registry on MLflow: versions, approval status, aliases, model cards, gate decisions.

Approval uses SageMaker's vocabulary (PendingManualApproval, Approved, Rejected), stored as the
version tag `skyops.approval`, so the same words mean the same thing in both registries. Aliases:
`@staging`, `@champion` and `@previous` (the champion before the last promotion).
Who may change what is decided in `skyops.registry.roles`; this module only does it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from skyops.errors import ConfigError, SkyopsError
from skyops.registry.champion import write_pointer
from skyops.training.tracking import TrackingStore, sqlite_path

DEFAULT_MODEL = "drone-detector"
TAG = "skyops."
APPROVAL = TAG + "approval"
ALIASES = ("staging", "champion", "previous")


class ApprovalStatus(StrEnum):
    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    status: ApprovalStatus
    aliases: tuple[str, ...]
    run_id: str
    source: str
    created: int  # ms since the epoch
    tags: dict[str, str] = field(repr=False)

    @property
    def metrics(self) -> dict[str, float]:
        return json.loads(self.tags.get(TAG + "metrics", "{}"))

    @property
    def gate(self) -> dict[str, Any]:
        return json.loads(self.tags.get(TAG + "gate", "{}"))

    @property
    def card(self) -> dict[str, Any]:
        return json.loads(self.tags.get(TAG + "card", "{}"))


class ModelRegistry:
    """One registered model (default `drone-detector`) in an MLflow store."""

    def __init__(self, store: TrackingStore, name: str = DEFAULT_MODEL) -> None:
        self.store = store
        self.name = name

    @property
    def client(self) -> Any:
        return self.store.client

    def register(
        self, *, run_id: str, source: str, metrics: dict[str, float], card: dict[str, Any], gate: dict[str, Any], status: ApprovalStatus
    ) -> ModelVersion:
        """Create a new version (MLflow numbers them; concurrent registrations get distinct numbers)."""
        from mlflow.exceptions import MlflowException  # heavy; loaded with the client anyway

        try:
            self.client.create_registered_model(self.name, description="YOLO11 drone object detector")
        except MlflowException as e:
            if "already exists" not in str(e).lower() and "RESOURCE_ALREADY_EXISTS" not in str(e):
                raise
        tags = {
            APPROVAL: status.value,
            TAG + "metrics": json.dumps(metrics, sort_keys=True),
            TAG + "gate": json.dumps(gate, sort_keys=True),
            TAG + "card": json.dumps(card, sort_keys=True),
        }
        created = self.client.create_model_version(self.name, source=source, run_id=run_id, tags=tags, description=card.get("summary", ""))
        return self.get(int(created.version))

    def versions(self) -> list[ModelVersion]:
        """Every version, newest first."""
        aliases = self._aliases()
        found = self.client.search_model_versions(f"name='{self.name}'")
        return sorted((self._version(v, aliases) for v in found), key=lambda v: v.version, reverse=True)

    def get(self, version: int | str) -> ModelVersion:
        """A version by number or by alias (`champion`, `@champion`)."""
        from mlflow.exceptions import MlflowException

        text = str(version).lstrip("@")
        if not text.isdigit():
            found = self.by_alias(text)
            if found is None:
                raise SkyopsError(
                    f"model {self.name!r} has no @{text}", hint=f"aliases in use: {', '.join(sorted(self._aliases())) or 'none'}"
                )
            return found
        try:
            raw = self.client.get_model_version(self.name, text)
        except MlflowException:
            known = ", ".join(str(v.version) for v in self.versions()) or "none"
            raise SkyopsError(f"model {self.name!r} has no version {text}", hint=f"versions: {known}; see `skyops models list`") from None
        return self._version(raw, self._aliases())

    def by_alias(self, alias: str) -> ModelVersion | None:
        version = self._aliases().get(alias)
        return None if version is None else self.get(version)

    def set_status(self, version: int, status: ApprovalStatus, reason: str) -> ModelVersion:
        self.client.set_model_version_tag(self.name, str(version), APPROVAL, status.value)
        self.client.set_model_version_tag(self.name, str(version), TAG + "status_reason", reason)
        return self.get(version)

    def set_alias(self, alias: str, version: int | None) -> None:
        if alias not in ALIASES:
            raise ConfigError(f"alias {alias!r} is not one of {', '.join(ALIASES)}")
        if version is None:
            if alias in self._aliases():
                self.client.delete_registered_model_alias(self.name, alias)
        else:
            self.client.set_registered_model_alias(self.name, alias, str(version))
        database = sqlite_path(self.store.uri)
        if alias == "champion" and database is not None:  # a local store: keep the MLflow-free pointer in step
            write_pointer(database.parent, self.name, version, self.get(version).source if version is not None else "")

    def promote(self, version: int) -> ModelVersion | None:
        """Make `version` the @champion; the old champion becomes @previous. Returns the old champion."""
        old = self.by_alias("champion")
        if old is not None and old.version == version:
            return old
        if old is not None:
            self.set_alias("previous", old.version)
        self.set_alias("champion", version)
        return old

    def rollback(self) -> tuple[ModelVersion, ModelVersion]:
        """Point @champion back at @previous; returns (rolled back from, rolled back to)."""
        current, previous = self.by_alias("champion"), self.by_alias("previous")
        if current is None or previous is None:
            raise SkyopsError(
                f"model {self.name!r} cannot roll back: it has {'no @champion' if current is None else 'no @previous'}",
                hint="a rollback needs a promotion before it; see `skyops models history`",
            )
        self.set_alias("champion", previous.version)
        self.set_alias("previous", None)
        return current, previous

    def delete(self, version: int) -> None:
        self.client.delete_model_version(self.name, str(version))

    def _aliases(self) -> dict[str, int]:
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.name)
        except MlflowException:
            return {}
        return {alias: int(v) for alias, v in (model.aliases or {}).items()}

    def _version(self, raw: Any, aliases: dict[str, int]) -> ModelVersion:
        version = int(raw.version)
        return ModelVersion(
            name=self.name,
            version=version,
            status=ApprovalStatus(raw.tags.get(APPROVAL, ApprovalStatus.PENDING.value)),
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
            run_id=raw.run_id or "",
            source=raw.source,
            created=int(raw.creation_timestamp or 0),
            tags=dict(raw.tags),
        )
